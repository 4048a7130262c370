/**
 * An audit receipt checked in the browser: the checks of `hdx receipt verify` (gateway/src/audit/receipt.ts,
 * verifyReceipt), made here with WebCrypto, the Fabric protobuf classes (@hyperledger/fabric-protos, the
 * gateway's own) and X.509 certificates read by @peculiar/x509. The receipt is what
 * `GET /fhir/AuditEvent/<eventId>/$receipt` returns; once fetched, nothing here asks any server: the
 * block's data hash, the orderers' signatures on the block, the transaction's place and validity in it,
 * its submitter's signature, each endorsement over the proposal response, every certificate chaining to
 * its organization's root in the receipt's config block (valid at the transaction's time), and the entry
 * written being exactly the receipt's. On top, the receipt's entry must be the access row the page shows.
 *
 * What this cannot check: that the config block's root certificates are the consortium's. They come in
 * the receipt, so the report lists their SHA-256 fingerprints (and the genesis block's hash) for the
 * auditor to compare with the consortium's, known out of band; `hdx receipt verify --trust-roots` pins
 * them. The validation code is the committing peer's (Fabric does not sign it), as for the CLI.
 */
import 'reflect-metadata';
import { AsnEcSignatureFormatter, X509Certificate } from '@peculiar/x509';
import commonPb from '@hyperledger/fabric-protos/lib/common/common_pb';
import configtxPb from '@hyperledger/fabric-protos/lib/common/configtx_pb';
import identitiesPb from '@hyperledger/fabric-protos/lib/msp/identities_pb';
import mspConfigPb from '@hyperledger/fabric-protos/lib/msp/msp_config_pb';
import rwsetPb from '@hyperledger/fabric-protos/lib/ledger/rwset/rwset_pb';
import kvrwsetPb from '@hyperledger/fabric-protos/lib/ledger/rwset/kvrwset/kv_rwset_pb';
import transactionPb from '@hyperledger/fabric-protos/lib/peer/transaction_pb';
import proposalPb from '@hyperledger/fabric-protos/lib/peer/proposal_pb';
import proposalResponsePb from '@hyperledger/fabric-protos/lib/peer/proposal_response_pb';
import canonicalize from 'canonicalize';
import { type AppConfig, fhirRequest } from './api';
import { arr, type Json, obj, str } from './json';
import type { PatientKey } from './keys';

export const RECEIPT_FORMAT = 'hdx-audit-receipt/1';

/** What a verified receipt proves (the fields of the CLI's report the page shows). */
export interface BrowserReceiptReport {
  eventId: string;
  txId: string;
  blockNumber: string;
  txIndex: number;
  /** SHA-256 of the block header, hex. */
  blockHash: string;
  endorsedBy: string[];
  orderedBy: string[];
  ordererSignatures: number;
  submittedBy: string;
  configBlockNumber: string;
  configBlockHash: string;
  configSignedBy: string[];
  /** SHA-256 fingerprints (AA:BB:… as `hdx receipt verify` prints them) of each MSP's root certificates. */
  rootCertificates: Record<string, string[]>;
  entry: Json;
}

/** A receipt that does not verify: the message names the failed check. */
export class ReceiptCheckError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReceiptCheckError';
  }
}

function fail(message: string): never {
  throw new ReceiptCheckError(message);
}

function decode<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch {
    return fail(`${what} does not decode as Fabric protobuf`);
  }
}

const EVENT_ID = /^([A-Za-z0-9]{1,128})\.([0-9]{1,6})$/;

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat([data])));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---- DER of the block header (Fabric's asn1Header{Number, PreviousHash, DataHash}), what the orderers sign ----

function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return [0x80 | bytes.length, ...bytes];
}

function derTlv(tag: number, content: Uint8Array): Uint8Array {
  return concat([new Uint8Array([tag, ...derLength(content.length)]), content]);
}

function derInteger(value: bigint): Uint8Array {
  let h = value.toString(16);
  if (h.length % 2 === 1) h = `0${h}`;
  let bytes = Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
  if ((bytes[0] ?? 0) & 0x80) bytes = concat([new Uint8Array([0]), bytes]);
  return derTlv(0x02, bytes);
}

export function blockHeaderBytes(header: commonPb.BlockHeader): Uint8Array {
  return derTlv(0x30, concat([derInteger(BigInt(header.getNumber())), derTlv(0x04, header.getPreviousHash_asU8()), derTlv(0x04, header.getDataHash_asU8())]));
}

// ---- the channel configuration: each organization's MSP certificates ----

interface MspCerts {
  roots: X509Certificate[];
  intermediates: X509Certificate[];
}

interface ChannelMsps {
  application: Map<string, MspCerts>;
  orderer: Map<string, MspCerts>;
}

function certificates(list: Uint8Array[], what: string): X509Certificate[] {
  return list.map((bytes) => {
    try {
      // The MSP config holds PEM text.
      return new X509Certificate(new TextDecoder().decode(bytes));
    } catch {
      return fail(`${what} holds a certificate that does not parse`);
    }
  });
}

function mspsOfGroup(group: configtxPb.ConfigGroup | undefined, what: string): Map<string, MspCerts> {
  const out = new Map<string, MspCerts>();
  if (!group) return out;
  group.getGroupsMap().forEach((org: configtxPb.ConfigGroup, name: string) => {
    const value = org.getValuesMap().get('MSP');
    if (!value) return;
    const config = decode(() => mspConfigPb.MSPConfig.deserializeBinary(value.getValue_asU8()), `the ${what} organization ${name}'s MSP value`);
    if (config.getType() !== 0) return; // 0 = FABRIC; an Idemix MSP has no X.509 roots
    const fabric = decode(() => mspConfigPb.FabricMSPConfig.deserializeBinary(config.getConfig_asU8()), `the ${what} organization ${name}'s MSP config`);
    out.set(fabric.getName(), {
      roots: certificates(fabric.getRootCertsList_asU8(), `MSP ${fabric.getName()}'s root certificates`),
      intermediates: certificates(fabric.getIntermediateCertsList_asU8(), `MSP ${fabric.getName()}'s intermediate certificates`),
    });
  });
  return out;
}

function channelHeaderOf(envelopeBytes: Uint8Array): commonPb.ChannelHeader {
  const payload = commonPb.Payload.deserializeBinary(commonPb.Envelope.deserializeBinary(envelopeBytes).getPayload_asU8());
  return commonPb.ChannelHeader.deserializeBinary(payload.getHeader()?.getChannelHeader_asU8() ?? new Uint8Array());
}

function channelMsps(configBlock: commonPb.Block, channel: string): ChannelMsps {
  const data = configBlock.getData()?.getDataList_asU8() ?? [];
  const first = data[0];
  if (data.length !== 1 || !first) return fail('the config block must hold exactly one envelope');
  const payload = decode(() => commonPb.Payload.deserializeBinary(commonPb.Envelope.deserializeBinary(first).getPayload_asU8()), 'the config block envelope');
  const header = decode(() => commonPb.ChannelHeader.deserializeBinary(payload.getHeader()?.getChannelHeader_asU8() ?? new Uint8Array()), 'the config block header');
  if (header.getType() !== commonPb.HeaderType.CONFIG) fail('the config block does not hold a config transaction');
  if (header.getChannelId() !== channel) fail(`the config block is of channel ${header.getChannelId()}, not ${channel}`);
  const config = decode(() => configtxPb.ConfigEnvelope.deserializeBinary(payload.getData_asU8()).getConfig(), 'the channel config');
  const groups = config?.getChannelGroup()?.getGroupsMap();
  if (!groups) return fail('the config block holds no channel configuration');
  const msps = { application: mspsOfGroup(groups.get('Application'), 'application'), orderer: mspsOfGroup(groups.get('Orderer'), 'orderer') };
  if (msps.orderer.size === 0) fail('the channel configuration names no orderer organization');
  if (msps.application.size === 0) fail('the channel configuration names no application organization');
  return msps;
}

// ---- identities and signatures (WebCrypto) ----

async function issuedBy(cert: X509Certificate, issuer: X509Certificate): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** The certificate of a serialized identity, checked to chain to its MSP's roots (through its intermediates) and valid at `at`. */
async function certificateOf(serialized: Uint8Array, msps: Map<string, MspCerts>, at: Date, what: string): Promise<{ mspId: string; cert: X509Certificate }> {
  const identity = decode(() => identitiesPb.SerializedIdentity.deserializeBinary(serialized), `${what}'s identity`);
  const mspId = identity.getMspid();
  const certs = msps.get(mspId) ?? fail(`${what} is of MSP ${mspId || '(none)'}, which is not one of the channel's ${[...msps.keys()].join(', ')}`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(new TextDecoder().decode(identity.getIdBytes_asU8()));
  } catch {
    return fail(`${what}'s certificate (MSP ${mspId}) does not parse`);
  }
  if (at.getTime() < cert.notBefore.getTime() || at.getTime() > cert.notAfter.getTime()) fail(`${what}'s certificate (MSP ${mspId}) was not valid at ${at.toISOString()}`);
  let current = cert;
  for (let depth = 0; depth < 8; depth += 1) {
    for (const root of certs.roots) if (await issuedBy(current, root)) return { mspId, cert };
    let next: X509Certificate | undefined;
    for (const i of certs.intermediates) if (i !== current && (await issuedBy(current, i))) next = i;
    if (!next) break;
    current = next;
  }
  return fail(`${what}'s certificate is not issued by MSP ${mspId}'s certificate authorities`);
}

/** Whether a Fabric signature (ECDSA, DER-encoded, over SHA-256) by `cert` verifies over `data`. */
async function signatureVerifies(cert: X509Certificate, data: Uint8Array, derSignature: Uint8Array): Promise<boolean> {
  try {
    const key = await cert.publicKey.export();
    const algorithm = key.algorithm as EcKeyAlgorithm;
    if (algorithm.name !== 'ECDSA') return false;
    const raw = new AsnEcSignatureFormatter().toWebSignature(algorithm, concat([derSignature]));
    if (!raw) return false;
    const hash = algorithm.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256';
    return await crypto.subtle.verify({ name: 'ECDSA', hash }, key, raw, concat([data]));
  } catch {
    return false;
  }
}

/** A block's header and transactions, its data hash checked against them. */
async function checkDataHash(block: commonPb.Block, what: string): Promise<{ header: commonPb.BlockHeader; data: Uint8Array[] }> {
  const header = block.getHeader() ?? fail(`${what} has no header`);
  const data = block.getData()?.getDataList_asU8() ?? [];
  if (data.length === 0) fail(`${what} holds no transactions`);
  if (!sameBytes(await sha256(concat(data)), header.getDataHash_asU8()))
    fail(`${what}'s data hash does not match its transactions: the block's contents were changed after it was ordered`);
  return { header, data };
}

/** A block's data hash and the orderers' signatures on it; the orderer MSPs that signed. */
async function checkBlock(block: commonPb.Block, msps: ChannelMsps, what: string): Promise<{ orderedBy: Set<string>; signatures: number }> {
  const { header, data } = await checkDataHash(block, what);
  const metadataBytes = block.getMetadata()?.getMetadataList_asU8()[commonPb.BlockMetadataIndex.SIGNATURES];
  if (!metadataBytes || metadataBytes.length === 0) return fail(`${what} carries no orderer signatures`);
  const metadata = decode(() => commonPb.Metadata.deserializeBinary(metadataBytes), `${what}'s signature metadata`);
  const headerBytes = blockHeaderBytes(header);
  const first = data[0] ?? new Uint8Array();
  const when = decode(() => channelHeaderOf(first).getTimestamp()?.toDate(), `${what}'s first transaction header`) ?? fail(`${what}'s first transaction has no timestamp`);
  const orderedBy = new Set<string>();
  const signatures = metadata.getSignaturesList();
  if (signatures.length === 0) fail(`${what} carries no orderer signatures`);
  for (const [i, s] of signatures.entries()) {
    const signatureHeader = s.getSignatureHeader_asU8();
    if (signatureHeader.length === 0) fail(`${what}'s orderer signature ${i} names its signer by a BFT identifier header, which receipts do not verify yet`);
    const creator = decode(() => commonPb.SignatureHeader.deserializeBinary(signatureHeader).getCreator_asU8(), `${what}'s orderer signature ${i} header`);
    const { mspId, cert } = await certificateOf(creator, msps.orderer, when, `${what}'s orderer signature ${i}`);
    if (!(await signatureVerifies(cert, concat([metadata.getValue_asU8(), signatureHeader, headerBytes]), s.getSignature_asU8())))
      fail(`${what}'s orderer signature ${i} (MSP ${mspId}) does not verify: the block header (number, hashes) or the signature was changed`);
    orderedBy.add(mspId);
  }
  return { orderedBy, signatures: signatures.length };
}

function lastConfigIndex(block: commonPb.Block): bigint {
  const signatures = block.getMetadata()?.getMetadataList_asU8()[commonPb.BlockMetadataIndex.SIGNATURES];
  if (!signatures || signatures.length === 0) return fail('the block has no signature metadata');
  const value = decode(() => commonPb.Metadata.deserializeBinary(signatures).getValue_asU8(), 'the block signature metadata');
  const index = decode(() => commonPb.OrdererBlockMetadata.deserializeBinary(value).getLastConfig()?.getIndex(), 'the orderer block metadata');
  if (index === undefined) return fail('the block does not name its config block');
  return BigInt(index);
}

interface Receipt {
  channel: string;
  chaincode: string;
  eventId: string;
  txId: string;
  blockNumber: string;
  txIndex: number;
  entry: Json;
  block: string;
  configBlock: string;
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

/** SHA-256 fingerprint of a certificate as node's X509Certificate.fingerprint256 (and the CLI) writes it. */
async function fingerprint256(cert: X509Certificate): Promise<string> {
  return hex(await sha256(new Uint8Array(cert.rawData)))
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/** Verifies a receipt in the browser. Resolves what it proves; rejects with a ReceiptCheckError naming the first failed check. */
export async function verifyReceiptInBrowser(input: unknown): Promise<BrowserReceiptReport> {
  const receipt = readReceipt(input);
  const eventTx = EVENT_ID.exec(receipt.eventId)?.[1] ?? fail(`the receipt eventId ${receipt.eventId} is not <txId>.<n>`);
  if (eventTx !== receipt.txId) fail(`the receipt eventId ${receipt.eventId} is not of its transaction ${receipt.txId}`);

  const configBlock = decode(() => commonPb.Block.deserializeBinary(base64Bytes(receipt.configBlock)), 'the config block');
  const msps = channelMsps(configBlock, receipt.channel);
  const rootCertificates: Record<string, string[]> = {};
  for (const [mspId, certs] of [...msps.orderer, ...msps.application]) rootCertificates[mspId] = await Promise.all(certs.roots.map(fingerprint256));
  const configHeader = configBlock.getHeader() ?? fail('the config block has no header');
  const configNumber = BigInt(configHeader.getNumber());
  // The genesis block is signed by no orderer: it is trusted by its hash (known to every member) and its roots.
  let configSignedBy: string[] = [];
  if (configNumber === 0n) {
    const { header: genesis } = await checkDataHash(configBlock, 'the genesis config block');
    if (genesis.getPreviousHash_asU8().length !== 0) fail('the config block is number 0 but names a previous block');
  } else {
    configSignedBy = [...(await checkBlock(configBlock, msps, 'the config block')).orderedBy].sort();
  }

  const block = decode(() => commonPb.Block.deserializeBinary(base64Bytes(receipt.block)), 'the block');
  const header = block.getHeader() ?? fail('the block has no header');
  if (BigInt(header.getNumber()) !== BigInt(receipt.blockNumber)) fail(`the receipt says block ${receipt.blockNumber} but its block is number ${header.getNumber()}`);
  if (lastConfigIndex(block) !== configNumber) fail(`the block's configuration is block ${lastConfigIndex(block)}, but the receipt carries config block ${configNumber}`);

  const data = block.getData()?.getDataList_asU8() ?? [];
  const envelopeBytes = data[receipt.txIndex] ?? fail(`block ${receipt.blockNumber} has no transaction ${receipt.txIndex}`);
  const envelope = decode(() => commonPb.Envelope.deserializeBinary(envelopeBytes), 'the transaction envelope');
  const payload = decode(() => commonPb.Payload.deserializeBinary(envelope.getPayload_asU8()), 'the transaction payload');
  const channelHeader = decode(() => commonPb.ChannelHeader.deserializeBinary(payload.getHeader()?.getChannelHeader_asU8() ?? new Uint8Array()), 'the transaction channel header');
  if (channelHeader.getTxId() !== receipt.txId) fail(`transaction ${receipt.txIndex} of block ${receipt.blockNumber} is ${channelHeader.getTxId()}, not ${receipt.txId}`);
  if (channelHeader.getChannelId() !== receipt.channel) fail(`the transaction is of channel ${channelHeader.getChannelId()}, not ${receipt.channel}`);
  if (channelHeader.getType() !== commonPb.HeaderType.ENDORSER_TRANSACTION) fail('the transaction is not an endorser transaction');
  const txTime = channelHeader.getTimestamp()?.toDate() ?? fail('the transaction has no timestamp');

  const signatureHeader = decode(
    () => commonPb.SignatureHeader.deserializeBinary(payload.getHeader()?.getSignatureHeader_asU8() ?? new Uint8Array()),
    'the transaction signature header',
  );
  const creator = await certificateOf(signatureHeader.getCreator_asU8(), msps.application, txTime, "the transaction's submitter");
  if (!(await signatureVerifies(creator.cert, envelope.getPayload_asU8(), envelope.getSignature_asU8())))
    fail(`the transaction's signature (MSP ${creator.mspId}) does not verify`);

  const transaction = decode(() => transactionPb.Transaction.deserializeBinary(payload.getData_asU8()), 'the transaction');
  const endorsedBy = new Set<string>();
  const key = `\u0000hdx.audit\u0000${receipt.eventId}\u0000`;
  let written: Uint8Array | undefined;
  for (const [a, action] of transaction.getActionsList().entries()) {
    const actionPayload = decode(() => transactionPb.ChaincodeActionPayload.deserializeBinary(action.getPayload_asU8()), `transaction action ${a}`);
    const endorsed = actionPayload.getAction() ?? fail(`transaction action ${a} has no endorsed action`);
    const responseBytes = endorsed.getProposalResponsePayload_asU8();
    const endorsements = endorsed.getEndorsementsList();
    if (endorsements.length === 0) fail(`transaction action ${a} has no endorsement`);
    for (const [i, e] of endorsements.entries()) {
      const endorser = await certificateOf(e.getEndorser_asU8(), msps.application, txTime, `endorsement ${i}`);
      if (!(await signatureVerifies(endorser.cert, concat([responseBytes, e.getEndorser_asU8()]), e.getSignature_asU8())))
        fail(`endorsement ${i} (MSP ${endorser.mspId}) does not verify over the proposal response: the transaction's results or the signature were changed`);
      endorsedBy.add(endorser.mspId);
    }
    const response = decode(() => proposalResponsePb.ProposalResponsePayload.deserializeBinary(responseBytes), `transaction action ${a}'s proposal response`);
    const chaincodeAction = decode(() => proposalPb.ChaincodeAction.deserializeBinary(response.getExtension_asU8()), `transaction action ${a}'s chaincode action`);
    const rwset = decode(() => rwsetPb.TxReadWriteSet.deserializeBinary(chaincodeAction.getResults_asU8()), `transaction action ${a}'s read-write set`);
    for (const ns of rwset.getNsRwsetList()) {
      if (ns.getNamespace() !== receipt.chaincode) continue;
      const kv = decode(() => kvrwsetPb.KVRWSet.deserializeBinary(ns.getRwset_asU8()), `transaction action ${a}'s writes`);
      for (const w of kv.getWritesList()) if (w.getKey() === key && !w.getIsDelete()) written = w.getValue_asU8();
    }
  }
  if (written === undefined) return fail(`the transaction does not write access entry ${receipt.eventId} in ${receipt.chaincode}`);
  let ledgerEntry: unknown;
  try {
    ledgerEntry = JSON.parse(new TextDecoder().decode(written));
  } catch {
    return fail(`the value written for ${receipt.eventId} is not JSON`);
  }
  if (canonicalize(ledgerEntry) !== canonicalize(receipt.entry)) fail(`the receipt's entry is not the entry the transaction wrote for ${receipt.eventId}: it was changed`);

  const ordering = await checkBlock(block, msps, `block ${receipt.blockNumber}`);
  const code = block.getMetadata()?.getMetadataList_asU8()[commonPb.BlockMetadataIndex.TRANSACTIONS_FILTER]?.[receipt.txIndex];
  if (code === undefined) fail(`block ${receipt.blockNumber} has no validation code for transaction ${receipt.txIndex}`);
  if (code !== transactionPb.TxValidationCode.VALID) {
    const name = Object.entries(transactionPb.TxValidationCode).find(([, v]) => v === code)?.[0] ?? String(code);
    fail(`the peer marked transaction ${receipt.txId} invalid (${name}): it wrote nothing`);
  }

  return {
    eventId: receipt.eventId,
    txId: receipt.txId,
    blockNumber: receipt.blockNumber,
    txIndex: receipt.txIndex,
    blockHash: hex(await sha256(blockHeaderBytes(header))),
    endorsedBy: [...endorsedBy].sort(),
    orderedBy: [...ordering.orderedBy].sort(),
    ordererSignatures: ordering.signatures,
    submittedBy: creator.mspId,
    configBlockNumber: String(configNumber),
    configBlockHash: hex(await sha256(blockHeaderBytes(configHeader))),
    configSignedBy,
    rootCertificates,
    entry: receipt.entry,
  };
}

/**
 * Whether the receipt's entry is the access the page shows: the same ledger event, actor, patient,
 * decision and purpose as the AuditEvent the gateway's search returned. Names the first difference.
 */
export function entryMatchesEvent(entry: Json, event: unknown): string | undefined {
  const e = obj(event);
  const eventId = arr(e.extension)
    .map(obj)
    .find((x) => str(x.url).endsWith('/ledger-event-id'))?.valueString;
  if (str(entry.eventId) !== eventId) return `the receipt is of entry ${str(entry.eventId)}, not of this row (${String(eventId)})`;
  const agents = arr(e.agent).map(obj);
  const requestor = agents.find((a) => a.requestor === true) ?? {};
  const actor = str(obj(obj(requestor.who).identifier).value);
  if (actor !== str(entry.actor)) return 'the receipt names another actor than this row';
  const patients = arr(e.entity).map((x) => str(obj(obj(obj(x).what).identifier).value));
  if (!patients.includes(str(entry.patient))) return 'the receipt names another patient than this row';
  const permitted = e.outcome === '0';
  if (permitted !== (entry.decision === 'permit')) return 'the receipt records another decision than this row';
  const purposes = arr(e.purposeOfEvent).flatMap((p) => arr(obj(p).coding).map((c) => str(obj(c).code)));
  if (!purposes.includes(str(entry.purpose))) return 'the receipt records another purpose than this row';
  return undefined;
}

/** The receipt of an access entry, from the gateway (auditors only): `GET /fhir/AuditEvent/<eventId>/$receipt`. */
export async function fetchReceipt(config: AppConfig, key: PatientKey, eventId: string): Promise<unknown> {
  return fhirRequest(config, key, 'user/AuditEvent.read', 'GET', `/AuditEvent/${encodeURIComponent(eventId)}/$receipt`);
}
