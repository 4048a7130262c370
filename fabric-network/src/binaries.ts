import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetworkError } from './proc';

export interface Binaries {
  readonly binDir: string;
  readonly configDir: string;
  readonly peer: string;
  readonly orderer: string;
  readonly configtxgen: string;
  readonly osnadmin: string;
  /** For channel config updates (add-org, which builds it). Not checked here: a cache built before add-org lacks it. */
  readonly configtxlator: string;
  readonly caServer: string;
  readonly caClient: string;
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/**
 * Builds the pinned Fabric binaries on first use (scripts/install-fabric.sh shows its progress on stderr)
 * and returns where they are. Later calls find them in the per-version cache at once.
 */
export function ensureBinaries(): Binaries {
  const script = path.join(REPO_ROOT, 'scripts', 'install-fabric.sh');
  let binDir: string;
  try {
    binDir =
      execFileSync('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
        .trim()
        .split('\n')
        .pop() ?? '';
  } catch {
    throw new NetworkError('installing the Fabric binaries failed (see the messages above)');
  }
  return binariesIn(binDir);
}

/** The Fabric binaries already built in `binDir` (e.g. the one a network's network.json names). */
export function binariesIn(binDir: string): Binaries {
  const b = (name: string): string => {
    const file = path.join(binDir, name);
    if (!fs.existsSync(file)) throw new NetworkError(`missing Fabric binary ${file}; run scripts/install-fabric.sh`);
    return file;
  };
  return {
    binDir,
    configDir: path.join(path.dirname(binDir), 'config'),
    peer: b('peer'),
    orderer: b('orderer'),
    configtxgen: b('configtxgen'),
    osnadmin: b('osnadmin'),
    configtxlator: path.join(binDir, 'configtxlator'),
    caServer: b('fabric-ca-server'),
    caClient: b('fabric-ca-client'),
  };
}
