/**
 * A local PostgreSQL server for a gateway's store (HDX_STORE=postgres://…) and for the tests: a cluster
 * of its own in a folder (initdb), started on 127.0.0.1 and a given port (pg_ctl), stopped by the same
 * folder. The binaries are Debian's (`apt-get install postgresql`; /usr/lib/postgresql/<version>/bin),
 * or HDX_PG_BIN. PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user
 * the Debian package creates, and initdb and pg_ctl run as that user.
 *
 * The cluster: UTF8, the C locale (text sorts byte by byte, as SQLite's does, so both stores page alike),
 * one role `hdx` with a random password (scram-sha-256 over TCP), one database `hdx`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetworkError, run } from './proc';

export interface PostgresServer {
  /** postgres://hdx:<password>@127.0.0.1:<port>/hdx */
  readonly url: string;
  readonly port: number;
  /** The cluster's folder (data, log and password file). */
  readonly dir: string;
}

/** The folder of initdb and pg_ctl: HDX_PG_BIN, else the newest of Debian's /usr/lib/postgresql/<version>/bin. */
export function postgresBin(): string {
  const fromEnv = process.env.HDX_PG_BIN;
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) throw new NetworkError('PostgreSQL is not installed: apt-get install postgresql (Debian), or set HDX_PG_BIN to the folder of initdb and pg_ctl');
  return path.join(root, newest, 'bin');
}

/** As root, the uid and gid of the `postgres` user (PostgreSQL will not run as root); undefined otherwise. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new NetworkError('PostgreSQL does not run as root, and there is no postgres user to run it as: apt-get install postgresql creates it');
  }
}

/** Runs a PostgreSQL binary, as the postgres user when this process is root. */
function pg(bin: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const file = path.join(postgresBin(), bin);
  const user = serverUser();
  const options = { env: { ...process.env, ...env }, cwd: '/', timeoutMs: 120_000 };
  return user ? run('runuser', ['-u', 'postgres', '--', file, ...args], options) : run(file, args, options);
}

/**
 * Creates the cluster in `dir` (unless it is there) and starts it on 127.0.0.1:`port` (at most
 * `maxConnections` sessions, default 200); resolves when it accepts connections. Calling it again on a running cluster starts nothing and gives its URL.
 */
export async function startPostgres(opts: { dir: string; port: number; maxConnections?: number }): Promise<PostgresServer> {
  const dir = path.resolve(opts.dir);
  const data = path.join(dir, 'data');
  const pwFile = path.join(dir, 'password');
  const user = serverUser();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (user) fs.chownSync(dir, user.uid, user.gid);
  if (!fs.existsSync(path.join(data, 'PG_VERSION'))) {
    fs.writeFileSync(pwFile, randomBytes(18).toString('hex'), { mode: 0o600 });
    if (user) fs.chownSync(pwFile, user.uid, user.gid);
    await pg('initdb', ['-D', data, '-U', 'hdx', `--pwfile=${pwFile}`, '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C']);
  }
  const password = fs.readFileSync(pwFile, 'utf8').trim();
  const url = `postgres://hdx:${password}@127.0.0.1:${opts.port}/hdx`;
  if (!running(data)) {
    const settings = `-p ${opts.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c max_connections=${String(opts.maxConnections ?? 200)}`;
    await pg('pg_ctl', ['-D', data, '-l', path.join(dir, 'postgres.log'), '-o', settings, '-w', '-t', '60', 'start']);
  }
  const env = { PGPASSWORD: password };
  const exists = await pg('psql', ['-h', '127.0.0.1', '-p', String(opts.port), '-U', 'hdx', '-d', 'postgres', '-tAc', "SELECT 1 FROM pg_database WHERE datname = 'hdx'"], env);
  if (exists.trim() !== '1') await pg('createdb', ['-h', '127.0.0.1', '-p', String(opts.port), '-U', 'hdx', 'hdx'], env);
  return { url, port: opts.port, dir };
}

/** Whether the cluster's postmaster is alive (its pid file names a live process). */
function running(data: string): boolean {
  const pidFile = path.join(data, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return false;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the cluster in `dir` (fast shutdown: sessions are ended, what is committed is kept). No cluster or not running: nothing to do. */
export async function stopPostgres(dir: string): Promise<void> {
  const data = path.join(path.resolve(dir), 'data');
  if (!running(data)) return;
  await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
}
