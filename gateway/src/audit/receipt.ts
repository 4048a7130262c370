/**
 * Offline-verifiable audit receipts (issue 12). A receipt is one JSON file holding, for one access entry:
 * the block its transaction was ordered in (as the peer returned it: header, every envelope, and the
 * metadata carrying the orderers' signatures and the validation codes) and the channel's config block
 * (the organizations' MSP root and intermediate certificates). `verifyReceipt` checks it with no network
 * and no trust in any gateway: the block's data hash, the orderers' signatures on the block, that the
 * transaction is in it and valid, its creator's signature, each endorsement over the proposal response,
 * and that the entry written is exactly the entry the receipt states. The certificates are those the
 * receipt carries: a verifier compares their fingerprints (in the report) with the consortium's, known
 * out of band, or pins them (`trustedRoots`).
 *
 * The signed byte layouts are Fabric's (protoutil): a block signature covers
 * `metadata.value || signature_header || DER(SEQUENCE{number, previous_hash, data_hash})`; the data
 * hash is SHA-256 over the envelopes concatenated; an endorsement covers
 * `proposal_response_payload || endorser`; an envelope signature covers its payload.
 */
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { common, ledger, msp, peer } from '@hyperledger/fabric-protos';
import canonicalize from 'canonicalize';

export const RECEIPT_FORMAT = 'hdx-audit-receipt/1';

/** The receipt file. Blocks are base64 of the protobuf bytes, exactly as the peer returned them. */
export interface Receipt {
  readonly format: typeof RECEIPT_FORMAT;
  readonly channel: string;
  /** The chaincode's name: the namespace the entry is written in. */
  readonly chaincode: string;
  readonly eventId: string;
  readonly txId: string;
  /** Decimal string (a uint64). */
  readonly blockNumber: string;
  readonly txIndex: number;
  /** The access entry the receipt states, as the chaincode wrote it. */
  readonly entry: Record<string, unknown>;
  readonly block: string;
  readonly configBlock: string;
}

/** What a verified receipt proves. */
export interface ReceiptReport {
  readonly verified: true;
  readonly eventId: string;
  readonly txId: string;
  readonly channel: string;
  readonly blockNumber: string;
  readonly txIndex: number;
  /** SHA-256 of the block header (what the next block's previous_hash holds), hex. */
  readonly blockHash: string;
  readonly dataHash: string;
  readonly previousHash: string;
  /** The MSP ids whose endorsements verified, sorted. */
  readonly endorsedBy: string[];
  /** The orderer MSP ids whose block signatures verified, and how many signatures. */
  readonly orderedBy: string[];
  readonly ordererSignatures: number;
  /** The MSP of the identity that signed the transaction (the recording gateway's organization). */
  readonly submittedBy: string;
  readonly configBlockNumber: string;
  /**
   * SHA-256 of the config block's header, hex. For the genesis block (number 0), which no orderer signs,
   * this is what a verifier compares with the channel's genesis block hash, known out of band.
   */
  readonly configBlockHash: string;
  /** The orderer MSPs whose signatures on the config block verified; empty for the genesis block. */
  readonly configSignedBy: string[];
  /** SHA-256 fingerprints of every MSP root certificate the receipt carries, per MSP id. */
  readonly rootCertificates: Record<string, string[]>;
  readonly entry: Record<string, unknown>;
}

/** A receipt that does not verify, or cannot be read: the message says which check failed. */
export class ReceiptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = ReceiptError.name;
  }
}

function fail(message: string): never {
  throw new ReceiptError(message);
}

/** The ledger key of an access entry: Fabric's composite key of `hdx.audit` and the event id. */
export function auditEntryKey(eventId: string): string {
  return `\u0000hdx.audit\u0000${eventId}\u0000`;
}

const EVENT_ID = /^([A-Za-z0-9]{1,128})\.([0-9]{1,6})$/;

/** The transaction id of an event id `<txId>.<n>`, or undefined if it is not one. */
export function txIdOfEventId(eventId: string): string | undefined {
  return EVENT_ID.exec(eventId)?.[1];
}

/** The config block number a block names (its orderer metadata's last config index). */
export function lastConfigIndex(blockBytes: Uint8Array): bigint {
  const block = decode(() => common.Block.deserializeBinary(blockBytes), 'the block');
  const signatures = block.getMetadata()?.getMetadataList_asU8()[common.BlockMetadataIndex.SIGNATURES];
  if (!signatures || signatures.length === 0) return fail('the block has no signature metadata');
  const value = decode(() => common.Metadata.deserializeBinary(signatures).getValue_asU8(), 'the block signature metadata');
  const index = decode(() => common.OrdererBlockMetadata.deserializeBinary(value).getLastConfig()?.getIndex(), 'the orderer block metadata');
  if (index === undefined) return fail('the block does not name its config block');
  return BigInt(index);
}

/** Builds the receipt of one entry from the block its transaction is in and the channel's config block. */
export function buildReceipt(input: { channel: string; chaincode: string; eventId: string; entry: Record<string, unknown>; block: Uint8Array; configBlock: Uint8Array }): Receipt {
  const txId = txIdOfEventId(input.eventId) ?? fail(`${input.eventId} is not an event id <txId>.<n>`);
  const block = decode(() => common.Block.deserializeBinary(input.block), 'the block');
  const txIndex = (block.getData()?.getDataList_asU8() ?? []).findIndex((bytes) => channelHeaderOf(bytes).getTxId() === txId);
  if (txIndex < 0) fail(`the block does not hold transaction ${txId}`);
  return {
    format: RECEIPT_FORMAT,
    channel: input.channel,
    chaincode: input.chaincode,
    eventId: input.eventId,
    txId,
    blockNumber: String(block.getHeader()?.getNumber() ?? fail('the block has no header')),
    txIndex,
    entry: input.entry,
    block: Buffer.from(input.block).toString('base64'),
    configBlock: Buffer.from(input.configBlock).toString('base64'),
  };
}

function decode<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch {
    return fail(`${what} does not decode as Fabric protobuf`);
  }
}

function channelHeaderOf(envelopeBytes: Uint8Array): common.ChannelHeader {
  const payload = common.Payload.deserializeBinary(common.Envelope.deserializeBinary(envelopeBytes).getPayload_asU8());
  return common.ChannelHeader.deserializeBinary(payload.getHeader()?.getChannelHeader_asU8() ?? new Uint8Array());
}

// ---- DER of the block header (Fabric's asn1Header{Number *big.Int, PreviousHash, DataHash}) ----

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derTlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

function derInteger(value: bigint): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  // Non-negative: a leading 1 bit needs a 0 byte in front (two's complement).
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return derTlv(0x02, bytes);
}

/** The bytes the orderers sign (and hash into the next block's previous_hash). */
export function blockHeaderBytes(header: common.BlockHeader): Buffer {
  return derTlv(
    0x30,
    Buffer.concat([derInteger(BigInt(header.getNumber())), derTlv(0x04, Buffer.from(header.getPreviousHash_asU8())), derTlv(0x04, Buffer.from(header.getDataHash_asU8()))]),
  );
}

// ---- the channel configuration: each organization's MSP certificates ----

interface MspCerts {
  readonly roots: X509Certificate[];
  readonly intermediates: X509Certificate[];
}

interface ChannelMsps {
  readonly application: Map<string, MspCerts>;
  readonly orderer: Map<string, MspCerts>;
}

function pemCerts(list: Uint8Array[], what: string): X509Certificate[] {
  return list.map((bytes) => {
    try {
      return new X509Certificate(Buffer.from(bytes));
    } catch {
      return fail(`${what} holds a certificate that does not parse`);
    }
  });
}

function mspsOfGroup(group: common.ConfigGroup | undefined, what: string): Map<string, MspCerts> {
  const out = new Map<string, MspCerts>();
  if (!group) return out;
  group.getGroupsMap().forEach((org: common.ConfigGroup, name: string) => {
    const value = org.getValuesMap().get('MSP');
    if (!value) return;
    const config = decode(() => msp.MSPConfig.deserializeBinary(value.getValue_asU8()), `the ${what} organization ${name}'s MSP value`);
    if (config.getType() !== 0) return; // 0 = FABRIC; an Idemix MSP has no X.509 roots
    const fabric = decode(() => msp.FabricMSPConfig.deserializeBinary(config.getConfig_asU8()), `the ${what} organization ${name}'s MSP config`);
    out.set(fabric.getName(), {
      roots: pemCerts(fabric.getRootCertsList_asU8(), `MSP ${fabric.getName()}'s root certificates`),
      intermediates: pemCerts(fabric.getIntermediateCertsList_asU8(), `MSP ${fabric.getName()}'s intermediate certificates`),
    });
  });
  return out;
}

function channelMsps(configBlock: common.Block, channel: string): ChannelMsps {
  const data = configBlock.getData()?.getDataList_asU8() ?? [];
  const first = data[0];
  if (data.length !== 1 || !first) return fail('the config block must hold exactly one envelope');
  const payload = decode(() => common.Payload.deserializeBinary(common.Envelope.deserializeBinary(first).getPayload_asU8()), 'the config block envelope');
  const header = decode(() => common.ChannelHeader.deserializeBinary(payload.getHeader()?.getChannelHeader_asU8() ?? new Uint8Array()), 'the config block header');
  if (header.getType() !== common.HeaderType.CONFIG) fail('the config block does not hold a config transaction');
  if (header.getChannelId() !== channel) fail(`the config block is of channel ${header.getChannelId()}, not ${channel}`);
  const config = decode(() => common.ConfigEnvelope.deserializeBinary(payload.getData_asU8()).getConfig(), 'the channel config');
  const groups = config?.getChannelGroup()?.getGroupsMap();
  if (!groups) return fail('the config block holds no channel configuration');
  const msps = { application: mspsOfGroup(groups.get('Application'), 'application'), orderer: mspsOfGroup(groups.get('Orderer'), 'orderer') };
  if (msps.orderer.size === 0) fail('the channel configuration names no orderer organization');
  if (msps.application.size === 0) fail('the channel configuration names no application organization');
  return msps;
}

// ---- identities and signatures ----

/** The certificate of a serialized identity, checked to chain to its MSP's roots (through its intermediates). */
function certificateOf(serializedIdentity: Uint8Array, msps: Map<string, MspCerts>, at: Date, what: string): { mspId: string; cert: X509Certificate } {
  const identity = decode(() => msp.SerializedIdentity.deserializeBinary(serializedIdentity), `${what}'s identity`);
  const mspId = identity.getMspid();
  const certs = msps.get(mspId) ?? fail(`${what} is of MSP ${mspId || '(none)'}, which is not one of the channel's ${[...msps.keys()].join(', ')}`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(identity.getIdBytes_asU8()));
  } catch {
    return fail(`${what}'s certificate (MSP ${mspId}) does not parse`);
  }
  if (at.getTime() < Date.parse(cert.validFrom) || at.getTime() > Date.parse(cert.validTo)) fail(`${what}'s certificate (MSP ${mspId}) was not valid at ${at.toISOString()}`);
  let current = cert;
  for (let depth = 0; depth < 8; depth++) {
    const root = certs.roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey));
    if (root) return { mspId, cert };
    const next = certs.intermediates.find((i) => i !== current && current.checkIssued(i) && current.verify(i.publicKey));
    if (!next) break;
    current = next;
  }
  return fail(`${what}'s certificate is not issued by MSP ${mspId}'s certificate authorities`);
}

function signatureVerifies(cert: X509Certificate, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verifySignature('sha256', data, cert.publicKey, signature);
  } catch {
    return false;
  }
}

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** A block's header and transactions, its data hash checked against them. */
function checkDataHash(block: common.Block, what: string): { header: common.BlockHeader; data: Uint8Array[] } {
  const header = block.getHeader() ?? fail(`${what} has no header`);
  const data = block.getData()?.getDataList_asU8() ?? [];
  if (data.length === 0) fail(`${what} holds no transactions`);
  const dataHash = sha256(Buffer.concat(data.map((d) => Buffer.from(d))));
  if (!dataHash.equals(Buffer.from(header.getDataHash_asU8()))) fail(`${what}'s data hash does not match its transactions: the block's contents were changed after it was ordered`);
  return { header, data };
}

/** Checks a block's header fields and the orderers' signatures on it; returns the orderer MSPs that signed. */
function checkBlock(block: common.Block, msps: ChannelMsps, what: string): { orderedBy: Set<string>; signatures: number } {
  const { header, data } = checkDataHash(block, what);
  const metadataBytes = block.getMetadata()?.getMetadataList_asU8()[common.BlockMetadataIndex.SIGNATURES];
  if (!metadataBytes || metadataBytes.length === 0) return fail(`${what} carries no orderer signatures`);
  const metadata = decode(() => common.Metadata.deserializeBinary(metadataBytes), `${what}'s signature metadata`);
  const headerBytes = blockHeaderBytes(header);
  // The header holds no time: the orderers' certificates are checked at the time of the block's first transaction.
  const first = data[0] ?? new Uint8Array();
  const when = decode(() => channelHeaderOf(first).getTimestamp()?.toDate(), `${what}'s first transaction header`) ?? fail(`${what}'s first transaction has no timestamp`);
  const orderedBy = new Set<string>();
  const signatures = metadata.getSignaturesList();
  if (signatures.length === 0) fail(`${what} carries no orderer signatures`);
  signatures.forEach((s, i) => {
    const signatureHeader = s.getSignatureHeader_asU8();
    if (signatureHeader.length === 0) fail(`${what}'s orderer signature ${i} names its signer by a BFT identifier header, which receipts do not verify yet`);
    const creator = decode(() => common.SignatureHeader.deserializeBinary(signatureHeader).getCreator_asU8(), `${what}'s orderer signature ${i} header`);
    const { mspId, cert } = certificateOf(creator, msps.orderer, when, `${what}'s orderer signature ${i}`);
    const signed = Buffer.concat([Buffer.from(metadata.getValue_asU8()), Buffer.from(signatureHeader), headerBytes]);
    if (!signatureVerifies(cert, signed, s.getSignature_asU8()))
      fail(`${what}'s orderer signature ${i} (MSP ${mspId}) does not verify: the block header (number, hashes) or the signature was changed`);
    orderedBy.add(mspId);
  });
  return { orderedBy, signatures: signatures.length };
}

function readReceipt(input: unknown): Receipt {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return fail('the receipt is not a JSON object');
  const r = input as Record<string, unknown>;
  if (r.format !== RECEIPT_FORMAT) fail(`the receipt's format is not ${RECEIPT_FORMAT}`);
  for (const field of ['channel', 'chaincode', 'eventId', 'txId', 'blockNumber', 'block', 'configBlock'] as const) {
    if (typeof r[field] !== 'string' || r[field] === '') fail(`the receipt has no ${field}`);
  }
  if (!Number.isInteger(r.txIndex) || (r.txIndex as number) < 0) fail('the receipt has no txIndex');
  if (r.entry === null || typeof r.entry !== 'object' || Array.isArray(r.entry)) fail('the receipt has no entry');
  if (!/^[0-9]{1,20}$/.test(r.blockNumber as string)) fail('the receipt blockNumber is not a block number');
  for (const field of ['block', 'configBlock'] as const) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(r[field] as string)) fail(`the receipt ${field} is not base64`);
  }
  return r as unknown as Receipt;
}

/**
 * Verifies a receipt offline. Returns what it proves; throws a ReceiptError naming the first check that
 * failed. `trustedRoots` (PEM or DER certificates): when given, every MSP root certificate the receipt
 * carries must be one of them, so the receipt's own config block is not the only trust anchor.
 */
export function verifyReceipt(input: unknown, options: { trustedRoots?: X509Certificate[] } = {}): ReceiptReport {
  const receipt = readReceipt(input);
  const eventTx = txIdOfEventId(receipt.eventId) ?? fail(`the receipt eventId ${receipt.eventId} is not <txId>.<n>`);
  if (eventTx !== receipt.txId) fail(`the receipt eventId ${receipt.eventId} is not of its transaction ${receipt.txId}`);

  const configBlock = decode(() => common.Block.deserializeBinary(Buffer.from(receipt.configBlock, 'base64')), 'the config block');
  const msps = channelMsps(configBlock, receipt.channel);
  const rootCertificates: Record<string, string[]> = {};
  for (const [mspId, certs] of [...msps.orderer, ...msps.application]) {
    rootCertificates[mspId] = certs.roots.map((c) => c.fingerprint256);
  }
  if (options.trustedRoots) {
    const trusted = new Set(options.trustedRoots.map((c) => c.fingerprint256));
    for (const [mspId, fingerprints] of Object.entries(rootCertificates)) {
      const unknown = fingerprints.find((f) => !trusted.has(f));
      if (unknown) fail(`MSP ${mspId}'s root certificate ${unknown} is not one of the trusted roots`);
    }
  }
  const configNumber = BigInt(configBlock.getHeader()?.getNumber() ?? fail('the config block has no header'));
  // The genesis block (the channel's first configuration) is made by configtxgen and given to each
  // orderer: no orderer signs it. It is trusted by its hash (configBlockHash, which names the channel and
  // is known to every member) and the root certificates (--trust-roots); a later config block is checked
  // like any block, by the orderers' signatures.
  let configSignedBy: string[] = [];
  if (configNumber === 0n) {
    const { header: genesis } = checkDataHash(configBlock, 'the genesis config block');
    if (genesis.getPreviousHash_asU8().length !== 0) fail('the config block is number 0 but names a previous block');
  } else {
    configSignedBy = [...checkBlock(configBlock, msps, 'the config block').orderedBy].sort();
  }
  const configHeader = configBlock.getHeader() ?? fail('the config block has no header');

  const blockBytes = Buffer.from(receipt.block, 'base64');
  const block = decode(() => common.Block.deserializeBinary(blockBytes), 'the block');
  const header = block.getHeader() ?? fail('the block has no header');
  if (BigInt(header.getNumber()) !== BigInt(receipt.blockNumber)) fail(`the receipt says block ${receipt.blockNumber} but its block is number ${header.getNumber()}`);
  if (lastConfigIndex(blockBytes) !== configNumber) fail(`the block's configuration is block ${lastConfigIndex(blockBytes)}, but the receipt carries config block ${configNumber}`);

  const data = block.getData()?.getDataList_asU8() ?? [];
  const envelopeBytes = data[receipt.txIndex] ?? fail(`block ${receipt.blockNumber} has no transaction ${receipt.txIndex}`);
  const envelope = decode(() => common.Envelope.deserializeBinary(envelopeBytes), 'the transaction envelope');
  const payload = decode(() => common.Payload.deserializeBinary(envelope.getPayload_asU8()), 'the transaction payload');
  const channelHeader = decode(() => common.ChannelHeader.deserializeBinary(payload.getHeader()?.getChannelHeader_asU8() ?? new Uint8Array()), 'the transaction channel header');
  if (channelHeader.getTxId() !== receipt.txId) fail(`transaction ${receipt.txIndex} of block ${receipt.blockNumber} is ${channelHeader.getTxId()}, not ${receipt.txId}`);
  if (channelHeader.getChannelId() !== receipt.channel) fail(`the transaction is of channel ${channelHeader.getChannelId()}, not ${receipt.channel}`);
  if (channelHeader.getType() !== common.HeaderType.ENDORSER_TRANSACTION) fail('the transaction is not an endorser transaction');
  const txTime = channelHeader.getTimestamp()?.toDate() ?? fail('the transaction has no timestamp');

  const signatureHeader = decode(
    () => common.SignatureHeader.deserializeBinary(payload.getHeader()?.getSignatureHeader_asU8() ?? new Uint8Array()),
    'the transaction signature header',
  );
  const creator = certificateOf(signatureHeader.getCreator_asU8(), msps.application, txTime, "the transaction's submitter");
  if (!signatureVerifies(creator.cert, envelope.getPayload_asU8(), envelope.getSignature_asU8())) fail(`the transaction's signature (MSP ${creator.mspId}) does not verify`);

  const transaction = decode(() => peer.Transaction.deserializeBinary(payload.getData_asU8()), 'the transaction');
  const endorsedBy = new Set<string>();
  const key = auditEntryKey(receipt.eventId);
  let written: Uint8Array | undefined;
  transaction.getActionsList().forEach((action, a) => {
    const actionPayload = decode(() => peer.ChaincodeActionPayload.deserializeBinary(action.getPayload_asU8()), `transaction action ${a}`);
    const endorsed = actionPayload.getAction() ?? fail(`transaction action ${a} has no endorsed action`);
    const responseBytes = endorsed.getProposalResponsePayload_asU8();
    const endorsements = endorsed.getEndorsementsList();
    if (endorsements.length === 0) fail(`transaction action ${a} has no endorsement`);
    endorsements.forEach((e, i) => {
      const endorser = certificateOf(e.getEndorser_asU8(), msps.application, txTime, `endorsement ${i}`);
      if (!signatureVerifies(endorser.cert, Buffer.concat([Buffer.from(responseBytes), Buffer.from(e.getEndorser_asU8())]), e.getSignature_asU8()))
        fail(`endorsement ${i} (MSP ${endorser.mspId}) does not verify over the proposal response: the transaction's results or the signature were changed`);
      endorsedBy.add(endorser.mspId);
    });
    const response = decode(() => peer.ProposalResponsePayload.deserializeBinary(responseBytes), `transaction action ${a}'s proposal response`);
    const chaincodeAction = decode(() => peer.ChaincodeAction.deserializeBinary(response.getExtension_asU8()), `transaction action ${a}'s chaincode action`);
    const rwset = decode(() => ledger.rwset.TxReadWriteSet.deserializeBinary(chaincodeAction.getResults_asU8()), `transaction action ${a}'s read-write set`);
    for (const ns of rwset.getNsRwsetList()) {
      if (ns.getNamespace() !== receipt.chaincode) continue;
      const kv = decode(() => ledger.rwset.kvrwset.KVRWSet.deserializeBinary(ns.getRwset_asU8()), `transaction action ${a}'s writes`);
      for (const w of kv.getWritesList()) {
        if (w.getKey() === key && !w.getIsDelete()) written = w.getValue_asU8();
      }
    }
  });
  if (written === undefined) return fail(`the transaction does not write access entry ${receipt.eventId} in ${receipt.chaincode}`);
  let ledgerEntry: unknown;
  try {
    ledgerEntry = JSON.parse(Buffer.from(written).toString('utf8'));
  } catch {
    return fail(`the value written for ${receipt.eventId} is not JSON`);
  }
  if (canonicalize(ledgerEntry) !== canonicalize(receipt.entry)) fail(`the receipt's entry is not the entry the transaction wrote for ${receipt.eventId}: it was changed`);

  // The transaction is what its endorsers signed; now that it is in the block the orderers signed.
  const ordering = checkBlock(block, msps, `block ${receipt.blockNumber}`);
  // The validation codes are the committing peer's (Fabric does not sign them): see SECURITY.md.
  const code = block.getMetadata()?.getMetadataList_asU8()[common.BlockMetadataIndex.TRANSACTIONS_FILTER]?.[receipt.txIndex];
  if (code === undefined) fail(`block ${receipt.blockNumber} has no validation code for transaction ${receipt.txIndex}`);
  if (code !== peer.TxValidationCode.VALID) {
    const name = Object.entries(peer.TxValidationCode).find(([, v]) => v === code)?.[0] ?? String(code);
    fail(`the peer marked transaction ${receipt.txId} invalid (${name}): it wrote nothing`);
  }

  return {
    verified: true,
    eventId: receipt.eventId,
    txId: receipt.txId,
    channel: receipt.channel,
    blockNumber: receipt.blockNumber,
    txIndex: receipt.txIndex,
    blockHash: hex(sha256(blockHeaderBytes(header))),
    dataHash: hex(header.getDataHash_asU8()),
    previousHash: hex(header.getPreviousHash_asU8()),
    endorsedBy: [...endorsedBy].sort(),
    orderedBy: [...ordering.orderedBy].sort(),
    ordererSignatures: ordering.signatures,
    submittedBy: creator.mspId,
    configBlockNumber: String(configNumber),
    configBlockHash: hex(sha256(blockHeaderBytes(configHeader))),
    configSignedBy,
    rootCertificates,
    entry: receipt.entry,
  };
}

/** Where a gateway gets a receipt's parts: its own peer (FabricLedger). */
export interface ReceiptSource {
  /** The entry as `requester` may see it (`hdx.audit:GetEntry`); undefined when missing or not visible. */
  auditEntry(eventId: string, requester: string): Promise<object | undefined>;
  blockByTxId(txId: string): Promise<Uint8Array>;
  blockByNumber(blockNumber: bigint): Promise<Uint8Array>;
}

/**
 * The receipt of an entry `requester` may read, from the gateway's peer: the entry (GetEntry decides
 * who may see it), the block of its transaction and the config block that block names. Undefined when
 * the entry is missing or not visible to the requester (the same answer for both).
 */
export async function fetchReceipt(source: ReceiptSource, request: { channel: string; chaincode: string; eventId: string; requester: string }): Promise<Receipt | undefined> {
  const txId = txIdOfEventId(request.eventId);
  if (txId === undefined) return undefined;
  const entry = await source.auditEntry(request.eventId, request.requester);
  if (entry === undefined) return undefined;
  const block = await source.blockByTxId(txId);
  const configBlock = await source.blockByNumber(lastConfigIndex(block));
  return buildReceipt({ channel: request.channel, chaincode: request.chaincode, eventId: request.eventId, entry: entry as Record<string, unknown>, block, configBlock });
}
