/**
 * For unit tests: the real Express app (createApp) over a store and a ledger stand-in, with the
 * services wired as server.ts wires them. Options override any dependency.
 */
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { AuditService } from '../fhir/audit-events';
import { ConsentService } from '../fhir/consent-service';
import { ResourceService } from '../fhir/resource-service';
import { type AppDeps, createApp } from '../http/app';
import type { LedgerClient } from '../ledger/ledger-client';
import { newLogger } from '../logger';
import type { ResourceStore } from '../store/store';
import { fakeAuthenticate } from './fake-auth';

export interface TestAppOptions extends Partial<Omit<AppDeps, 'config'>> {
  readonly store: ResourceStore;
  readonly ledger: LedgerClient;
  readonly baseUrl?: string;
  readonly mspId?: string;
  readonly authenticate?: RequestHandler;
  readonly log?: Logger;
}

export function testApp(opts: TestAppOptions): { app: ReturnType<typeof createApp>; resources: ResourceService } {
  const { store, ledger, baseUrl = 'http://127.0.0.1:8080/fhir', mspId = 'Hospital1MSP', ...rest } = opts;
  const log = opts.log ?? newLogger((process.env.HDX_TEST_LOG_LEVEL as 'error' | undefined) ?? 'silent');
  const resources = opts.resources ?? new ResourceService({ store, ledger, log, mspId });
  const app = createApp({
    consents: new ConsentService(ledger),
    audit: new AuditService(ledger),
    authenticate: fakeAuthenticate,
    ...rest,
    config: { baseUrl, mspId },
    log,
    resources,
    ledger,
    store,
  });
  return { app, resources };
}
