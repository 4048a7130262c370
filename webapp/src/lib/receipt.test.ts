/**
 * The receipt check the auditor page runs in the browser (WebCrypto, @peculiar/x509, the Fabric protobuf
 * classes) against `hdx receipt verify`'s own verifier (the gateway's verifyReceipt, on node's crypto), on
 * a REAL receipt: `fixtures/receipt.json` was returned by the regulator's `GET /fhir/AuditEvent/<eventId>/$receipt`
 * for a break-glass read on the test network (test/integration/webapp.test.ts writes a fresh one to
 * .hdx/webapp-receipt.json each run). Test DIDs only, no PHI. Both must say the same of it, and of each
 * tampered copy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { verifyReceipt } from '@hdx/gateway/dist/audit/receipt';
import { toAuditEvent } from '@hdx/gateway/dist/fhir/audit-events';
import { common } from '@hyperledger/fabric-protos';
import { entryMatchesEvent, ReceiptCheckError, verifyReceiptInBrowser } from './receipt';

type Receipt = Record<string, unknown> & { entry: Record<string, unknown>; block: string; configBlock: string; blockNumber: string };

const original = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'receipt.json'), 'utf8')) as Receipt;
const copy = (): Receipt => JSON.parse(JSON.stringify(original)) as Receipt;

async function browserFailure(receipt: unknown): Promise<string> {
  try {
    await verifyReceiptInBrowser(receipt);
  } catch (err) {
    expect(err).to.be.instanceOf(ReceiptCheckError);
    return (err as Error).message;
  }
  return expect.fail('the browser verified a receipt that must fail');
}

function cliFailure(receipt: unknown): string {
  try {
    verifyReceipt(receipt);
  } catch (err) {
    return (err as Error).message;
  }
  return expect.fail('hdx receipt verify verified a receipt that must fail');
}

/** The same failure, word for word, in the browser and in hdx receipt verify. */
async function bothFail(receipt: unknown): Promise<string> {
  const browser = await browserFailure(receipt);
  expect(browser).to.equal(cliFailure(receipt));
  return browser;
}

/** The receipt with one byte of its config block flipped at `fromEnd` bytes before its end. */
function flipConfigByte(receipt: Receipt, fromEnd: number): Receipt {
  const bytes = Buffer.from(receipt.configBlock, 'base64');
  const at = bytes.length - fromEnd;
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  return { ...receipt, configBlock: bytes.toString('base64') };
}

/** The receipt with its block changed by `edit` (decoded and encoded again with Fabric's protobuf classes). */
function editBlock(receipt: Receipt, edit: (block: common.Block) => void): Receipt {
  const block = common.Block.deserializeBinary(Buffer.from(receipt.block, 'base64'));
  edit(block);
  return { ...receipt, block: Buffer.from(block.serializeBinary()).toString('base64') };
}

describe('audit receipt checked in the browser, as hdx receipt verify checks it', () => {
  it('verifies the real receipt and reports what the CLI reports: endorsers, block, orderers, submitter, config block, roots, entry', async () => {
    const browser = await verifyReceiptInBrowser(copy());
    const cli = verifyReceipt(copy());
    expect(browser).to.deep.equal({
      eventId: cli.eventId,
      txId: cli.txId,
      blockNumber: cli.blockNumber,
      txIndex: cli.txIndex,
      blockHash: cli.blockHash,
      endorsedBy: cli.endorsedBy,
      orderedBy: cli.orderedBy,
      ordererSignatures: cli.ordererSignatures,
      submittedBy: cli.submittedBy,
      configBlockNumber: cli.configBlockNumber,
      configBlockHash: cli.configBlockHash,
      configSignedBy: cli.configSignedBy,
      rootCertificates: cli.rootCertificates,
      entry: cli.entry,
    });
    expect(browser.endorsedBy.length).to.be.greaterThan(0);
    expect(browser.entry.breakGlass).to.equal(true);
  });

  it('fails a receipt whose entry was changed (the decision, the actor), naming the check', async () => {
    for (const change of [{ decision: 'deny' }, { actor: `did:hdx:${'X'.repeat(43)}` }]) {
      const tampered = copy();
      tampered.entry = { ...tampered.entry, ...change };
      expect(await bothFail(tampered)).to.include('it was changed');
    }
  });

  it('fails a receipt that names another block, or whose block bytes were changed', async () => {
    const renumbered = { ...copy(), blockNumber: String(BigInt(original.blockNumber) + 1n) };
    expect(await bothFail(renumbered)).to.include(`its block is number ${original.blockNumber}`);
    // One byte of the transaction changed: the data hash no longer matches (or its signature fails first).
    const changedTx = editBlock(copy(), (block) => {
      const data = block.getData()!.getDataList_asU8();
      const tx = Buffer.from(data[0]!);
      tx[Math.floor(tx.length / 2)] = (tx[Math.floor(tx.length / 2)] ?? 0) ^ 0x01;
      block.getData()!.setDataList([tx, ...data.slice(1)]);
    });
    expect(await bothFail(changedTx)).to.equal("the transaction's signature (MSP Hospital1MSP) does not verify");
    // The block header changed (its previous hash): only the orderers' signatures tell.
    const rechained = editBlock(copy(), (block) => {
      block.getHeader()!.setPreviousHash(Buffer.alloc(32, 7));
    });
    expect(await bothFail(rechained)).to.match(/^block \d+'s orderer signature 0 \(MSP [A-Za-z0-9]+\) does not verify/);
    // The peer's validation code says invalid: nothing was written.
    const invalid = editBlock(copy(), (block) => {
      const metadata = block.getMetadata()!.getMetadataList_asU8();
      const filter = Buffer.from(metadata[common.BlockMetadataIndex.TRANSACTIONS_FILTER]!);
      filter[Number(original.txIndex)] = 11; // MVCC_READ_CONFLICT
      block.getMetadata()!.setMetadataList(metadata.map((m, i) => (i === common.BlockMetadataIndex.TRANSACTIONS_FILTER ? filter : m)));
    });
    expect(await bothFail(invalid)).to.include('invalid (MVCC_READ_CONFLICT)');
  });

  it('fails a config block whose bytes were changed, and what is not a receipt at all', async () => {
    const flipped = flipConfigByte(copy(), 200);
    expect(await bothFail(flipped)).to.include('data hash does not match');
    expect(await bothFail({ format: 'hdx-audit-receipt/1' })).to.equal('the receipt has no channel');
    expect(await bothFail([])).to.equal('the receipt is not a JSON object');
    expect(await bothFail({ ...copy(), eventId: 'x.0' })).to.include('is not of its transaction');
  });

  it('matches the receipt’s entry with the row the page shows, and names a difference', () => {
    const entry = original.entry;
    const event = toAuditEvent(entry as unknown as Parameters<typeof toAuditEvent>[0]);
    expect(entryMatchesEvent(entry, event)).to.equal(undefined);
    expect(entryMatchesEvent({ ...entry, actor: `did:hdx:${'X'.repeat(43)}` }, event)).to.include('another actor');
    expect(entryMatchesEvent({ ...entry, decision: 'deny' }, event)).to.include('another decision');
    expect(entryMatchesEvent({ ...entry, eventId: 'other.0' }, event)).to.include('not of this row');
    expect(entryMatchesEvent({ ...entry, purpose: 'TREAT' }, event)).to.include('another purpose');
  });
});
