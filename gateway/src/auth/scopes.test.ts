import { expect } from 'chai';
import { OperationOutcomeError } from '../errors';
import { InsufficientScopeError } from './errors';
import { grantingScope, hasScope, parseScope, parseScopes, requireScope, type Scope, ScopeSyntaxError } from './scopes';

function perms(scope: Scope | undefined): string {
  return [...(scope?.permissions ?? [])].join('');
}

describe('auth/scopes', () => {
  describe('parsing', () => {
    it('parses SMART v1 scopes', () => {
      expect(parseScope('patient/*.read')).to.deep.include({ context: 'patient', resourceType: '*', text: 'patient/*.read' });
      expect(perms(parseScope('patient/*.read'))).to.equal('rs');
      expect(perms(parseScope('user/Observation.write'))).to.equal('cud');
      expect(perms(parseScope('system/*.*'))).to.equal('cruds');
      expect(parseScope('patient/Patient.read')).to.deep.include({ context: 'patient', resourceType: 'Patient' });
    });

    it('parses SMART v2 permission letters in cruds order', () => {
      expect(perms(parseScope('user/Observation.rs'))).to.equal('rs');
      expect(perms(parseScope('patient/*.cruds'))).to.equal('cruds');
      expect(perms(parseScope('system/Consent.cud'))).to.equal('cud');
      expect(perms(parseScope('user/Encounter.s'))).to.equal('s');
    });

    it('refuses malformed resource scopes, naming the position and the rule', () => {
      for (const bad of [
        'patient/*.reed',
        'user/Observation.sr',
        'user/Observation.rr',
        'user/observation.read',
        'system/*',
        'user/.read',
        'patient/*.',
        'user/Obs-ervation.read',
      ]) {
        expect(() => parseScope(bad, 3), bad).to.throw(ScopeSyntaxError, /^scope 3/);
      }
      expect(() => parseScope('patient/Observation.rs?category=laboratory')).to.throw(ScopeSyntaxError, /parameters/);
    });

    it('keeps non-resource scopes aside and splits on spaces', () => {
      const parsed = parseScopes('openid fhirUser  launch/patient patient/*.read offline_access user/Observation.cruds');
      expect(parsed.scopes.map((s) => s.text)).to.deep.equal(['patient/*.read', 'user/Observation.cruds']);
      expect(parsed.other).to.deep.equal(['openid', 'fhirUser', 'launch/patient', 'offline_access']);
      expect(parseScopes('').scopes).to.deep.equal([]);
    });

    it('names the position of the bad scope in a claim, never its text', () => {
      try {
        parseScopes('patient/*.read user/Secret-Thing.read');
        expect.fail('should throw');
      } catch (err) {
        expect(err).to.be.instanceOf(ScopeSyntaxError);
        expect((err as ScopeSyntaxError).position).to.equal(2);
        expect((err as Error).message).to.not.include('Secret');
      }
    });

    it('refuses more than 100 scopes', () => {
      expect(() => parseScopes(Array(101).fill('patient/*.read').join(' '))).to.throw(ScopeSyntaxError, /at most 100/);
    });
  });

  describe('granting', () => {
    const scopes = parseScopes('patient/*.read user/Observation.write system/Consent.c').scopes;
    const holder = { scopes, role: 'practitioner' };

    it('read and search come with v1 read; write means create, update and delete', () => {
      expect(hasScope(holder, 'Patient', 'read')).to.equal(true);
      expect(hasScope(holder, 'Encounter', 'search')).to.equal(true);
      expect(hasScope(holder, 'Encounter', 'create')).to.equal(false);
      expect(hasScope(holder, 'Observation', 'write')).to.equal(true);
      expect(hasScope(holder, 'Observation', 'update')).to.equal(true);
      expect(hasScope(holder, 'Consent', 'create')).to.equal(true);
      expect(hasScope(holder, 'Consent', 'write')).to.equal(false);
    });

    it('v2 letters grant exactly what they say', () => {
      const v2 = { scopes: parseScopes('user/Observation.rs').scopes };
      expect(hasScope(v2, 'Observation', 'read')).to.equal(true);
      expect(hasScope(v2, 'Observation', 'search')).to.equal(true);
      expect(hasScope(v2, 'Observation', 'update')).to.equal(false);
      expect(hasScope({ scopes: parseScopes('user/Observation.r').scopes }, 'Observation', 'search')).to.equal(false);
    });

    it('returns the broadest granting scope: system, then user, then patient', () => {
      const all = parseScopes('patient/Observation.read user/*.read system/Observation.rs').scopes;
      expect(grantingScope(all, 'Observation', 'read')?.context).to.equal('system');
      expect(grantingScope(all.slice(0, 2), 'Observation', 'read')?.context).to.equal('user');
      expect(requireScope({ scopes: all.slice(0, 1) }, 'Observation', 'read').context).to.equal('patient');
    });

    it('requireScope throws a 403 naming the missing scope for the caller role', () => {
      let caught: unknown;
      try {
        requireScope({ scopes: parseScopes('patient/Patient.read').scopes, role: 'patient' }, 'Observation', 'read');
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(OperationOutcomeError).and.instanceOf(InsufficientScopeError);
      const err = caught as InsufficientScopeError;
      expect(err.code).to.equal('FORBIDDEN');
      expect(err.status).to.equal(403);
      expect(err.message).to.include('patient/Observation.read').and.include('patient/Observation.r');
      expect(err.wwwAuthenticate).to.equal('Bearer realm="hdx", error="insufficient_scope", scope="patient/Observation.read"');
      expect(err.outcome.issue[0]?.code).to.equal('forbidden');

      expect(() => requireScope({ scopes: [], role: 'practitioner' }, 'Observation', 'create')).to.throw(/user\/Observation\.write \(SMART v2: user\/Observation\.c\)/);
      expect(() => requireScope({ scopes: [], role: 'system' }, 'Consent', 'delete')).to.throw(/system\/Consent\.write/);
    });
  });
});
