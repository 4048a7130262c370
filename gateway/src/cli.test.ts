import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// The chaincode's own JWS checks (compiled): what the CLI signs must pass them as they are.
import { parseCompactJws, thumbprintOf as chaincodeThumbprint, verifyJws } from '@hdx/chaincode/dist/jose';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { type GeneratedDidKey, toP256PrivateJwk } from './auth/did-key';
import { MemoryJtiStore } from './auth/replay';
import { fakeResolver, resolutionOf } from './auth/test-support/fixtures';
import { idpKeysFromText, verifyBearerToken } from './auth/token';
import { run, runAsync } from './cli';
import { parseReviewParameters } from './fhir/break-glass-review';

const BASE = 'http://127.0.0.1:8080/fhir';

function hdx(...argv: string[]): { code: number; stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  const code = run(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

/** The generated-key view of a key file, for building a fake resolver. */
function keyFromFile(file: string): GeneratedDidKey {
  const privateJwk = toP256PrivateJwk(JSON.parse(fs.readFileSync(file, 'utf8')));
  const publicJwk = { kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x, y: privateJwk.y };
  const kid = privateJwk.kid ?? '';
  return { did: kid.split('#')[0] ?? '', kid, publicJwk, privateJwk: { ...privateJwk, kid } };
}

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('hdx CLI', () => {
  let dir: string;
  let keyFile: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-cli-'));
    keyFile = path.join(dir, 'key.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('keygen', () => {
    it('prints a P-256 key pair and the DID derived from its thumbprint', async () => {
      const { code, stdout } = hdx('keygen');
      expect(code).to.equal(0);
      const out = JSON.parse(stdout);
      expect(out.did).to.equal(`did:hdx:${await chaincodeThumbprint(out.publicKeyJwk)}`);
      expect(out.kid).to.equal(`${out.did}#key-1`);
      expect(out.privateKeyJwk).to.include({ kty: 'EC', crv: 'P-256', x: out.publicKeyJwk.x, y: out.publicKeyJwk.y, kid: out.kid });
      expect(out.privateKeyJwk.d).to.match(/^[A-Za-z0-9_-]{43}$/);
    });

    it('--out writes the private JWK (mode 600), prints only the public part, and never overwrites without --force', () => {
      const first = hdx('keygen', '--out', keyFile);
      expect(first.code).to.equal(0);
      const out = JSON.parse(first.stdout);
      expect(out).to.not.have.property('privateKeyJwk');
      expect(out.keyFile).to.equal(keyFile);
      expect(fs.statSync(keyFile).mode & 0o777).to.equal(0o600);
      expect(JSON.parse(fs.readFileSync(keyFile, 'utf8'))).to.include({ kid: out.kid, x: out.publicKeyJwk.x });
      const again = hdx('keygen', '--out', keyFile);
      expect(again.code).to.equal(2);
      expect(again.stderr).to.include('already exists').and.include('--force');
      expect(hdx('keygen', '--out', keyFile, '--force').code).to.equal(0);
      expect(JSON.parse(fs.readFileSync(keyFile, 'utf8')).x).to.not.equal(out.publicKeyJwk.x);
    });
  });

  describe('token', () => {
    it('makes a DID token that verifyBearerToken accepts once (round trip)', async () => {
      hdx('keygen', '--out', keyFile);
      const { code, stdout } = hdx('token', '--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read user/Observation.rs', '--purpose', 'TREAT', '--ttl', '120');
      expect(code).to.equal(0);
      const token = stdout.trim();
      const key = keyFromFile(keyFile);
      const decoded = jwt.decode(token, { complete: true });
      expect(decoded?.header).to.deep.equal({ alg: 'ES256', typ: 'JWT', kid: key.kid });
      const claims = decoded?.payload as Record<string, unknown>;
      expect(claims).to.include({ iss: key.did, sub: key.did, aud: BASE, scope: 'patient/*.read user/Observation.rs', purpose_of_use: 'TREAT' });
      expect(Number(claims.exp) - Number(claims.iat)).to.equal(120);
      expect(claims.jti).to.match(/^[0-9a-f-]{36}$/);

      const opts = { audience: BASE, resolveDid: fakeResolver(resolutionOf(key)), jtiStore: new MemoryJtiStore() };
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({ subject: key.did, did: key.did, role: 'patient', tokenKind: 'did', purposeOfUse: 'TREAT' });
      expect(ctx.scopes.map((s) => s.text)).to.deep.equal(['patient/*.read', 'user/Observation.rs']);
      try {
        await verifyBearerToken(`Bearer ${token}`, opts);
        expect.fail('a token is good for one request');
      } catch (err) {
        expect((err as Error).message).to.match(/already used/);
      }
    });

    it('signs as --kid (a rotated key) and carries a break-glass reason with ETREAT', async () => {
      hdx('keygen', '--out', keyFile);
      const key = keyFromFile(keyFile);
      const { stdout } = hdx(
        'token',
        '--key',
        keyFile,
        '--aud',
        BASE,
        '--scope',
        'user/*.read',
        '--purpose',
        'ETREAT',
        '--break-glass-reason',
        'unconscious on arrival',
        '--kid',
        `${key.did}#key-2`,
      );
      const opts = { audience: BASE, resolveDid: fakeResolver(resolutionOf(key, { keyNumber: 2, kind: 'practitioner' })), jtiStore: new MemoryJtiStore() };
      const ctx = await verifyBearerToken(`Bearer ${stdout.trim()}`, opts);
      expect(ctx).to.deep.include({ role: 'practitioner', purposeOfUse: 'ETREAT', breakGlassReason: 'unconscious on arrival' });
    });

    it('usage errors exit 2 and say how to fix them', () => {
      hdx('keygen', '--out', keyFile);
      const cases: Array<[string[], RegExp]> = [
        [['--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT'], /--key is required, e\.g\. --key key\.json/],
        [['--key', path.join(dir, 'nope.json'), '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT'], /no such file \(make one with: hdx keygen --out/],
        [['--key', keyFile, '--scope', 'patient/*.read', '--purpose', 'TREAT'], /--aud is required/],
        [['--key', keyFile, '--aud', 'localhost:8080', '--scope', 'patient/*.read', '--purpose', 'TREAT'], /--aud must be an http\(s\) URL/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'patient/*.reed', '--purpose', 'TREAT'], /--scope: scope 1: the permissions/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'openid', '--purpose', 'TREAT'], /holds no SMART resource scope/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read'], /--purpose is required, e\.g\. --purpose TREAT/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'treat'], /PurposeOfUse code/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT', '--ttl', '301'], /--ttl must be whole seconds from 1 to 300/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT', '--break-glass-reason', 'x'], /goes with --purpose ETREAT/],
        [['--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT', '--kid', 'key-2'], /--kid must be a DID URL/],
        [['--key', keyFile, '--bogus'], /Unknown option '--bogus'/],
      ];
      for (const [args, pattern] of cases) {
        const { code, stderr, stdout } = hdx('token', ...args);
        expect(code, args.join(' ')).to.equal(2);
        expect(stderr, args.join(' ')).to.match(pattern);
        expect(stdout).to.equal('');
      }
      fs.writeFileSync(path.join(dir, 'public.json'), JSON.stringify(keyFromFile(keyFile).publicJwk));
      const noD = hdx('token', '--key', path.join(dir, 'public.json'), '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT');
      expect(noD.code).to.equal(2);
      expect(noD.stderr).to.include('not a private P-256 JWK: the key has no private part');
    });
  });

  describe('did-proof', () => {
    it('prints the Register input; its proof passes the chaincode JWS checks', async () => {
      hdx('keygen', '--out', keyFile);
      const { code, stdout } = hdx('did-proof', '--key', keyFile, '--kind', 'patient');
      expect(code).to.equal(0);
      const registration = JSON.parse(stdout);
      const key = keyFromFile(keyFile);
      expect(Object.keys(registration).sort()).to.deep.equal(['did', 'kind', 'proof', 'publicKeyJwk']);
      expect(registration).to.deep.include({ did: key.did, kind: 'patient', publicKeyJwk: key.publicJwk });
      expect(registration.did).to.equal(`did:hdx:${await chaincodeThumbprint(registration.publicKeyJwk)}`);
      const proof = parseCompactJws(registration.proof, 'registration.proof');
      expect(proof.header).to.deep.equal({ alg: 'ES256', kid: `${key.did}#key-1` });
      await verifyJws(proof, registration.publicKeyJwk, 'registration.proof');
      expect(Object.keys(proof.payload).sort()).to.deep.equal(['action', 'did', 'iat', 'kind', 'nonce']);
      expect(proof.payload).to.include({ action: 'register', did: key.did, kind: 'patient' });
      expect(proof.payload.nonce).to.match(/^[A-Za-z0-9_-]{16,128}$/);
      expect(Math.abs(Number(proof.payload.iat) - Date.now() / 1000)).to.be.below(5);
    });

    it('an organization registers with its FHIR base URL', () => {
      hdx('keygen', '--out', keyFile);
      expect(hdx('did-proof', '--key', keyFile, '--kind', 'organization').stderr).to.include('add --fhir-base-url');
      expect(hdx('did-proof', '--key', keyFile, '--kind', 'patient', '--fhir-base-url', BASE).code).to.equal(2);
      expect(hdx('did-proof', '--key', keyFile, '--kind', 'robot').stderr).to.include('--kind must be one of patient, practitioner');
      const out = JSON.parse(hdx('did-proof', '--key', keyFile, '--kind', 'organization', '--fhir-base-url', BASE).stdout);
      expect(out.fhirBaseUrl).to.equal(BASE);
    });

    it('prints Deactivate and RotateKey inputs signed by the current key', async () => {
      hdx('keygen', '--out', keyFile);
      const key = keyFromFile(keyFile);
      const deactivation = JSON.parse(hdx('did-proof', '--key', keyFile, '--action', 'deactivate').stdout);
      const d = parseCompactJws(deactivation.proof, 'deactivation.proof');
      await verifyJws(d, key.publicJwk, 'deactivation.proof');
      expect(deactivation.did).to.equal(key.did);
      expect(Object.keys(d.payload).sort()).to.deep.equal(['action', 'did', 'iat', 'nonce']);

      const newKeyFile = path.join(dir, 'new-key.json');
      hdx('keygen', '--out', newKeyFile);
      const rotation = JSON.parse(hdx('did-proof', '--key', keyFile, '--action', 'rotate', '--new-key', newKeyFile).stdout);
      const r = parseCompactJws(rotation.proof, 'rotation.proof');
      await verifyJws(r, key.publicJwk, 'rotation.proof');
      expect(rotation).to.deep.equal({ did: key.did, publicKeyJwk: keyFromFile(newKeyFile).publicJwk, proof: rotation.proof });
      expect(r.payload).to.deep.include({ action: 'rotate', did: key.did, publicKeyJwk: rotation.publicKeyJwk });
      expect(hdx('did-proof', '--key', keyFile, '--action', 'rotate').stderr).to.include('--new-key is required');
      expect(hdx('did-proof', '--key', keyFile, '--action', 'burn').code).to.equal(2);
    });
  });

  describe('consent-sign', () => {
    const consentOf = (patient: string): Record<string, unknown> => ({
      resourceType: 'Consent',
      id: '6f1c7a52-8a0e-4a55-9d1e-2a4c1c1f0b7e',
      status: 'active',
      patient: { reference: patient },
      provision: {
        type: 'permit',
        actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
        purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
      },
    });

    it('signs {consent, action, nonce, iat} as the chaincode expects; a revocation carries the consent reference only', async () => {
      hdx('keygen', '--out', keyFile);
      const key = keyFromFile(keyFile);
      const consentFile = path.join(dir, 'consent.json');
      const consent = consentOf(key.did);
      fs.writeFileSync(consentFile, JSON.stringify(consent, null, 2));

      const grant = hdx('consent-sign', '--key', keyFile, '--consent', consentFile, '--action', 'grant');
      expect(grant.code).to.equal(0);
      const parsed = parseCompactJws(grant.stdout.trim(), 'signedConsent');
      await verifyJws(parsed, key.publicJwk, 'signedConsent');
      expect(parsed.header.kid).to.equal(key.kid);
      expect(Object.keys(parsed.payload).sort()).to.deep.equal(['action', 'consent', 'iat', 'nonce']);
      expect(parsed.payload).to.deep.include({ action: 'grant', consent });

      const revoke = parseCompactJws(hdx('consent-sign', '--key', keyFile, '--consent', consentFile, '--action', 'revoke').stdout.trim(), 'signedConsent');
      expect(revoke.payload.consent).to.deep.equal({ resourceType: 'Consent', id: consent.id, patient: { reference: key.did } });
      expect(payloadOf(hdx('consent-sign', '--key', keyFile, '--consent', consentFile, '--action', 'update').stdout.trim()).action).to.equal('update');
    });

    it('refuses what the chaincode would refuse, with the fix', () => {
      hdx('keygen', '--out', keyFile);
      const file = path.join(dir, 'c.json');
      fs.writeFileSync(file, JSON.stringify({ resourceType: 'Patient' }));
      expect(hdx('consent-sign', '--key', keyFile, '--consent', file, '--action', 'grant').stderr).to.include('must hold a FHIR Consent');
      fs.writeFileSync(file, JSON.stringify({ ...consentOf('MRN-1234') }));
      expect(hdx('consent-sign', '--key', keyFile, '--consent', file, '--action', 'grant').stderr).to.include("the patient's DID");
      fs.writeFileSync(file, '{not json');
      expect(hdx('consent-sign', '--key', keyFile, '--consent', file, '--action', 'grant').stderr).to.include('is not JSON');
      expect(hdx('consent-sign', '--key', keyFile, '--consent', file, '--action', 'delete').stderr).to.include('--action must be grant, update or revoke');
    });
  });

  describe('review-sign', () => {
    const eventId = `${'a1'.repeat(32)}.0`;

    it('prints the $review Parameters: the outcome and the auditor-signed {action, eventId, outcome, nonce, iat}, which the gateway takes', async () => {
      hdx('keygen', '--out', keyFile);
      const key = keyFromFile(keyFile);
      const out = hdx('review-sign', '--key', keyFile, '--event', eventId, '--outcome', 'needs-follow-up');
      expect(out.code, out.stderr).to.equal(0);
      const body = JSON.parse(out.stdout) as unknown;
      const request = parseReviewParameters(body);
      expect(request.outcome).to.equal('needs-follow-up');
      const parsed = parseCompactJws(request.proof, 'review');
      await verifyJws(parsed, key.publicJwk, 'review');
      expect(parsed.header.kid).to.equal(key.kid);
      expect(Object.keys(parsed.payload).sort()).to.deep.equal(['action', 'eventId', 'iat', 'nonce', 'outcome']);
      expect(parsed.payload).to.deep.include({ action: 'review', eventId, outcome: 'needs-follow-up' });
    });

    it('refuses an outcome outside the codes and an event id that is not a ledger event id (exit 2)', () => {
      hdx('keygen', '--out', keyFile);
      const bad = hdx('review-sign', '--key', keyFile, '--event', eventId, '--outcome', 'fine');
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.include('justified, not-justified, needs-follow-up');
      const id = hdx('review-sign', '--key', keyFile, '--event', 'AuditEvent/1', '--outcome', 'justified');
      expect(id.code).to.equal(2);
      expect(id.stderr).to.include('ledger event id');
    });
  });

  describe('idp-keygen and idp-token', () => {
    it('writes a development IdP key pair whose tokens the gateway verifies', async () => {
      const idpDir = path.join(dir, 'idp');
      const keys = hdx('idp-keygen', '--out-dir', idpDir);
      expect(keys.code).to.equal(0);
      const out = JSON.parse(keys.stdout);
      expect(out.privateKey).to.equal(path.join(idpDir, 'idp-private.pem'));
      expect(fs.statSync(out.privateKey).mode & 0o777).to.equal(0o600);
      expect(hdx('idp-keygen', '--out-dir', idpDir).stderr).to.include('--force');

      hdx('keygen', '--out', keyFile);
      const did = keyFromFile(keyFile).did;
      const { code, stdout } = hdx(
        'idp-token',
        '--idp-key',
        out.privateKey,
        '--iss',
        'https://idp.hospital1.example',
        '--aud',
        'hdx-hospital1',
        '--sub',
        'dr-house',
        '--role',
        'practitioner',
        '--scope',
        'user/*.read',
        '--purpose',
        'TREAT',
        '--did',
        did,
      );
      expect(code).to.equal(0);
      const idp = { issuer: 'https://idp.hospital1.example', audience: 'hdx-hospital1', keys: idpKeysFromText(fs.readFileSync(out.publicKey, 'utf8')) };
      // The token's DID is checked on the ledger: registered by this organization, a practitioner.
      const resolveDid = fakeResolver(resolutionOf(keyFromFile(keyFile), { kind: 'practitioner', organization: 'Hospital1MSP' }));
      const ctx = await verifyBearerToken(`Bearer ${stdout.trim()}`, { audience: BASE, mspId: 'Hospital1MSP', idp, resolveDid, jtiStore: new MemoryJtiStore() });
      expect(ctx).to.deep.include({ subject: 'dr-house', did, role: 'practitioner', organization: 'Hospital1MSP', tokenKind: 'idp', purposeOfUse: 'TREAT' });
      expect(jwt.decode(stdout.trim(), { complete: true })?.header.kid).to.equal(out.kid);
    });

    it('usage errors for idp-token', () => {
      const idpDir = path.join(dir, 'idp');
      hdx('idp-keygen', '--out-dir', idpDir);
      const pem = path.join(idpDir, 'idp-private.pem');
      const base = ['--iss', 'https://idp', '--aud', 'a', '--sub', 's', '--scope', 'user/*.read', '--purpose', 'TREAT'];
      expect(hdx('idp-token', '--idp-key', pem, ...base, '--role', 'root').stderr).to.include('--role must be one of patient, practitioner, auditor, admin, system');
      expect(hdx('idp-token', '--idp-key', pem, ...base, '--role', 'admin', '--did', 'MRN-1').stderr).to.include('--did must be a did:hdx DID');
      expect(hdx('idp-token', '--idp-key', path.join(idpDir, 'idp-public.pem'), ...base, '--role', 'admin').stderr).to.include('is not a PEM private key');
      expect(hdx('idp-token', ...base, '--role', 'admin').stderr).to.include('--idp-key is required');
    });
  });

  describe('the command line', () => {
    it('help, unknown commands and a missing command', () => {
      expect(hdx('help').code).to.equal(0);
      expect(hdx('help', 'token').stdout).to.match(/^hdx token --key/);
      expect(hdx('token', '--help').stdout).to.match(/^hdx token --key/);
      const unknown = hdx('mint');
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.include('unknown command mint');
      expect(hdx().code).to.equal(2);
    });

    it('runs as a program: token on stdout, usage errors exit 2 on stderr', () => {
      const cli = path.join(__dirname, 'cli.ts');
      const node = (...args: string[]) =>
        spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', cli, ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..') });
      const keygen = node('keygen', '--out', keyFile);
      expect(keygen.status).to.equal(0);
      const token = node('token', '--key', keyFile, '--aud', BASE, '--scope', 'patient/*.read', '--purpose', 'TREAT');
      expect(token.status).to.equal(0);
      expect(token.stdout.trim().split('.')).to.have.length(3);
      const bad = node('token', '--key', keyFile);
      expect(bad.status).to.equal(2);
      expect(bad.stderr).to.include('--aud is required');
    });

    it('hdx view rebuild: usage errors exit 2, a data dir without a ledger view exits 1 naming the file', async () => {
      const viewCli = async (...argv: string[]): Promise<{ code: number; stderr: string }> => {
        let stderr = '';
        const code = await runAsync(argv, { stdout: () => undefined, stderr: (t) => (stderr += t) });
        return { code, stderr };
      };
      const noSub = await viewCli('view');
      expect(noSub.code).to.equal(2);
      expect(noSub.stderr).to.include('hdx view rebuild');
      const noDir = await viewCli('view', 'rebuild');
      expect(noDir.code).to.equal(2);
      expect(noDir.stderr).to.include('--data-dir is required');
      const empty = await viewCli('view', 'rebuild', '--data-dir', dir);
      expect(empty.code).to.equal(1);
      expect(empty.stderr).to.include(`there is no ledger view at ${path.join(dir, 'ledger-view.db')}`);
    });

    it('hdx replay: usage errors exit 2 and say how to call it; without the gateway environment it exits 2 naming what is missing', async () => {
      const replayCli = async (...argv: string[]): Promise<{ code: number; stderr: string }> => {
        let stderr = '';
        const code = await runAsync(argv, { stdout: () => undefined, stderr: (t) => (stderr += t) });
        return { code, stderr };
      };
      const noPatient = await replayCli('replay');
      expect(noPatient.code).to.equal(2);
      expect(noPatient.stderr).to.include('--patient is required');
      const notDid = await replayCli('replay', '--patient', 'Patient/123');
      expect(notDid.code).to.equal(2);
      expect(notDid.stderr).to.include("--patient must be the patient's did:hdx DID");
      const saved = Object.entries(process.env).filter(([key]) => key.startsWith('HDX_'));
      try {
        for (const [key] of saved) Reflect.deleteProperty(process.env, key);
        const noEnv = await replayCli('replay', '--patient', `did:hdx:${'P'.repeat(43)}`, '--data-dir', dir);
        expect(noEnv.code).to.equal(2);
        expect(noEnv.stderr).to.include("the gateway's environment is needed to reach its peer");
      } finally {
        for (const [key, value] of saved) process.env[key] = value;
      }
      expect((await replayCli('replay', '--help')).stderr).to.equal('');
    });
  });
});
