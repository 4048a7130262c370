import { expect } from 'chai';
import { parseScopes } from '../auth/scopes';
import type { AuthContext } from '../auth/types';
import { OperationOutcomeError } from '../errors';
import { assertInteraction, assertMayExport, bindCaller, type Caller, type CallerKind, INTERACTIONS, relatedTo } from './policy';

const H1 = 'Hospital1MSP';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;

function auth(role: AuthContext['role'], over: Partial<AuthContext> = {}): AuthContext {
  return {
    subject: 's',
    did: did('a'),
    role,
    organization: H1,
    scopes: parseScopes('user/*.*').scopes,
    purposeOfUse: role === 'patient' ? 'PATRQT' : 'TREAT',
    tokenKind: 'did',
    actorAuth: 'did',
    expiresAt: 0,
    ...over,
  };
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof OperationOutcomeError) return err.code;
    throw err;
  }
}

describe('policy: the caller bound to a request', () => {
  it('binds a patient to its own compartment, whatever scope context it holds', () => {
    const c = bindCaller(auth('patient', { scopes: parseScopes('patient/*.read').scopes }), H1, 'Observation', 'read');
    expect(c).to.include({ kind: 'patient', compartmentOf: did('a'), local: true, actorAuth: 'did' });
  });

  it('refuses patient/ scopes to a non-patient (there is no other patient context) and system/ scopes to people', () => {
    expect(code(() => bindCaller(auth('practitioner', { scopes: parseScopes('patient/*.read').scopes }), H1, 'Observation', 'read'))).to.equal('FORBIDDEN');
    expect(code(() => bindCaller(auth('practitioner', { scopes: parseScopes('system/*.read').scopes }), H1, 'Observation', 'read'))).to.equal('FORBIDDEN');
    expect(code(() => bindCaller(auth('system', { scopes: parseScopes('system/*.read').scopes }), H1, 'Observation', 'read'))).to.equal(undefined);
  });

  it('allows purposes per kind: TREAT and ETREAT never for a patient, PATRQT never for a practitioner', () => {
    for (const purpose of ['TREAT', 'ETREAT']) {
      expect(
        code(() => bindCaller(auth('patient', { purposeOfUse: purpose }), H1, 'Observation', 'read')),
        `patient ${purpose}`,
      ).to.equal('FORBIDDEN');
    }
    expect(code(() => bindCaller(auth('practitioner', { purposeOfUse: 'PATRQT' }), H1, 'Observation', 'read'))).to.equal('FORBIDDEN');
    expect(code(() => bindCaller(auth('practitioner', { purposeOfUse: 'ETREAT' }), H1, 'Observation', 'read'))).to.equal(undefined);
    expect(code(() => bindCaller(auth('device', { purposeOfUse: 'ETREAT', scopes: parseScopes('system/*.*').scopes }), H1, 'Observation', 'create'))).to.equal('FORBIDDEN');
  });

  it('marks a delegated caller as neither local nor able to write', () => {
    const c = bindCaller(auth('practitioner', { actorAuth: 'delegated', viaOrganization: did('o'), organization: 'Hospital2MSP' }), H1, 'Observation', 'read');
    expect(c).to.include({ local: false, actorAuth: 'delegated' });
    expect(code(() => assertInteraction(c, 'update', 'Observation', H1))).to.equal('FORBIDDEN');
  });
});

describe('policy: the interaction table', () => {
  const base = (kind: CallerKind, over: Partial<Caller> = {}): Caller => ({ did: did('a'), organization: H1, purpose: 'TREAT', kind, actorAuth: 'idp', local: true, ...over });
  const expected: Record<CallerKind, { read: boolean; writeObservation: boolean; writePatient: boolean; erase: boolean; exchange: boolean }> = {
    practitioner: { read: true, writeObservation: true, writePatient: true, erase: false, exchange: true },
    system: { read: true, writeObservation: true, writePatient: true, erase: false, exchange: false },
    device: { read: false, writeObservation: true, writePatient: true, erase: false, exchange: false },
    patient: { read: true, writeObservation: true, writePatient: false, erase: false, exchange: false },
    admin: { read: false, writeObservation: false, writePatient: true, erase: true, exchange: false },
    auditor: { read: false, writeObservation: false, writePatient: false, erase: false, exchange: false },
    organization: { read: false, writeObservation: false, writePatient: false, erase: false, exchange: false },
  };
  for (const kind of Object.keys(INTERACTIONS) as CallerKind[]) {
    it(`${kind}: ${JSON.stringify(expected[kind])}`, () => {
      const c = base(kind);
      const ok = (fn: () => void): boolean => code(fn) === undefined;
      expect(
        ok(() => assertInteraction(c, 'read', 'Observation', H1)),
        'read',
      ).to.equal(expected[kind].read);
      expect(
        ok(() => assertInteraction(c, 'create', 'Observation', H1)),
        'write Observation',
      ).to.equal(expected[kind].writeObservation);
      expect(
        ok(() => assertInteraction(c, 'update', 'Patient', H1)),
        'write Patient',
      ).to.equal(expected[kind].writePatient);
      expect(
        ok(() => assertInteraction(c, '$erase', 'Patient', H1)),
        '$erase',
      ).to.equal(expected[kind].erase);
      expect(
        ok(() => assertInteraction(c, '$exchange', 'Patient', H1)),
        '$exchange',
      ).to.equal(expected[kind].exchange);
    });
  }

  it("never lets another member's user write here", () => {
    expect(code(() => assertInteraction(base('practitioner', { organization: 'Hospital2MSP', local: false }), 'create', 'Observation', H1))).to.equal('FORBIDDEN');
  });
});

describe('policy: who is related to a patient (consents, DID metadata)', () => {
  const patient = did('p');
  const deps = (guardians: string[], held: boolean) => ({
    resolve: () => Promise.resolve({ hdx: { kind: 'patient', status: 'active', organization: H1, guardians } }),
    holdsPatient: async () => held,
  });

  it('the patient, an active guardian, local staff holding the patient, an auditor: yes', async () => {
    expect(await relatedTo(auth('patient', { did: patient }), patient, H1, deps([], false))).to.equal(true);
    expect(await relatedTo(auth('patient', { did: did('g') }), patient, H1, deps([did('g')], false))).to.equal(true);
    expect(await relatedTo(auth('practitioner', { tokenKind: 'idp', actorAuth: 'idp' }), patient, H1, deps([], true))).to.equal(true);
    expect(await relatedTo(auth('auditor', { organization: 'RegulatorMSP' }), patient, H1, deps([], false))).to.equal(true);
  });

  it('another patient, staff not holding the patient, another member, a delegated caller: no', async () => {
    expect(await relatedTo(auth('patient', { did: did('b') }), patient, H1, deps([], true))).to.equal(false);
    expect(await relatedTo(auth('practitioner'), patient, H1, deps([], false))).to.equal(false);
    expect(await relatedTo(auth('practitioner', { organization: 'Hospital2MSP' }), patient, H1, deps([], true))).to.equal(false);
    expect(await relatedTo(auth('auditor', { actorAuth: 'delegated', viaOrganization: did('o') }), patient, H1, deps([], true))).to.equal(false);
  });
});

describe('policy: who may run a bulk export', () => {
  const bound = (role: AuthContext['role'], over: Partial<AuthContext> = {}): Caller => bindCaller(auth(role, over), H1, 'Observation', 'search');
  const levels = ['system', 'patient', 'group'] as const;
  const outcome = (c: Caller): string => levels.map((l) => `${l}:${code(() => assertMayExport(c, l)) ?? 'ok'}`).join(' ');

  it("lets this organization's practitioners and systems export at every level, and a patient its own records only", () => {
    expect(outcome(bound('practitioner'))).to.equal('system:ok patient:ok group:ok');
    expect(outcome(bound('system', { scopes: parseScopes('system/*.read').scopes }))).to.equal('system:ok patient:ok group:ok');
    expect(outcome(bound('patient', { scopes: parseScopes('patient/*.read').scopes }))).to.equal('system:FORBIDDEN patient:ok group:FORBIDDEN');
  });

  it('refuses other members, delegated requests, break-glass, and those who read no clinical data', () => {
    const none = 'system:FORBIDDEN patient:FORBIDDEN group:FORBIDDEN';
    expect(outcome(bound('practitioner', { organization: 'Hospital2MSP' }))).to.equal(none);
    expect(outcome(bound('practitioner', { actorAuth: 'delegated', viaOrganization: did('o') }))).to.equal(none);
    expect(outcome(bound('practitioner', { purposeOfUse: 'ETREAT', breakGlassReason: 'x' }))).to.equal(none);
    expect(outcome(bound('auditor', { purposeOfUse: 'HCOMPL' }))).to.equal(none);
    expect(outcome(bound('device', { scopes: parseScopes('system/*.read').scopes, purposeOfUse: 'TREAT' }))).to.equal(none);
    expect(outcome(bound('admin'))).to.equal(none);
  });
});
