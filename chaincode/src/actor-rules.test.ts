/**
 * The DID kind × actorAuth × purpose matrix against the REAL evaluator: hdx.consent:EvaluateAccess on
 * the in-memory ledger, with DIDs registered through hdx.identity. The expected reasons are written out
 * by hand (not recomputed from actor-rules.ts), so a change to the rules must change this table.
 */
import { expect } from 'chai';
import { PURPOSES_BY_KIND, actionCovers, effectiveAction, purposeAllowed } from './actor-rules';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { DID_KINDS } from './identity-model';
import * as index from './index';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, identity } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, REG_ADMIN, registerDid, signedBy } from './test-support/registry';

const consents = new ConsentContract();
const records = new RecordContract();
const REG_GATEWAY = identity('RegulatorMSP', 'gateway');
const COMMITMENT = { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 9).toString('base64url') };

type Auth = 'did' | 'idp' | 'delegated';
const AUTHS: Auth[] = ['did', 'idp', 'delegated'];
const PURPOSES = ['TREAT', 'ETREAT', 'PATRQT', 'FAMRQT', 'HCOMPL'] as const;
type Purpose = (typeof PURPOSES)[number];

// Reason shorthands.
const CT = 'custodian-treatment';
const BG = 'break-glass';
const NP = 'no-permit';
const PNA = 'purpose-not-allowed';
const DNA = 'delegation-not-allowed';
const POG = 'patient-or-guardian';

/** [did, idp, delegated] per purpose: another patient's Observation held by Hospital1, no consents. */
type Row = Record<Purpose, [string, string, string]>;
const EXPECTED: Record<string, Row> = {
  // A patient DID registered by Hospital1 asking about ANOTHER patient of Hospital1 (#2: no TREAT).
  patient: { TREAT: [PNA, PNA, DNA], ETREAT: [PNA, PNA, DNA], PATRQT: [NP, NP, DNA], FAMRQT: [NP, NP, DNA], HCOMPL: [PNA, PNA, DNA] },
  // A Hospital1 practitioner: treatment by its own users needs a self-authenticated actor.
  practitioner: { TREAT: [CT, CT, NP], ETREAT: [BG, BG, BG], PATRQT: [PNA, PNA, PNA], FAMRQT: [PNA, PNA, PNA], HCOMPL: [NP, NP, NP] },
  // Devices: no custodian-treatment default, no break-glass, never delegated.
  device: { TREAT: [NP, NP, DNA], ETREAT: [PNA, PNA, DNA], PATRQT: [PNA, PNA, DNA], FAMRQT: [PNA, PNA, DNA], HCOMPL: [NP, NP, DNA] },
  system: { TREAT: [CT, CT, DNA], ETREAT: [PNA, PNA, DNA], PATRQT: [PNA, PNA, DNA], FAMRQT: [PNA, PNA, DNA], HCOMPL: [NP, NP, DNA] },
  // The regulator's auditor (through the regulator's gateway): only its own purposes, and consents decide.
  auditor: { TREAT: [PNA, PNA, DNA], ETREAT: [PNA, PNA, DNA], PATRQT: [PNA, PNA, DNA], FAMRQT: [PNA, PNA, DNA], HCOMPL: [NP, NP, DNA] },
  // An organization DID is never an actor on patient data.
  organization: { TREAT: [PNA, PNA, DNA], ETREAT: [PNA, PNA, DNA], PATRQT: [PNA, PNA, DNA], FAMRQT: [PNA, PNA, DNA], HCOMPL: [PNA, PNA, DNA] },
};

describe('actor rules: DID kind × actorAuth × purpose (real evaluator)', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let guardian: TestKey;
  const actors = new Map<string, { key: TestKey; organization: string; submitter: FakeIdentity }>();

  const evaluate = async (request: Record<string, unknown>, who: FakeIdentity = H1_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify(request))));

  before(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    guardian = await registerDid(ledger, 'patient');
    const proof = signedBy(ledger, patient, { action: 'add-guardian', patient: patient.did, guardian: guardian.did });
    await ledger.invoke(H1_GATEWAY, (ctx) => new IdentityContract().AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did, proof })));
    await ledger.invoke(H1_GATEWAY, (ctx) =>
      records.Anchor(
        ctx,
        JSON.stringify({ resourceType: 'Observation', id: 'o1', versionId: '1', patient: patient.did, lastUpdated: '2024-05-01T10:00:00Z', commitment: COMMITMENT }),
      ),
    );
    for (const kind of DID_KINDS) {
      const who = kind === 'auditor' ? REG_ADMIN : kind === 'organization' || kind === 'system' ? H1_ADMIN : H1_GATEWAY;
      actors.set(kind, { key: await registerDid(ledger, kind, who), organization: who.mspId, submitter: kind === 'auditor' ? REG_GATEWAY : H1_GATEWAY });
    }
  });

  for (const kind of Object.keys(EXPECTED)) {
    for (const purpose of PURPOSES) {
      AUTHS.forEach((auth, column) => {
        const expected = (EXPECTED[kind] as Row)[purpose][column];
        it(`${kind} / ${auth} / ${purpose} → ${expected}`, async () => {
          const actor = actors.get(kind);
          if (!actor) throw new Error(`no ${kind} actor`);
          const decision = await evaluate(
            { actor: actor.key.did, actorOrganization: actor.organization, actorAuth: auth, purpose, resource: 'Observation/o1/_history/1' },
            actor.submitter,
          );
          expect(decision.reason).to.equal(expected);
          expect(decision.decision).to.equal([CT, BG, POG].includes(expected as string) ? 'permit' : 'deny');
          expect(decision.breakGlass).to.equal(purpose === 'ETREAT');
        });
      });
    }
  }

  it('an absent actorAuth is delegated (fail safe) for every kind and purpose', async () => {
    for (const kind of Object.keys(EXPECTED)) {
      const actor = actors.get(kind);
      for (const purpose of PURPOSES) {
        const decision = await evaluate({ actor: actor?.key.did, actorOrganization: actor?.organization, purpose, resource: 'Observation/o1/_history/1' }, actor?.submitter);
        expect(decision.reason, `${kind} ${purpose}`).to.equal((EXPECTED[kind] as Row)[purpose][2]);
      }
    }
  });

  describe('the patient and their guardian', () => {
    const cases: Array<[string, () => string, Purpose, [string, string, string]]> = [
      ['the patient', () => patient.did, 'PATRQT', [POG, POG, DNA]],
      ['the patient', () => patient.did, 'TREAT', [PNA, PNA, DNA]],
      ['a guardian', () => guardian.did, 'FAMRQT', [POG, POG, DNA]],
      ['a guardian', () => guardian.did, 'ETREAT', [PNA, PNA, DNA]],
    ];
    for (const [who, did, purpose, row] of cases) {
      AUTHS.forEach((auth, column) => {
        it(`${who} / ${auth} / ${purpose} → ${row[column]}`, async () => {
          expect((await evaluate({ actor: did(), actorOrganization: 'Hospital1MSP', actorAuth: auth, purpose, resource: 'Observation/o1/_history/1' })).reason).to.equal(
            row[column],
          );
        });
      });
    }
  });

  describe('identity refusals, every kind (patients included)', () => {
    it('an unregistered actor is denied actor-unregistered, whatever the purpose and auth', async () => {
      const stranger = `did:hdx:${'u'.repeat(43)}`;
      for (const purpose of PURPOSES) {
        for (const auth of AUTHS) {
          expect((await evaluate({ actor: stranger, actorOrganization: 'Hospital1MSP', actorAuth: auth, purpose, resource: 'Observation/o1/_history/1' })).reason).to.equal(
            'actor-unregistered',
          );
        }
      }
    });

    it('a registered actor named with another organization is denied actor-organization-mismatch (patients too, #1)', async () => {
      for (const kind of DID_KINDS) {
        const actor = actors.get(kind);
        expect(
          (await evaluate({ actor: actor?.key.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'PATRQT', resource: 'Observation/o1/_history/1' })).reason,
          kind,
        ).to.equal('actor-organization-mismatch');
      }
      expect(
        (await evaluate({ actor: patient.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'PATRQT', resource: 'Observation/o1/_history/1' })).reason,
      ).to.equal('actor-organization-mismatch');
    });

    it('idp needs actorOrganization to be the submitting MSP', async () => {
      const doctor = actors.get('practitioner');
      // Hospital1's practitioner "vouched for by an IdP" in a request Hospital2's gateway submits.
      const d = await evaluate(
        { actor: doctor?.key.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource: 'Observation/o1/_history/1' },
        identity('Hospital2MSP', 'gateway'),
      );
      expect(d).to.deep.include({ decision: 'deny', reason: 'actor-organization-mismatch' });
    });

    it('refuses an unknown actorAuth with INVALID', async () => {
      const doctor = actors.get('practitioner');
      let message = '';
      try {
        await evaluate({ actor: doctor?.key.did, actorOrganization: 'Hospital1MSP', actorAuth: 'self', purpose: 'TREAT', resource: 'Observation/o1/_history/1' });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).to.match(/^INVALID: request.actorAuth/);
    });
  });

  describe('the purpose table', () => {
    it('is exported from the package index as the same object the evaluator uses', () => {
      expect(index.PURPOSES_BY_KIND).to.equal(PURPOSES_BY_KIND);
      expect(index.purposeAllowed).to.equal(purposeAllowed);
    });

    it('covers every DID kind and allows what the contract says', () => {
      expect(Object.keys(PURPOSES_BY_KIND).sort()).to.deep.equal([...DID_KINDS].sort());
      expect(['PATRQT', 'FAMRQT'].every((p) => purposeAllowed('patient', p))).to.equal(true);
      expect(['TREAT', 'ETREAT', 'HCOMPL'].some((p) => purposeAllowed('patient', p))).to.equal(false);
      expect(['TREAT', 'ETREAT', 'HRESCH', 'HOPERAT'].every((p) => purposeAllowed('practitioner', p))).to.equal(true);
      expect(purposeAllowed('practitioner', 'PATRQT') || purposeAllowed('practitioner', 'FAMRQT')).to.equal(false);
      for (const kind of ['device', 'system'] as const) {
        expect(purposeAllowed(kind, 'TREAT')).to.equal(true);
        expect(purposeAllowed(kind, 'ETREAT') || purposeAllowed(kind, 'PATRQT') || purposeAllowed(kind, 'FAMRQT')).to.equal(false);
      }
      expect(['HCOMPL', 'HOPERAT', 'HLEGAL', 'PUBHLTH'].every((p) => purposeAllowed('auditor', p))).to.equal(true);
      expect(purposeAllowed('auditor', 'TREAT')).to.equal(false);
      expect(['TREAT', 'ETREAT', 'PATRQT', 'HCOMPL'].some((p) => purposeAllowed('organization', p))).to.equal(false);
    });
  });

  describe('consent action', () => {
    it('is access for the custodian own users and always disclose across organizations', () => {
      expect(effectiveAction(undefined, 'Hospital1MSP', 'Hospital1MSP')).to.equal('access');
      expect(effectiveAction('use', 'Hospital1MSP', 'Hospital1MSP')).to.equal('use');
      expect(effectiveAction(undefined, 'Hospital2MSP', 'Hospital1MSP')).to.equal('disclose');
      expect(effectiveAction('access', 'Hospital2MSP', 'Hospital1MSP')).to.equal('disclose');
    });

    it('access is covered by access or use; disclose by disclose or access', () => {
      expect(actionCovers('access', 'access') && actionCovers('use', 'access')).to.equal(true);
      expect(actionCovers('disclose', 'access')).to.equal(false);
      expect(actionCovers('disclose', 'disclose') && actionCovers('access', 'disclose')).to.equal(true);
      expect(actionCovers('use', 'disclose')).to.equal(false);
    });
  });
});
