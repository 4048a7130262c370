import { expect } from 'chai';
import request from 'supertest';
import { newLogger } from '../logger';
import { createMetrics, instrumentLedger } from '../metrics';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';

describe('/metrics', () => {
  it('counts requests by route pattern (never by concrete id), ledger calls, decisions and error codes', async () => {
    const metrics = createMetrics();
    const fake = new FakeLedger();
    const ledger = instrumentLedger(fake, metrics);
    const store = testStore();
    const log = newLogger('silent');
    const { app } = testApp({ store, ledger, log, baseUrl: 'http://x/fhir', metrics });
    const staff = asCaller({ did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT' });
    const created = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', 'application/fhir+json')
      .send({ resourceType: 'Patient', gender: 'other' });
    expect(created.status).to.equal(201);
    await request(app)
      .get(`/fhir/Patient/${created.body.id}`)
      .set(...staff);
    await request(app)
      .get(`/fhir/Patient/${created.body.id}`)
      .set(...asCaller({ did: `did:hdx:${'b'.repeat(43)}`, organization: 'Hospital2MSP', purpose: 'TREAT' }));
    const text = (await request(app).get('/metrics')).text;
    expect(text).to.match(/hdx_http_requests_total\{method="GET",route="\/fhir\/:type\/:id",status="200"\} 1/);
    expect(text).to.not.include(created.body.id);
    expect(text).to.match(/hdx_ledger_call_duration_seconds_count\{op="anchorAndRecord",outcome="ok"\} 1/);
    expect(text).to.match(/hdx_access_decisions_total\{decision="deny",break_glass="false"\} 1/);
    // The denied read is answered as a missing resource.
    expect(text).to.match(/hdx_errors_total\{code="NOT_FOUND"\} 1/);
    expect(text).to.include('hdx_gateway_process_cpu_seconds_total');
  });
});

describe('instrumentLedger', () => {
  it('keeps methods that use private fields working, close included', async () => {
    class Client {
      #closed = false;
      async ping(): Promise<void> {
        if (this.#closed) throw new Error('closed');
      }
      close(): void {
        this.#closed = true;
      }
    }
    const wrapped = instrumentLedger(new Client() as unknown as import('../ledger/ledger-client').LedgerClient, createMetrics());
    await wrapped.ping();
    wrapped.close();
    let failed = false;
    await wrapped.ping().catch(() => (failed = true));
    expect(failed).to.equal(true);
  });
});
