import { expect } from 'chai';
import { AccessRequest, EvaluationContext, StoredConsent, dataPeriodMatches, evaluateAccess } from './consent-evaluate';
import { MSP_SYSTEM, Provision } from './consent-model';

const did = (c: string) => `did:hdx:${c.repeat(43)}`;
const PATIENT = did('P');
const DOCTOR = did('D');
const GUARDIAN = did('G');
const ORG2 = did('O');
const NOW = Date.parse('2024-06-01T12:00:00Z');

const request = (overrides: Partial<AccessRequest> = {}): AccessRequest => ({
  patient: PATIENT,
  actor: DOCTOR,
  actorOrganization: 'Hospital2MSP',
  actorAuth: 'did',
  custodian: 'Hospital1MSP',
  action: 'access',
  purpose: 'TREAT',
  resourceType: 'Observation',
  securityLabels: [],
  ...overrides,
});
type PartialContext = Omit<EvaluationContext, 'actorIdentity' | 'submitter'> & Partial<Pick<EvaluationContext, 'actorIdentity' | 'submitter'>>;
const context = (overrides: Partial<EvaluationContext> = {}): PartialContext => ({
  now: NOW,
  actorOrganizationDids: [ORG2],
  actorOrganizationRemoved: false,
  guardians: [GUARDIAN],
  ...overrides,
});
const consent = (id: string, provision: Provision, status: 'active' | 'inactive' = 'active', patient = PATIENT): StoredConsent => ({
  id,
  status,
  consent: { resourceType: 'Consent', id, status: 'active', patient: { reference: patient }, provision },
});
const purpose = (...codes: string[]) => codes.map((code) => ({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code }));
const cls = (...codes: string[]) => codes.map((code) => ({ system: 'http://hl7.org/fhir/resource-types', code }));
const byMsp = (value: string) => ({ reference: { identifier: { system: MSP_SYSTEM as typeof MSP_SYSTEM, value } } });
const byDid = (reference: string) => ({ reference: { reference } });
const actions = (...codes: Array<'access' | 'use' | 'disclose' | 'collect' | 'correct'>) => codes.map((code) => ({ coding: [{ code }] }));
/** Unless the context says otherwise: the actor is an active DID of its stated organization (a patient DID for PATIENT and GUARDIAN, else a practitioner), submitted by that organization. */
const decide = (r: AccessRequest, consents: StoredConsent[] = [], c: PartialContext = context()) =>
  evaluateAccess(r, consents, {
    actorIdentity: { kind: r.actor === PATIENT || r.actor === GUARDIAN ? 'patient' : 'practitioner', status: 'active', organization: r.actorOrganization },
    submitter: r.actorOrganization,
    ...c,
  });

describe('consent evaluation (precedence rules)', () => {
  describe('defaults when no consent applies', () => {
    it('permits the custodian its own records for TREAT', () => {
      expect(decide(request({ actorOrganization: 'Hospital1MSP' }))).to.deep.equal({ decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false });
    });
    it('denies any other organization without a permit', () => {
      expect(decide(request())).to.deep.equal({ decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false });
    });
    it('denies the custodian for purposes other than TREAT', () => {
      expect(decide(request({ actorOrganization: 'Hospital1MSP', purpose: 'HRESCH' })).reason).to.equal('no-permit');
      expect(decide(request({ actorOrganization: 'Hospital1MSP', purpose: 'HOPERAT' })).decision).to.equal('deny');
    });
    it('permits break-glass (ETREAT) and flags it', () => {
      expect(decide(request({ purpose: 'ETREAT' }))).to.deep.equal({ decision: 'permit', consents: [], reason: 'break-glass', breakGlass: true });
    });
    it('always permits the patient and a registered guardian, whatever the consents say', () => {
      const denyAll = [consent('c1', { type: 'deny' })];
      expect(decide(request({ actor: PATIENT, purpose: 'PATRQT' }), denyAll).reason).to.equal('patient-or-guardian');
      expect(decide(request({ actor: GUARDIAN, purpose: 'FAMRQT' }), denyAll)).to.deep.include({ decision: 'permit', reason: 'patient-or-guardian' });
      expect(decide(request({ actor: GUARDIAN, purpose: 'FAMRQT' }), denyAll, context({ guardians: [] })).decision).to.equal('deny');
    });
  });

  describe('matching one provision', () => {
    it('matches an actor by DID, by organization DID or by MSP id', () => {
      expect(decide(request(), [consent('c1', { type: 'permit', actor: [byDid(DOCTOR)] })])).to.deep.equal({
        decision: 'permit',
        consents: ['c1'],
        reason: 'consent-permit',
        breakGlass: false,
      });
      expect(decide(request(), [consent('c1', { type: 'permit', actor: [byDid(ORG2)] })]).decision).to.equal('permit');
      expect(decide(request(), [consent('c1', { type: 'permit', actor: [byMsp('Hospital2MSP')] })]).decision).to.equal('permit');
      expect(decide(request(), [consent('c1', { type: 'permit', actor: [byMsp('Hospital3MSP'), byDid(did('X'))] })]).reason).to.equal('no-permit');
    });
    it('matches purposes exactly (no subsumption)', () => {
      const permitResearch = [consent('c1', { type: 'permit', purpose: purpose('HRESCH') })];
      expect(decide(request({ purpose: 'HRESCH' }), permitResearch).decision).to.equal('permit');
      expect(decide(request({ purpose: 'CLINTRCH' }), permitResearch).decision).to.equal('deny');
      expect(decide(request({ purpose: 'TREAT' }), permitResearch).reason).to.equal('no-permit');
    });
    it('matches actions and resource classes', () => {
      const c = [consent('c1', { type: 'permit', action: actions('disclose'), class: cls('Observation', 'DiagnosticReport') })];
      expect(decide(request({ action: 'disclose' }), c).decision).to.equal('permit');
      expect(decide(request({ action: 'disclose', resourceType: 'Condition' }), c).decision).to.equal('deny');
      expect(decide(request({ action: 'access' }), c).decision).to.equal('deny');
      expect(decide(request({ action: 'collect' }), c).decision).to.equal('deny');
    });
    it('matches security labels by code, and by system when both name one', () => {
      const c = [consent('c1', { type: 'permit', securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] })];
      expect(decide(request({ securityLabels: ['R'] }), c).decision).to.equal('permit');
      expect(decide(request({ securityLabels: ['N', 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R'] }), c).decision).to.equal('permit');
      expect(decide(request({ securityLabels: ['urn:other|R'] }), c).decision).to.equal('deny');
      expect(decide(request({ securityLabels: [] }), c).decision).to.equal('deny');
    });
    it('applies a consent only within its period (end date inclusive)', () => {
      const period = (start?: string, end?: string) => [consent('c1', { type: 'permit', period: { ...(start ? { start } : {}), ...(end ? { end } : {}) } })];
      expect(decide(request(), period('2024-01-01', '2024-12-31')).decision).to.equal('permit');
      expect(decide(request(), period(undefined, '2024-06-01')).decision).to.equal('permit');
      expect(decide(request(), period(undefined, '2024-05-31')).reason).to.equal('no-permit');
      expect(decide(request(), period('2024-06-02')).reason).to.equal('no-permit');
      expect(decide(request(), period('2024-06-01T12:00:00Z')).decision).to.equal('permit');
    });
    it('applies dataPeriod to the date of the data; unknown dates make a deny apply and a permit not', () => {
      const permit2020 = [consent('c1', { type: 'permit', dataPeriod: { start: '2020', end: '2020' } })];
      expect(decide(request({ dataDate: '2020-07-01T00:00:00Z' }), permit2020).decision).to.equal('permit');
      expect(decide(request({ dataDate: '2021-01-01T00:00:00Z' }), permit2020).decision).to.equal('deny');
      expect(decide(request(), permit2020).reason).to.equal('no-permit');
      const deny2020 = [consent('c1', { type: 'deny', dataPeriod: { end: '2020-12-31' } })];
      expect(decide(request({ actorOrganization: 'Hospital1MSP', dataDate: '2019-03-01' }), deny2020).reason).to.equal('consent-deny');
      expect(decide(request({ actorOrganization: 'Hospital1MSP', dataDate: '2021-03-01' }), deny2020).reason).to.equal('custodian-treatment');
      expect(decide(request({ actorOrganization: 'Hospital1MSP' }), deny2020).reason).to.equal('consent-deny');
    });
  });

  describe('within one consent: the most specific matching provision wins', () => {
    const sharing: Provision = {
      type: 'permit',
      actor: [byMsp('Hospital2MSP')],
      purpose: purpose('TREAT'),
      provision: [{ type: 'deny', securityLabel: [{ code: 'PSY' }] }],
    };
    it('a nested deny is an exception to a permit', () => {
      expect(decide(request(), [consent('c1', sharing)]).decision).to.equal('permit');
      expect(decide(request({ securityLabels: ['PSY'] }), [consent('c1', sharing)])).to.deep.equal({
        decision: 'deny',
        consents: ['c1'],
        reason: 'consent-deny',
        breakGlass: false,
      });
    });
    it('nested exceptions go as deep as the tree (deny all, except H2, except PSY)', () => {
      const tree: Provision = { type: 'deny', provision: [{ type: 'permit', actor: [byMsp('Hospital2MSP')], provision: [{ type: 'deny', securityLabel: [{ code: 'PSY' }] }] }] };
      expect(decide(request(), [consent('c1', tree)]).decision).to.equal('permit');
      expect(decide(request({ securityLabels: ['PSY'] }), [consent('c1', tree)]).decision).to.equal('deny');
      expect(decide(request({ actorOrganization: 'Hospital3MSP' }), [consent('c1', tree)]).reason).to.equal('consent-deny');
    });
    it('a nested provision only narrows its parent: it does not apply when the parent does not match', () => {
      const tree: Provision = { type: 'permit', actor: [byMsp('Hospital3MSP')], provision: [{ type: 'permit', actor: [byMsp('Hospital2MSP')] }] };
      expect(decide(request(), [consent('c1', tree)]).reason).to.equal('no-permit');
    });
    it('among matching siblings deny wins', () => {
      const tree: Provision = {
        type: 'permit',
        provision: [
          { type: 'permit', class: cls('Observation') },
          { type: 'deny', purpose: purpose('TREAT') },
        ],
      };
      expect(decide(request(), [consent('c1', tree)]).decision).to.equal('deny');
      expect(decide(request({ purpose: 'HRESCH' }), [consent('c1', tree)]).decision).to.equal('permit');
    });
    it("a patient's deny overrides the custodian's treatment default", () => {
      const c = [consent('c1', { type: 'deny', actor: [byMsp('Hospital1MSP')] })];
      expect(decide(request({ actorOrganization: 'Hospital1MSP' }), c)).to.deep.equal({ decision: 'deny', consents: ['c1'], reason: 'consent-deny', breakGlass: false });
    });
  });

  describe('across consents: deny overrides permit', () => {
    const permitH2 = consent('b-permit', { type: 'permit', actor: [byMsp('Hospital2MSP')] });
    const denyResearch = consent('a-deny', { type: 'deny', purpose: purpose('HRESCH') });
    it('a deny in any applicable consent wins and only the denying consents are named', () => {
      expect(decide(request({ purpose: 'HRESCH' }), [permitH2, denyResearch])).to.deep.equal({ decision: 'deny', consents: ['a-deny'], reason: 'consent-deny', breakGlass: false });
      expect(decide(request(), [permitH2, denyResearch])).to.deep.equal({ decision: 'permit', consents: ['b-permit'], reason: 'consent-permit', breakGlass: false });
    });
    it('names every permitting consent, sorted by id, whatever the input order', () => {
      const other = consent('a-permit', { type: 'permit', class: cls('Observation') });
      expect(decide(request(), [permitH2, other]).consents).to.deep.equal(['a-permit', 'b-permit']);
      expect(decide(request(), [other, permitH2]).consents).to.deep.equal(['a-permit', 'b-permit']);
    });
    it('ignores revoked consents and consents of another patient', () => {
      expect(decide(request(), [consent('c1', { type: 'permit' }, 'inactive')]).reason).to.equal('no-permit');
      expect(decide(request(), [consent('c1', { type: 'permit' }, 'active', did('Q'))]).reason).to.equal('no-permit');
    });
    it('falls back to the defaults when no consent applies', () => {
      expect(decide(request({ actorOrganization: 'Hospital1MSP', resourceType: 'Condition' }), [consent('c1', { type: 'permit', class: cls('Observation') })]).reason).to.equal(
        'custodian-treatment',
      );
    });
  });

  describe('break-glass (ETREAT)', () => {
    it('is not refused by a blanket deny that does not name ETREAT', () => {
      expect(decide(request({ purpose: 'ETREAT' }), [consent('c1', { type: 'deny' })])).to.deep.equal({
        decision: 'permit',
        consents: [],
        reason: 'break-glass',
        breakGlass: true,
      });
      expect(decide(request({ purpose: 'ETREAT', securityLabels: ['PSY'] }), [consent('c1', { type: 'deny', securityLabel: [{ code: 'PSY' }] })]).reason).to.equal('break-glass');
    });
    it('is refused by a deny naming ETREAT, and still flagged', () => {
      expect(decide(request({ purpose: 'ETREAT' }), [consent('c1', { type: 'deny', purpose: purpose('ETREAT') })])).to.deep.equal({
        decision: 'deny',
        consents: ['c1'],
        reason: 'consent-deny',
        breakGlass: true,
      });
    });
    it('is refused only where the ETREAT deny applies (e.g. one organization)', () => {
      const c = [consent('c1', { type: 'deny', purpose: purpose('ETREAT'), actor: [byMsp('Hospital3MSP')] })];
      expect(decide(request({ purpose: 'ETREAT' }), c).decision).to.equal('permit');
      expect(decide(request({ purpose: 'ETREAT', actorOrganization: 'Hospital3MSP' }), c).decision).to.equal('deny');
    });
    it('is flagged when a consent permits it too', () => {
      expect(decide(request({ purpose: 'ETREAT' }), [consent('c1', { type: 'permit', purpose: purpose('ETREAT') })])).to.deep.equal({
        decision: 'permit',
        consents: ['c1'],
        reason: 'consent-permit',
        breakGlass: true,
      });
    });
    it('a nested ETREAT exception inside a deny-ETREAT consent permits', () => {
      const tree: Provision = { type: 'deny', purpose: purpose('ETREAT'), provision: [{ type: 'permit', actor: [byDid(DOCTOR)] }] };
      expect(decide(request({ purpose: 'ETREAT' }), [consent('c1', tree)]).decision).to.equal('permit');
      expect(decide(request({ purpose: 'ETREAT', actor: did('Y') }), [consent('c1', tree)]).decision).to.equal('deny');
    });
  });
  describe('issue 9: data month, suspended patients, identity first', () => {
    it('a month meets a deny period if they overlap, and lies in a permit period only if wholly inside', () => {
      const period = { start: '2024-05-15', end: '2024-12' };
      expect(dataPeriodMatches('deny', period, '2024-05')).to.equal(true);
      expect(dataPeriodMatches('permit', period, '2024-05')).to.equal(false);
      expect(dataPeriodMatches('permit', period, '2024-06')).to.equal(true);
      expect(dataPeriodMatches('permit', period, '2024-12')).to.equal(true);
      expect(dataPeriodMatches('deny', period, '2025-01')).to.equal(false);
      expect(dataPeriodMatches('deny', { end: '2019' }, '2019-12')).to.equal(true);
      expect(dataPeriodMatches('deny', period, undefined)).to.equal(true);
      expect(dataPeriodMatches('permit', period, undefined)).to.equal(false);
    });
    it("ignores a suspended or deactivated patient's permits and keeps their denies", () => {
      const permit = [consent('p1', { type: 'permit', actor: [byMsp('Hospital2MSP')] })];
      const deny = [consent('d1', { type: 'deny', actor: [byMsp('Hospital1MSP')] })];
      for (const patientStatus of ['suspended', 'deactivated'] as const) {
        expect(decide(request(), permit, context({ patientStatus })).reason).to.equal('no-permit');
        expect(decide(request({ actorOrganization: 'Hospital1MSP' }), deny, context({ patientStatus })).reason).to.equal('consent-deny');
      }
      expect(decide(request(), permit, context({ patientStatus: 'active' })).reason).to.equal('consent-permit');
    });
    it('refuses by identity before any consent: a permit naming the actor does not help an unusable identity', () => {
      const permit = [consent('p1', { type: 'permit', actor: [byDid(DOCTOR)] })];
      expect(decide(request(), permit, context({ actorIdentity: undefined })).reason).to.equal('actor-unregistered');
      expect(decide(request(), permit, context({ actorIdentity: { kind: 'practitioner', status: 'suspended', organization: 'Hospital2MSP' } })).reason).to.equal(
        'actor-deactivated',
      );
      expect(decide(request(), permit, context({ actorIdentity: { kind: 'practitioner', status: 'active', organization: 'Hospital3MSP' } })).reason).to.equal(
        'actor-organization-mismatch',
      );
      expect(decide(request({ actorAuth: 'delegated' }), permit, context({ actorIdentity: { kind: 'device', status: 'active', organization: 'Hospital2MSP' } })).reason).to.equal(
        'delegation-not-allowed',
      );
      expect(decide(request({ purpose: 'PATRQT' }), permit).reason).to.equal('purpose-not-allowed');
      expect(decide(request(), permit).reason).to.equal('consent-permit');
    });
  });
});
