import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig, loadIdSecret, viewEnabled } from './config';

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

  it('refuses a variable whose companion is missing (an issuer without its key, an MLLP port without its actor)', () => {
    expect(() => loadConfig({ ...base, HDX_IDP_ISSUER: 'https://idp.example' })).to.throw(ConfigError, /HDX_IDP_PUBLIC_KEY_FILE is required when HDX_IDP_ISSUER is set/);
    expect(() => loadConfig({ ...base, HDX_MLLP_PORT: '2575' })).to.throw(ConfigError, /HDX_MLLP_ACTOR_DID is required when HDX_MLLP_PORT is set/);
  });

  it('audit mode: async by default, with its flush interval and batch size (at most 200 per transaction); sync with group commit', () => {
    const c = loadConfig(base, '/repo');
    expect([c.auditMode, c.auditFlushMs, c.auditBatch, c.auditInFlight, c.groupCommitInFlight]).to.deep.equal(['async', 200, 100, 4, 4]);
    expect(loadConfig({ ...base, HDX_AUDIT_IN_FLIGHT: '1' }, '/repo').auditInFlight).to.equal(1);
    expect(() => loadConfig({ ...base, HDX_AUDIT_IN_FLIGHT: '17' })).to.throw(ConfigError, /HDX_AUDIT_IN_FLIGHT/);
    const a = loadConfig({ ...base, HDX_AUDIT_MODE: 'sync', HDX_AUDIT_FLUSH_MS: '50', HDX_AUDIT_BATCH: '200', HDX_GROUP_COMMIT_IN_FLIGHT: '0' }, '/repo');
    expect([a.auditMode, a.auditFlushMs, a.auditBatch, a.groupCommitInFlight]).to.deep.equal(['sync', 50, 200, 0]);
    expect(() => loadConfig({ ...base, HDX_GROUP_COMMIT_IN_FLIGHT: '65' })).to.throw(ConfigError, /HDX_GROUP_COMMIT_IN_FLIGHT/);
    expect(() => loadConfig({ ...base, HDX_AUDIT_MODE: 'later' })).to.throw(ConfigError, /HDX_AUDIT_MODE/);
    expect(() => loadConfig({ ...base, HDX_AUDIT_BATCH: '201' })).to.throw(ConfigError, /HDX_AUDIT_BATCH/);
    expect(() => loadConfig({ ...base, HDX_AUDIT_FLUSH_MS: '0' })).to.throw(ConfigError, /HDX_AUDIT_FLUSH_MS/);
  });

  it('endorsing organizations: none by default (the Fabric Gateway plans); a comma-separated list of MSP ids, duplicates dropped', () => {
    expect(loadConfig(base, '/repo').endorsingOrgs).to.deep.equal([]);
    expect(loadConfig({ ...base, HDX_ENDORSING_ORGS: 'Hospital1MSP,Hospital2MSP,Hospital1MSP' }, '/repo').endorsingOrgs).to.deep.equal(['Hospital1MSP', 'Hospital2MSP']);
    expect(() => loadConfig({ ...base, HDX_ENDORSING_ORGS: 'Hospital1MSP,,Hospital2MSP' })).to.throw(ConfigError, /HDX_ENDORSING_ORGS/);
    expect(() => loadConfig({ ...base, HDX_ENDORSING_ORGS: 'Hospital 1' })).to.throw(ConfigError, /HDX_ENDORSING_ORGS/);
  });

  it('ledger view and decisions: view auto, 1,500 ms bound and local decisions by default; each validated', () => {
    const c = loadConfig(base, '/repo');
    expect([c.view, c.viewMaxLagMs, c.decisions]).to.deep.equal(['auto', 1500, 'local']);
    // Sync mode keeps it too: the integrity check takes its anchors from it.
    expect(viewEnabled(c)).to.equal(true);
    expect(viewEnabled(loadConfig({ ...base, HDX_AUDIT_MODE: 'async' }, '/repo'))).to.equal(true);
    expect(viewEnabled(loadConfig({ ...base, HDX_AUDIT_MODE: 'async', HDX_DECISIONS: 'chaincode' }, '/repo'))).to.equal(false);
    expect(viewEnabled(loadConfig({ ...base, HDX_DECISIONS: 'chaincode', HDX_VIEW: 'on' }, '/repo'))).to.equal(true);
    expect(viewEnabled(loadConfig({ ...base, HDX_AUDIT_MODE: 'async', HDX_VIEW: 'off' }, '/repo'))).to.equal(false);
    const o = loadConfig({ ...base, HDX_VIEW: 'off', HDX_VIEW_MAX_LAG_MS: '800', HDX_DECISIONS: 'chaincode' }, '/repo');
    expect([o.view, o.viewMaxLagMs, o.decisions]).to.deep.equal(['off', 800, 'chaincode']);
    expect(() => loadConfig({ ...base, HDX_VIEW: 'yes' })).to.throw(ConfigError, /HDX_VIEW/);
    expect(() => loadConfig({ ...base, HDX_VIEW_MAX_LAG_MS: '50' })).to.throw(ConfigError, /HDX_VIEW_MAX_LAG_MS/);
    expect(() => loadConfig({ ...base, HDX_DECISIONS: 'view' })).to.throw(ConfigError, /HDX_DECISIONS/);
  });

  describe('where the API listens: loopback in plain HTTP, any other address only over TLS', () => {
    // A self-signed test certificate (P-256, SANs 127.0.0.1 and 10.77.0.2) and its key; other.key is another key.
    const tls = path.join(__dirname, 'test-support', 'fixtures', 'tls');
    const withTls = { HDX_GATEWAY_TLS_CERT_FILE: path.join(tls, 'server.crt'), HDX_GATEWAY_TLS_KEY_FILE: path.join(tls, 'server.key') };

    it('refuses any address but loopback in plain HTTP, saying how to serve TLS', () => {
      for (const host of ['0.0.0.0', '10.77.0.2', '::']) {
        expect(() => loadConfig({ ...base, HDX_GATEWAY_HOST: host }), host).to.throw(
          ConfigError,
          /HDX_GATEWAY_HOST=.* is not a loopback address: set HDX_GATEWAY_TLS_CERT_FILE and HDX_GATEWAY_TLS_KEY_FILE/,
        );
      }
      expect(loadConfig({ ...base, HDX_GATEWAY_HOST: '127.0.0.2' }).baseUrl).to.equal('http://127.0.0.2:8080/fhir');
      expect(loadConfig({ ...base, HDX_GATEWAY_HOST: '::1' }).baseUrl).to.equal('http://[::1]:8080/fhir');
      expect(() => loadConfig({ ...base, HDX_GATEWAY_HOST: 'gateway.example.org' })).to.throw(ConfigError, /HDX_GATEWAY_HOST/);
    });

    it("with a certificate and its key, listens on the organization's address over HTTPS", () => {
      const c = loadConfig({ ...base, ...withTls, HDX_GATEWAY_HOST: '10.77.0.2', HDX_GATEWAY_PORT: '8443' });
      expect(c.host).to.equal('10.77.0.2');
      expect(c.baseUrl).to.equal('https://10.77.0.2:8443/fhir');
      expect(c.tlsCertFile).to.equal(withTls.HDX_GATEWAY_TLS_CERT_FILE);
      // On loopback too, when asked.
      expect(loadConfig({ ...base, ...withTls }).baseUrl).to.equal('https://127.0.0.1:8080/fhir');
    });

    it('refuses half a TLS configuration, a key that is not the certificate’s, a missing file and a plain-HTTP base URL', () => {
      expect(() => loadConfig({ ...base, HDX_GATEWAY_TLS_CERT_FILE: withTls.HDX_GATEWAY_TLS_CERT_FILE })).to.throw(
        ConfigError,
        /HDX_GATEWAY_TLS_KEY_FILE is required when HDX_GATEWAY_TLS_CERT_FILE is set/,
      );
      expect(() => loadConfig({ ...base, ...withTls, HDX_GATEWAY_TLS_KEY_FILE: path.join(tls, 'other.key') })).to.throw(
        ConfigError,
        /must be a PEM certificate and its own private key/,
      );
      expect(() => loadConfig({ ...base, ...withTls, HDX_GATEWAY_TLS_CERT_FILE: path.join(tls, 'missing.crt') })).to.throw(ConfigError, /missing\.crt is not a readable file/);
      expect(() => loadConfig({ ...base, ...withTls, HDX_GATEWAY_BASE_URL: 'http://gw.example.org/fhir' })).to.throw(ConfigError, /HDX_GATEWAY_BASE_URL must be https:\/\//);
    });
  });

  describe('the custodian id secret (HDX_ID_SECRET_FILE)', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-config-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('defaults to <dataDir>/id-secret, created on first start with 32 random bytes, mode 0600, then kept', () => {
      const c = loadConfig({ ...base, HDX_DATA_DIR: path.join(dir, 'data') }, '/repo');
      expect(c.idSecretFile).to.equal(path.join(dir, 'data', 'id-secret'));
      expect(loadConfig(base, '/repo').idSecretFile).to.equal('/repo/.hdx/gateway-hospital1/id-secret');
      const secret = loadIdSecret(c);
      expect(secret.length).to.equal(32);
      expect(fs.statSync(c.idSecretFile).mode & 0o777).to.equal(0o600);
      expect(loadIdSecret(c).equals(secret)).to.equal(true);
      // Another gateway (another data dir) gets another secret.
      const other = loadIdSecret(loadConfig({ ...base, HDX_DATA_DIR: path.join(dir, 'other') }, '/repo'));
      expect(other.equals(secret)).to.equal(false);
    });

    it('a file named by HDX_ID_SECRET_FILE must exist: it is never created', () => {
      const c = loadConfig({ ...base, HDX_DATA_DIR: dir, HDX_ID_SECRET_FILE: path.join(dir, 'typo') }, '/repo');
      expect(() => loadIdSecret(c)).to.throw(ConfigError, /HDX_ID_SECRET_FILE .*does not exist/);
      expect(fs.existsSync(path.join(dir, 'typo'))).to.equal(false);
    });

    it('refuses a secret readable by others, too short, or not a regular file', () => {
      const file = path.join(dir, 'secret');
      const c = loadConfig({ ...base, HDX_DATA_DIR: dir, HDX_ID_SECRET_FILE: file }, '/repo');
      fs.writeFileSync(file, Buffer.alloc(32, 7), { mode: 0o644 });
      fs.chmodSync(file, 0o644);
      expect(() => loadIdSecret(c)).to.throw(ConfigError, /owner only/);
      fs.chmodSync(file, 0o600);
      expect(loadIdSecret(c).equals(Buffer.alloc(32, 7))).to.equal(true);
      fs.writeFileSync(file, Buffer.alloc(31, 7));
      expect(() => loadIdSecret(c)).to.throw(ConfigError, /32 to 4096 bytes/);
      const asDir = loadConfig({ ...base, HDX_DATA_DIR: dir, HDX_ID_SECRET_FILE: dir }, '/repo');
      expect(() => loadIdSecret(asDir)).to.throw(ConfigError, /regular file/);
    });
  });
});
