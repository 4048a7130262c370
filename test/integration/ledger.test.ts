/**
 * The hdx chaincode on the real network (issue 3): three organizations' peers, each reached through the
 * organization's own Fabric Gateway identity, with keys held by the test as a patient's wallet would.
 * Covers the contracts' metadata, identities across organizations, consent granted, honoured and revoked
 * (denying at once), forged and replayed consent signatures, concurrent writes, and anchor immutability.
 *
 * A submit returns once the submitting organization's own peer has committed the transaction. Where a
 * test then reads through another organization's peer, it first waits for that peer to commit the same
 * block (syncPeers): the wait is for a block event, never a sleep.
 */
import * as crypto from 'node:crypto';
import { expect } from 'chai';
import type { Anchor, AuditEntry, ConsentRecord } from '@hdx/chaincode';
import { canonicalJson, consentPayload, DidKey, decodeCompact, newNonce, nowSeconds, permitOrganizationConsent, signCompact, thumbprint } from '../support/jose';
import { LedgerError, OrgClient, syncPeers, type Submitted } from '../support/ledger';

const IDENTITY = 'hdx.identity';
const CONSENT = 'hdx.consent';
const RECORD = 'hdx.record';
const AUDIT = 'hdx.audit';

const H1 = 'Hospital1MSP';
const H2 = 'Hospital2MSP';
const REG = 'RegulatorMSP';

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface Resolution {
  didDocument: {
    '@context': string[];
    id: string;
    controller: string;
    verificationMethod: Array<{ id: string; type: string; controller: string; publicKeyJwk: Record<string, string> }>;
    authentication: string[];
    assertionMethod: string[];
    service?: unknown[];
  };
  didDocumentMetadata: { versionId: string; created: string; updated: string; deactivated: boolean };
  didResolutionMetadata: Record<string, unknown>;
  hdx: { kind: string; status: string; organization: string; guardians: string[] };
}

interface AccessDecision {
  decision: 'permit' | 'deny';
  consents: string[];
  reason: string;
  breakGlass: boolean;
}

interface AuditPage {
  entries: AuditEntry[];
  bookmark: string;
  fetchedRecordsCount: number;
}

/** Awaits a call that must fail, and checks the LedgerError code (and message) it failed with. */
async function refused(call: Promise<unknown>, code: string, message?: RegExp): Promise<LedgerError> {
  let outcome: unknown;
  try {
    outcome = await call;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(LedgerError);
    const e = err as LedgerError;
    expect(e.code, e.message).to.equal(code);
    if (message) expect(e.message).to.match(message);
    return e;
  }
  expect.fail(`expected ${code}, but the call succeeded with ${JSON.stringify(outcome)}`);
}

/** A random HMAC-SHA-256-shaped commitment (base64url of 32 bytes). */
function commitment(): { alg: 'HMAC-SHA-256'; value: string } {
  return { alg: 'HMAC-SHA-256', value: crypto.randomBytes(32).toString('base64url') };
}

function uniqueId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID()}`;
}

describe('hdx chaincode on the real network: three organizations', () => {
  let h1: OrgClient;
  let h2: OrgClient;
  let reg: OrgClient;
  let regAdmin: OrgClient;
  const peers = (): OrgClient[] => [h1, h2, reg];
  /** Waits until all three peers have committed the block of a submitted transaction. */
  const everywhere = async <T>(submitted: Submitted<T>): Promise<T> => {
    await syncPeers(peers(), submitted.blockNumber);
    return submitted.result;
  };

  async function registerPatient(via: OrgClient): Promise<DidKey> {
    const key = new DidKey();
    await everywhere(await via.submitTx(IDENTITY, 'Register', key.registration('patient')));
    return key;
  }

  function anchorInput(patient: string, resourceType: string, id: string, c = commitment()): Record<string, unknown> {
    return { resourceType, id, versionId: '1', patient, lastUpdated: new Date().toISOString(), commitment: c };
  }

  before(async () => {
    [h1, h2, reg] = await Promise.all([OrgClient.gateway('hospital1'), OrgClient.gateway('hospital2'), OrgClient.gateway('regulator')]);
    regAdmin = OrgClient.admin('regulator');
  });

  after(() => {
    for (const c of [h1, h2, reg, regAdmin]) c?.close();
  });

  it('GetMetadata lists the four hdx contracts with their transactions, submit and evaluate as documented', async () => {
    interface TxMeta {
      name: string;
      tag?: string[];
      parameters?: Array<{ name: string }>;
    }
    const metadata = await reg.evaluate<{ contracts: Record<string, { name: string; transactions: TxMeta[] }> }>('org.hyperledger.fabric', 'GetMetadata');
    expect(Object.keys(metadata.contracts)).to.include.members(['hdx.identity', 'hdx.consent', 'hdx.record', 'hdx.audit']);
    const expected: Record<string, { submit: string[]; evaluate: string[] }> = {
      'hdx.identity': { submit: ['Register', 'Update', 'RotateKey', 'Deactivate', 'AddGuardian', 'RemoveGuardian'], evaluate: ['Resolve', 'History', 'FindByIdentifier'] },
      'hdx.consent': { submit: ['Grant', 'Update', 'Revoke'], evaluate: ['GetConsent', 'History', 'ListByPatient', 'EvaluateAccess'] },
      'hdx.record': { submit: ['Anchor', 'AnchorBatch', 'AnchorAndRecord', 'EraseResource', 'ErasePatient'], evaluate: ['GetAnchor', 'Verify', 'GetHistory', 'LocateRecords'] },
      'hdx.audit': { submit: ['RecordAccess', 'RecordAccessBatch', 'AuthorizeAndRecord', 'ReviewBreakGlass'], evaluate: ['GetEntry', 'QueryAccess', 'QueryBreakGlass'] },
    };
    for (const [name, { submit, evaluate }] of Object.entries(expected)) {
      const contract = metadata.contracts[name];
      expect(contract, name).to.not.equal(undefined);
      const txs = new Map((contract?.transactions ?? []).map((t) => [t.name, t]));
      for (const tx of submit) expect(txs.get(tx)?.tag, `${name}:${tx}`).to.include('SUBMIT');
      for (const tx of evaluate) expect(txs.get(tx)?.tag, `${name}:${tx}`).to.include('EVALUATE');
    }
    // The parameter lists the README documents (every declared parameter must be passed).
    const params = (contract: string, tx: string): string[] => (metadata.contracts[contract]?.transactions.find((t) => t.name === tx)?.parameters ?? []).map((p) => p.name);
    expect(params('hdx.record', 'Anchor')).to.deep.equal(['anchorJson']);
    expect(params('hdx.record', 'Verify')).to.deep.equal(['resourceType', 'id', 'versionId', 'commitment']);
    expect(params('hdx.consent', 'ListByPatient')).to.deep.equal(['patient', 'pageSize', 'bookmark']);
    expect(params('hdx.audit', 'GetEntry')).to.deep.equal(['eventId', 'requester']);
    expect(params('hdx.audit', 'ReviewBreakGlass')).to.deep.equal(['reviewJws']);
  });

  describe('identities across organizations', () => {
    it('resolves a patient DID registered through hospital1 from hospital2 and the regulator, as a W3C DID document', async () => {
      const patient = new DidKey();
      // The DID is the RFC 7638 thumbprint of the key, computed here independently of the chaincode.
      expect(patient.did).to.equal(`did:hdx:${thumbprint(patient.jwk)}`);
      const registered = await h1.submitTx<Resolution>(IDENTITY, 'Register', patient.registration('patient'));
      await everywhere(registered);

      const kid = `${patient.did}#key-1`;
      const expectedDocument = {
        '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'],
        id: patient.did,
        controller: patient.did,
        verificationMethod: [{ id: kid, type: 'JsonWebKey2020', controller: patient.did, publicKeyJwk: { ...patient.jwk } }],
        authentication: [kid],
        assertionMethod: [kid],
      };
      for (const reader of [h2, reg]) {
        const resolved = await reader.evaluate<Resolution>(IDENTITY, 'Resolve', patient.did);
        expect(resolved.didDocument, reader.org).to.deep.equal(expectedDocument);
        expect(resolved.didDocumentMetadata.versionId).to.equal('1');
        expect(resolved.didDocumentMetadata.deactivated).to.equal(false);
        expect(resolved.didDocumentMetadata.created).to.match(INSTANT);
        expect(resolved.didDocumentMetadata.updated).to.equal(resolved.didDocumentMetadata.created);
        expect(resolved.didResolutionMetadata).to.deep.equal({ contentType: 'application/did+json' });
        expect(resolved.hdx).to.deep.equal({ kind: 'patient', status: 'active', organization: H1, guardians: [], pendingGuardians: [] });
        // Every peer answers with exactly what the registering transaction returned.
        expect(resolved).to.deep.equal(registered.result);
      }

      // The same DID cannot be registered twice, not even by another organization.
      await refused(h2.submit(IDENTITY, 'Register', patient.registration('patient')), 'ALREADY_EXISTS', /is already registered/);
    });

    it('refuses a squatted DID: a proof not made by the registered key is UNAUTHENTICATED and nothing is stored', async () => {
      const victim = new DidKey();
      const squatter = new DidKey();
      const proof = squatter.sign({ action: 'register', did: victim.did, kind: 'patient', nonce: newNonce(), iat: nowSeconds() }, victim.kid);
      const registration = JSON.stringify({ kind: 'patient', publicKeyJwk: victim.jwk, did: victim.did, proof });
      await refused(h1.submit(IDENTITY, 'Register', registration), 'UNAUTHENTICATED', /signature does not verify/);
      for (const reader of peers()) await refused(reader.evaluate(IDENTITY, 'Resolve', victim.did), 'NOT_FOUND');
    });

    it('lets only the regulator register an auditor DID: hospital2 is FORBIDDEN', async () => {
      const auditor = new DidKey();
      await refused(h2.submit(IDENTITY, 'Register', auditor.registration('auditor')), 'FORBIDDEN', /auditor DIDs are registered only by an admin or gateway of RegulatorMSP/);
      await refused(h2.evaluate(IDENTITY, 'Resolve', auditor.did), 'NOT_FOUND');

      const registered = await reg.submitTx<Resolution>(IDENTITY, 'Register', auditor.registration('auditor'));
      expect(registered.result.hdx).to.deep.equal({ kind: 'auditor', status: 'active', organization: REG, guardians: [], pendingGuardians: [] });
      await everywhere(registered);
      const resolved = await h2.evaluate<Resolution>(IDENTITY, 'Resolve', auditor.did);
      expect(resolved.hdx.kind).to.equal('auditor');
      expect(resolved.didDocument.assertionMethod).to.deep.equal([auditor.kid]);
    });
  });

  describe('consent: granted, honoured by another organization, revoked and denied at once', () => {
    let patient: DidKey;
    let clinician: DidKey;
    let auditor: DidKey;
    let resource: string;

    before(async () => {
      patient = await registerPatient(h1);
      clinician = new DidKey(); // a hospital2 practitioner
      auditor = new DidKey();
      await Promise.all([h2.submit(IDENTITY, 'Register', clinician.registration('practitioner')), reg.submit(IDENTITY, 'Register', auditor.registration('auditor'))]);
      const id = uniqueId('obs');
      await everywhere(await h1.submitTx(RECORD, 'Anchor', JSON.stringify(anchorInput(patient.did, 'Observation', id))));
      resource = `Observation/${id}/_history/1`;
    });

    it('permits hospital2 under the patient-signed consent, and denies the very next request after the revoke commits', async () => {
      const request = JSON.stringify({ actor: clinician.did, actorOrganization: H2, purpose: 'TREAT', resource });
      const evaluate = (via: OrgClient): Promise<AccessDecision> => via.evaluate<AccessDecision>(CONSENT, 'EvaluateAccess', request);

      // Without a consent, another organization's treatment access falls to the default: deny.
      expect(await evaluate(h2)).to.deep.equal({ decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false });

      // The patient signs the grant; hospital1 relays it.
      const consentId = crypto.randomUUID();
      const consent = permitOrganizationConsent(consentId, patient.did, H2, 'TREAT');
      const grantJws = patient.sign(consentPayload(consent, 'grant'));
      expect(decodeCompact(grantJws).header).to.deep.equal({ alg: 'ES256', kid: `${patient.did}#key-1` });
      const granted = await everywhere(await h1.submitTx<ConsentRecord>(CONSENT, 'Grant', grantJws));
      expect(granted).to.include({
        id: consentId,
        patient: patient.did,
        status: 'active',
        version: 1,
        action: 'grant',
        signer: patient.did,
        kid: patient.kid,
        jws: grantJws,
        submittedBy: H1,
      });
      expect(granted.consent).to.deep.equal(consent);

      // Hospital2's own peer (and the regulator's) now permit, naming the consent.
      const permit = { decision: 'permit', consents: [consentId], reason: 'consent-permit', breakGlass: false };
      expect(await evaluate(h2)).to.deep.equal(permit);
      expect(await evaluate(reg)).to.deep.equal(permit);
      // The consent is scoped: the same organization for research is still denied.
      expect(await h2.evaluate<AccessDecision>(CONSENT, 'EvaluateAccess', JSON.stringify({ actor: clinician.did, actorOrganization: H2, purpose: 'HRESCH', resource }))).to.include(
        {
          decision: 'deny',
          reason: 'no-permit',
        },
      );

      // Sync audit mode: the permit is decided and recorded in one transaction.
      const authorizeRequest = JSON.stringify({ actor: clinician.did, actorOrganization: H2, purpose: 'TREAT', resource, subtype: 'read' });
      const permitted = await h2.submitTx<AccessDecision & { eventId: string }>(AUDIT, 'AuthorizeAndRecord', authorizeRequest);
      expect(permitted.result).to.include({ decision: 'permit', reason: 'consent-permit', breakGlass: false });
      expect(permitted.result.consents).to.deep.equal([consentId]);

      // The patient revokes; this time hospital2 relays the signed revocation.
      const revokeJws = patient.sign(consentPayload({ resourceType: 'Consent', id: consentId, patient: { reference: patient.did } }, 'revoke'));
      const revoked = await h2.submitTx<ConsentRecord>(CONSENT, 'Revoke', revokeJws);
      expect(revoked.result).to.include({ id: consentId, status: 'inactive', version: 2, action: 'revoke', signer: patient.did });

      // The very next evaluation on hospital2's peer, right after the revoke committed there: deny.
      const deny = { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
      expect(await evaluate(h2)).to.deep.equal(deny);

      // The recorded decision follows. AuthorizeAndRecord is endorsed by two organizations' peers, so the
      // test lets every peer commit the revocation first: no endorser then answers from the older state
      // (a transaction endorsed that way could not commit anyway: its consent range read would be a phantom read).
      await everywhere(revoked);
      expect(await evaluate(h1)).to.deep.equal(deny);
      expect(await evaluate(reg)).to.deep.equal(deny);
      const denied = await everywhere(await h2.submitTx<AccessDecision & { eventId: string }>(AUDIT, 'AuthorizeAndRecord', authorizeRequest));
      expect(denied).to.deep.include({ decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false });

      // A revoked consent stays revoked.
      const again = patient.sign(consentPayload({ resourceType: 'Consent', id: consentId, patient: { reference: patient.did } }, 'revoke'));
      await refused(h1.submit(CONSENT, 'Revoke', again), 'CONFLICT', new RegExp(`Consent/${consentId} is revoked`));
      const history = await reg.evaluate<ConsentRecord[]>(CONSENT, 'History', consentId);
      expect(history.map((v) => [v.version, v.action, v.status])).to.deep.equal([
        [1, 'grant', 'active'],
        [2, 'revoke', 'inactive'],
      ]);

      // Both decisions are on the ledger as audit entries, which the regulator reads.
      const expectedEntry = { actor: clinician.did, actorOrganization: H2, patient: patient.did, purpose: 'TREAT', action: 'R', subtype: 'read', custodian: H1, gateway: H2 };
      const byAdmin = await regAdmin.evaluate<AuditPage>(AUDIT, 'QueryAccess', JSON.stringify({ patient: patient.did }));
      const byAuditor = await reg.evaluate<AuditPage>(AUDIT, 'QueryAccess', JSON.stringify({ patient: patient.did, requester: auditor.did }));
      for (const page of [byAdmin, byAuditor]) {
        expect(page.entries.map((e) => e.eventId)).to.deep.equal([permitted.result.eventId, denied.eventId]);
        const [first, second] = page.entries;
        expect(first).to.include({ ...expectedEntry, decision: 'permit', reason: 'consent-permit', breakGlass: false, txId: permitted.txId });
        expect(first?.consents).to.deep.equal([consentId]);
        expect(first?.resources).to.deep.equal([resource]);
        expect(second).to.include({ ...expectedEntry, decision: 'deny', reason: 'no-permit', breakGlass: false });
        expect(second?.consents).to.deep.equal([]);
      }
      const entry = await reg.evaluate<AuditEntry>(AUDIT, 'GetEntry', denied.eventId, auditor.did);
      expect(entry).to.deep.equal(byAdmin.entries[1]);
      // The regulator's gateway identity reads access history only on behalf of a DID.
      await refused(reg.evaluate(AUDIT, 'QueryAccess', JSON.stringify({ patient: patient.did })), 'FORBIDDEN');
    });
  });

  describe('forged and replayed consent signatures', () => {
    let patient: DidKey;
    let otherPatient: DidKey;

    before(async () => {
      [patient, otherPatient] = await Promise.all([registerPatient(h1), registerPatient(h2)]);
    });

    it("refuses a consent signed by another key under the patient's kid (UNAUTHENTICATED) and stores nothing", async () => {
      const consentId = crypto.randomUUID();
      const consent = permitOrganizationConsent(consentId, patient.did, H2, 'TREAT');
      // One payload (one nonce), signed three ways.
      const payload = consentPayload(consent, 'grant');
      const forger = new DidKey();
      const forged = forger.sign(payload, patient.kid);
      await refused(h2.submit(CONSENT, 'Grant', forged), 'UNAUTHENTICATED', new RegExp(`signature does not verify with ${patient.kid}`));

      // A genuine signature over one payload does not carry over to another (here: a wider purpose).
      const genuine = patient.sign(payload);
      const [header, , signature] = decodeCompact(genuine).parts;
      const widened = Buffer.from(canonicalJson({ ...payload, consent: permitOrganizationConsent(consentId, patient.did, H2, 'HRESCH') })).toString('base64url');
      await refused(h1.submit(CONSENT, 'Grant', `${header}.${widened}.${signature}`), 'UNAUTHENTICATED', /signature does not verify/);

      // A valid signature by another registered patient cannot grant for this one.
      const byOther = otherPatient.sign(payload);
      await refused(h1.submit(CONSENT, 'Grant', byOther), 'FORBIDDEN', /must be signed by the patient or a registered guardian/);

      // Nothing reached any peer's state.
      for (const reader of peers()) await refused(reader.evaluate(CONSENT, 'GetConsent', consentId), 'NOT_FOUND', /is not on the ledger/);
      const list = await reg.evaluate<{ consents: ConsentRecord[] }>(CONSENT, 'ListByPatient', patient.did, '', '');
      expect(list.consents).to.deep.equal([]);
      // And the refused attempts consumed nothing, not even the nonce: the patient's own grant goes through.
      const granted = await h1.submit<ConsentRecord>(CONSENT, 'Grant', genuine);
      expect(granted).to.include({ id: consentId, version: 1, signer: patient.did });
    });

    it('refuses the exact same signed grant submitted again (nonce replay: CONFLICT), through either organization', async () => {
      const consentId = crypto.randomUUID();
      const jws = patient.sign(consentPayload(permitOrganizationConsent(consentId, patient.did, H2, 'TREAT'), 'grant'));
      const first = await everywhere(await h1.submitTx<ConsentRecord>(CONSENT, 'Grant', jws));
      expect(first).to.include({ id: consentId, version: 1 });

      await refused(h1.submit(CONSENT, 'Grant', jws), 'CONFLICT', /nonce was already used \(replay\)/);
      await refused(h2.submit(CONSENT, 'Grant', jws), 'CONFLICT', /nonce was already used \(replay\)/);

      // A replayed grant changed nothing.
      const history = await reg.evaluate<ConsentRecord[]>(CONSENT, 'History', consentId);
      expect(history).to.have.length(1);
      expect(history[0]).to.deep.equal(first);
    });

    it('refuses a payload that is not RFC 8785 canonical JSON (INVALID), even when correctly signed', async () => {
      const consentId = crypto.randomUUID();
      const { consent, action, nonce, iat } = consentPayload(permitOrganizationConsent(consentId, patient.did, H2, 'TREAT'), 'grant');
      const text = JSON.stringify({ nonce, iat, action, consent }, null, 1);
      const jws = signCompact(patient.privateKey, { alg: 'ES256', kid: patient.kid }, text);
      await refused(h1.submit(CONSENT, 'Grant', jws), 'INVALID', /payload must be RFC 8785 canonical JSON/);
      await refused(h1.evaluate(CONSENT, 'GetConsent', consentId), 'NOT_FOUND');
    });
  });

  describe('concurrent writes', () => {
    it('commits 30 access entries about one patient submitted in parallel by two organizations, none lost to MVCC conflicts', async () => {
      const patient = await registerPatient(h1);
      const consentId = crypto.randomUUID();
      await everywhere(await h1.submitTx(CONSENT, 'Grant', patient.sign(consentPayload(permitOrganizationConsent(consentId, patient.did, H2, 'TREAT'), 'grant'))));
      // Registered practitioners: the chaincode refuses decisions for unregistered actors, and an entry
      // an organization records must be about its own records or its own registered users.
      const [h1Key, h2Key] = [new DidKey(), new DidKey()];
      await everywhere(await h1.submitTx(IDENTITY, 'Register', h1Key.registration('practitioner')));
      await everywhere(await h2.submitTx(IDENTITY, 'Register', h2Key.registration('practitioner')));
      const h1Actor = h1Key.did;
      const h2Actor = h2Key.did;

      // 15 entries stated by hospital1 (its own treatment access) and 15 sync-mode decisions by hospital2.
      const recordAccess = Array.from({ length: 15 }, (_, i) =>
        h1.submitTx<AuditEntry>(
          AUDIT,
          'RecordAccess',
          JSON.stringify({
            actor: h1Actor,
            actorOrganization: H1,
            patient: patient.did,
            resources: [`Observation/conc-${i}`],
            action: 'R',
            purpose: 'TREAT',
            decision: 'permit',
            consents: [],
            reason: 'custodian-treatment',
            breakGlass: false,
            custodian: H1,
          }),
        ),
      );
      const authorize = Array.from({ length: 15 }, () =>
        h2.submitTx<AccessDecision & { eventId: string }>(
          AUDIT,
          'AuthorizeAndRecord',
          JSON.stringify({ actor: h2Actor, actorOrganization: H2, actorAuth: 'did', purpose: 'TREAT', patient: patient.did, custodian: H1, resourceType: 'Observation' }),
        ),
      );
      const outcomes = await Promise.allSettled([...recordAccess, ...authorize]);
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      expect(failures, 'every concurrent audit write commits').to.deep.equal([]);
      const committed = outcomes.map((o) => (o as PromiseFulfilledResult<Submitted<AuditEntry | (AccessDecision & { eventId: string })>>).value);
      for (const c of committed.slice(15)) expect(c.result).to.deep.include({ decision: 'permit', consents: [consentId], reason: 'consent-permit' });
      const eventIds = committed.map((c) => c.result.eventId);
      expect(new Set(eventIds).size).to.equal(30);
      expect(new Set(committed.map((c) => c.txId)).size).to.equal(30);

      await syncPeers(
        peers(),
        committed.reduce((max, c) => (c.blockNumber > max ? c.blockNumber : max), 0n),
      );
      // The patient (through a gateway acting for them) sees all 30, oldest first, from either organization.
      for (const via of [h1, h2]) {
        const page = await via.evaluate<AuditPage>(AUDIT, 'QueryAccess', JSON.stringify({ patient: patient.did, requester: patient.did, pageSize: 200 }));
        expect(page.entries.map((e) => e.eventId).sort()).to.deep.equal([...eventIds].sort());
        const times = page.entries.map((e) => e.recordedAt);
        expect(times).to.deep.equal([...times].sort());
        expect(page.entries.filter((e) => e.gateway === H1)).to.have.length(15);
        expect(page.entries.filter((e) => e.gateway === H2)).to.have.length(15);
      }
    });

    it('leaves exactly one custodian when two organizations anchor the same version at once; the other gets CONFLICT', async () => {
      const patient = `pseudonym:${crypto.randomBytes(32).toString('hex')}`;
      for (let round = 0; round < 3; round++) {
        const id = uniqueId('race');
        const contenders = [h1, h2];
        const outcomes = await Promise.allSettled(
          contenders.map((c) => c.submitRetryingMvcc<Anchor>(5, RECORD, 'Anchor', JSON.stringify(anchorInput(patient, 'Observation', id)))),
        );
        const winners = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [{ client: contenders[i] as OrgClient, submitted: o.value }] : []));
        const losers = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as LedgerError] : []));
        expect(winners, `round ${round}: exactly one anchor commits`).to.have.length(1);
        expect(losers).to.have.length(1);
        const winner = winners[0] as (typeof winners)[number];
        const loser = losers[0] as LedgerError;
        // Whether the loser lost at endorsement or to a read conflict at commit, its final answer is CONFLICT.
        expect(loser.code, loser.message).to.equal('CONFLICT');
        expect(loser.message).to.match(new RegExp(`Observation/${id}/_history/1 is already anchored by another custodian`));
        expect(winner.submitted.result.custodian).to.equal(winner.client.mspId);

        await syncPeers(peers(), winner.submitted.blockNumber);
        for (const reader of peers()) {
          const history = await reader.evaluate<Anchor[]>(RECORD, 'GetHistory', 'Observation', id);
          expect(history, reader.org).to.deep.equal([winner.submitted.result]);
        }
      }
    });
  });

  describe('anchor immutability', () => {
    it('refuses to re-anchor a version with another commitment (CONFLICT); the same commitment is an idempotent no-op', async () => {
      const patient = `pseudonym:${crypto.randomBytes(32).toString('hex')}`;
      const id = uniqueId('imm');
      const original = commitment();
      const input = anchorInput(patient, 'Observation', id, original);
      const first = await everywhere(await h1.submitTx<Anchor>(RECORD, 'Anchor', JSON.stringify(input)));
      expect(first).to.include({ resourceType: 'Observation', id, versionId: '1', patient, custodian: H1 });
      expect(first.commitment).to.deep.equal(original);

      const other = commitment();
      await refused(
        h1.submit(RECORD, 'Anchor', JSON.stringify({ ...input, commitment: other })),
        'CONFLICT',
        new RegExp(`Observation/${id}/_history/1 is already anchored with a different commitment`),
      );
      await refused(h2.submit(RECORD, 'Anchor', JSON.stringify(input)), 'CONFLICT', /is already anchored by another custodian/);

      // The identical anchor again returns the stored one, first transaction id and time included.
      const repeat = await h1.submitTx<Anchor>(RECORD, 'Anchor', JSON.stringify(input));
      expect(repeat.result).to.deep.equal(first);
      expect(repeat.result.txId).to.not.equal(repeat.txId);

      for (const reader of peers()) {
        expect(await reader.evaluate<Anchor[]>(RECORD, 'GetHistory', 'Observation', id), reader.org).to.deep.equal([first]);
        expect(await reader.evaluate(RECORD, 'Verify', 'Observation', id, '1', original.value)).to.include({ verified: true, erased: false, custodian: H1 });
        expect(await reader.evaluate(RECORD, 'Verify', 'Observation', id, '1', other.value)).to.include({ verified: false });
      }
    });
  });
});
