/**
 * The staff view and the patient's access requests (browser code) against the gateway's own functions
 * (the Parameters it writes and reads) and the REAL chaincode: the consent the form makes from a request,
 * signed in the browser, permits exactly that practitioner, purpose and types.
 */
import { expect } from 'chai';
import { ConsentContract } from '@hdx/chaincode/dist/consent-contract';
import { IdentityContract } from '@hdx/chaincode/dist/identity-contract';
import { FakeLedger } from '@hdx/chaincode/dist/test-support/fake-ledger';
import { H1_GATEWAY, H2_GATEWAY, registerDid } from '@hdx/chaincode/dist/test-support/registry';
import { accessCheckParameters, parseRequestParameters, requestPart } from '@hdx/gateway/dist/fhir/access-check';
import { formProblems, plainWords, toFhirConsent } from './consent-form';
import { signConsentChange } from './consent-sign';
import { signCompact } from './jws';
import { generatePatientKey, newNonce } from './keys';
import { formFromRequest, parseAccessAnswer, parseRequests, questionProblems, requestParameters, requestSentence, type RequestRow } from './staff';

const consents = new ConsentContract();
const identities = new IdentityContract();
const DOCTOR = `did:hdx:${'d'.repeat(43)}`;
const PATIENT = `did:hdx:${'p'.repeat(43)}`;

describe('the staff view and access requests (browser code)', () => {
  it('reads the gateway’s access check as the page shows it', () => {
    const denied = parseAccessAnswer(
      accessCheckParameters({ permitted: false, reason: 'no-consent', explanation: 'Not permitted: no consent of this patient permits you.', breakGlassAvailable: true }),
    );
    expect(denied).to.deep.equal({ permitted: false, reason: 'no-consent', explanation: 'Not permitted: no consent of this patient permits you.', breakGlassAvailable: true });
    const permitted = parseAccessAnswer(accessCheckParameters({ permitted: true, reason: 'consent-permits', explanation: 'Permitted.' }));
    expect(permitted).to.deep.equal({ permitted: true, reason: 'consent-permits', explanation: 'Permitted.' });
    expect(() => parseAccessAnswer({ resourceType: 'OperationOutcome' })).to.throw('not an access check');
  });

  it('checks the question before asking, naming each field', () => {
    expect(questionProblems({ patient: PATIENT, purpose: 'TREAT', resourceType: 'Observation', custodian: 'Hospital1MSP' })).to.deep.equal([]);
    const problems = questionProblems({ patient: 'Jane Doe', purpose: '', resourceType: 'heart rate', custodian: '' });
    expect(problems).to.have.length(4);
    expect(problems.join(' ')).to.include('Patient').and.include('Purpose').and.include('Record type').and.include('Held by');
  });

  it('sends a request the gateway reads as it is, with codes only', () => {
    const body = requestParameters({ patient: ` ${PATIENT} `, purpose: 'TREAT', resourceTypes: ['Observation', 'Observation', 'Condition'] });
    expect(parseRequestParameters(body, DOCTOR)).to.deep.equal({ patient: PATIENT, requester: DOCTOR, purpose: 'TREAT', resourceTypes: ['Condition', 'Observation'] });
    expect(JSON.stringify(body)).to.not.match(/message|text|display/);
  });

  it('reads the gateway’s list of requests, and puts each in a sentence', () => {
    const stored = {
      patient: PATIENT,
      requester: DOCTOR,
      requesterOrganization: 'Hospital2MSP',
      purpose: 'TREAT',
      resourceTypes: ['Observation'],
      requestedAt: '2026-12-07T10:00:00.000Z',
      txId: 't1',
    };
    const rows = parseRequests({
      resourceType: 'Parameters',
      parameter: [requestPart(stored, false), requestPart({ ...stored, purpose: 'HRESCH', resourceTypes: ['Condition', 'Observation'] }, true), { name: 'other' }],
    });
    expect(rows).to.deep.equal([
      { requester: DOCTOR, requesterOrganization: 'Hospital2MSP', purpose: 'TREAT', resourceTypes: ['Observation'], requestedAt: '2026-12-07T10:00:00.000Z', permitted: false },
      {
        requester: DOCTOR,
        requesterOrganization: 'Hospital2MSP',
        purpose: 'HRESCH',
        resourceTypes: ['Condition', 'Observation'],
        requestedAt: '2026-12-07T10:00:00.000Z',
        permitted: true,
      },
    ]);
    expect(requestSentence(rows[1] as RequestRow)).to.equal(`${DOCTOR} of Hospital2MSP asks to see your Condition, Observation records, for health research (HRESCH).`);
  });

  it('Grant prefills a consent for that practitioner, purpose and types, which the real chaincode then permits (and nothing more)', async () => {
    const ledger = new FakeLedger();
    ledger.clock = Math.floor(Date.now() / 1000);
    const { key } = await generatePatientKey();
    const proof = await signCompact({ action: 'register', did: key.did, kind: 'patient', nonce: newNonce(), iat: ledger.clock }, key.privateKey, key.kid);
    await ledger.invoke(H1_GATEWAY, (ctx) => identities.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.publicJwk, proof })));
    const doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    const row: RequestRow = {
      requester: doctor.did,
      requesterOrganization: 'Hospital2MSP',
      purpose: 'TREAT',
      resourceTypes: ['Observation'],
      requestedAt: '2026-12-07T10:00:00Z',
      permitted: false,
    };

    const form = formFromRequest(row);
    expect(formProblems(form)).to.deep.equal([]);
    expect(plainWords(form)[0]).to.equal(`I allow the person with DID ${doctor.did} to see Observation records, for treating me.`);
    const consent = toFhirConsent(form, key.did, 'c-request');
    await ledger.invoke(H1_GATEWAY, async (ctx) => consents.Grant(ctx, await signConsentChange(key, consent, 'grant')));

    const decide = async (purpose: string, resourceType: string, actor = doctor.did) =>
      (
        JSON.parse(
          await ledger.evaluate(H1_GATEWAY, (ctx) =>
            consents.EvaluateAccess(
              ctx,
              JSON.stringify({ actor, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose, patient: key.did, custodian: 'Hospital1MSP', resourceType }),
            ),
          ),
        ) as { decision: string }
      ).decision;
    expect(await decide('TREAT', 'Observation')).to.equal('permit');
    expect(await decide('TREAT', 'Condition')).to.equal('deny');
    expect(await decide('HRESCH', 'Observation')).to.equal('deny');
    const colleague = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    expect(await decide('TREAT', 'Observation', colleague.did)).to.equal('deny');
  });
});
