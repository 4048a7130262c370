/**
 * PostgreSQL for the gateway's unit tests: one local cluster per mocha run (fabric-network's
 * startPostgres: initdb and pg_ctl from Debian's packages, in a temporary folder, on a free port of
 * 127.0.0.1), started by the first test that asks and stopped after the last test (test-store.ts's root hook).
 * HDX_TEST_PG_URL names a server to use instead (nothing is started or stopped then).
 *
 * Every store a test opens gets a schema of its own (testPgSchema), so tests never see each other's rows.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startPostgres, stopPostgres } from '@hdx/fabric-network';
import { Client } from 'pg';

let server: Promise<string> | undefined;
let started: string | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The URL of the test PostgreSQL server (started on first use). */
export function testPostgresUrl(): Promise<string> {
  server ??= (async () => {
    const given = process.env.HDX_TEST_PG_URL;
    if (given) return given;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-test-pg-'));
    // Every test store keeps its own pools and an ownership-lock session until the run ends (the root
    // hook closes them): the suite's hundreds of stores outgrow PostgreSQL's default 200 sessions.
    const pg = await startPostgres({ dir, port: await freePort(), maxConnections: 1000 });
    started = dir;
    return pg.url;
  })();
  return server;
}

/** A new schema name for one store. */
export function testPgSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

/** Stops the server testPostgresUrl started (the root hook calls it after the last test). */
export async function stopTestPostgres(): Promise<void> {
  const dir = started;
  started = undefined;
  server = undefined;
  if (dir) {
    await stopPostgres(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs SQL on one schema behind the stores' back (a test counting rows or tampering): `?` placeholders;
 * a column named `n` (COUNT(*), a bigint PostgreSQL returns as a string) comes back as a number.
 */
export async function sqlInSchema(url: string, schema: string, sql: string, params: readonly unknown[] = []): Promise<Array<Record<string, unknown>>> {
  const client = new Client({ connectionString: url, options: `-c search_path=${schema}` });
  await client.connect();
  try {
    let n = 0;
    const rows = (
      await client.query(
        sql.replace(/\?/g, () => `$${++n}`),
        [...params],
      )
    ).rows as Array<Record<string, unknown>>;
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^\d+$/.test(v) && k === 'n' ? Number(v) : v])));
  } finally {
    await client.end();
  }
}
