import { expect } from 'chai';
import { ConfigError, loadConfig } from './config';

const base = {
  HDX_ORG: 'hospital1',
  HDX_MSP_ID: 'Hospital1MSP',
  HDX_PEER_ENDPOINT: '127.0.0.1:7070',
  HDX_PEER_TLS_CA_FILE: '/x/ca.pem',
  HDX_CA_URL: 'https://127.0.0.1:7010',
  HDX_CA_NAME: 'ca-hospital1',
  HDX_CA_TLS_CA_FILE: '/x/ca.pem',
  HDX_CA_ENROLLMENT_ID: 'gateway',
  HDX_CA_ENROLLMENT_SECRET: 's3cret',
};

describe('loadConfig', () => {
  it('applies defaults, coerces numbers and freezes the result', () => {
    const c = loadConfig(base, '/repo');
    expect(c.host).to.equal('127.0.0.1');
    expect(c.port).to.equal(8080);
    expect(c.baseUrl).to.equal('http://127.0.0.1:8080/fhir');
    expect(c.dataDir).to.equal('/repo/.hdx/gateway-hospital1');
    expect(Object.isFrozen(c)).to.equal(true);
    expect(loadConfig({ ...base, HDX_GATEWAY_PORT: '9000' }).port).to.equal(9000);
  });

  it('lists every problem at once, naming the variables', () => {
    try {
      loadConfig({ HDX_GATEWAY_PORT: 'eighty', HDX_CA_URL: 'http://insecure' });
      expect.fail('should throw');
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).to.include('HDX_GATEWAY_PORT');
      expect(msg).to.include('HDX_MSP_ID is required');
      expect(msg).to.include('HDX_CA_URL');
    }
  });

  it('audit mode: sync by default; async with its flush interval and batch size (at most 200 per transaction)', () => {
    const c = loadConfig(base, '/repo');
    expect([c.auditMode, c.auditFlushMs, c.auditBatch]).to.deep.equal(['sync', 200, 100]);
    const a = loadConfig({ ...base, HDX_AUDIT_MODE: 'async', HDX_AUDIT_FLUSH_MS: '50', HDX_AUDIT_BATCH: '200' }, '/repo');
    expect([a.auditMode, a.auditFlushMs, a.auditBatch]).to.deep.equal(['async', 50, 200]);
    expect(() => loadConfig({ ...base, HDX_AUDIT_MODE: 'later' })).to.throw(ConfigError, /HDX_AUDIT_MODE/);
    expect(() => loadConfig({ ...base, HDX_AUDIT_BATCH: '201' })).to.throw(ConfigError, /HDX_AUDIT_BATCH/);
    expect(() => loadConfig({ ...base, HDX_AUDIT_FLUSH_MS: '0' })).to.throw(ConfigError, /HDX_AUDIT_FLUSH_MS/);
  });

  it('refuses to bind anywhere but loopback', () => {
    expect(() => loadConfig({ ...base, HDX_GATEWAY_HOST: '0.0.0.0' })).to.throw(ConfigError, /HDX_GATEWAY_HOST/);
  });
});
