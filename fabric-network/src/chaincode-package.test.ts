import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { ccaasPackage, type ConnectionJson } from './chaincode-package';

const conn: ConnectionJson = { address: '127.0.0.1:7100', dial_timeout: '10s', tls_required: true, client_auth_required: true, root_cert: 'PEM' };

describe('ccaasPackage', () => {
  it('is byte-for-byte deterministic, so the package id is stable', () => {
    const a = ccaasPackage('hdx_1.0', conn);
    const b = ccaasPackage('hdx_1.0', conn);
    expect(a.bytes.equals(b.bytes)).to.equal(true);
    expect(a.packageId).to.match(/^hdx_1\.0:[0-9a-f]{64}$/);
    expect(a.packageId).to.equal(b.packageId);
    expect(ccaasPackage('hdx_1.0', { ...conn, address: '127.0.0.1:7101' }).packageId).to.not.equal(a.packageId);
  });

  it('holds exactly metadata.json and code.tar.gz (with connection.json), no directory entries', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccaas-'));
    const file = path.join(dir, 'pkg.tgz');
    fs.writeFileSync(file, ccaasPackage('hdx_1.0', conn).bytes);
    expect(execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n')).to.deep.equal(['metadata.json', 'code.tar.gz']);
    execFileSync('tar', ['-xzf', file, '-C', dir]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'))).to.deep.equal({ type: 'ccaas', label: 'hdx_1.0' });
    expect(execFileSync('tar', ['-tzf', path.join(dir, 'code.tar.gz')], { encoding: 'utf8' }).trim()).to.equal('connection.json');
    execFileSync('tar', ['-xzf', path.join(dir, 'code.tar.gz'), '-C', dir]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'connection.json'), 'utf8'))).to.deep.equal(conn);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
