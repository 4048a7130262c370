import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/**
 * Chaincode-as-a-service packages, built byte-for-byte deterministically so that the same connection
 * settings always give the same package id (`label:sha256(package)`).
 *
 * The peer wants an outer .tgz holding exactly two regular files, `metadata.json` and `code.tar.gz`
 * (which holds `connection.json`); no directory entries such as `./`.
 */

export interface ConnectionJson {
  readonly address: string;
  readonly dial_timeout: string;
  readonly tls_required: boolean;
  readonly client_auth_required?: boolean;
  readonly root_cert?: string;
  readonly client_cert?: string;
  readonly client_key?: string;
}

/** A ustar archive of regular files, with fixed owner, mode and mtime, in the order given. */
export function tar(files: ReadonlyArray<readonly [name: string, content: Buffer]>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of files) {
    if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
    const h = Buffer.alloc(512, 0);
    const put = (value: string, offset: number, length: number): void => {
      h.write(value, offset, length, 'ascii');
    };
    const octal = (n: number, length: number): string => `${n.toString(8).padStart(length - 1, '0')}\0`;
    put(name, 0, 100);
    put(octal(0o644, 8), 100, 8);
    put(octal(0, 8), 108, 8); // uid
    put(octal(0, 8), 116, 8); // gid
    put(octal(content.length, 12), 124, 12);
    put(octal(0, 12), 136, 12); // mtime: epoch, for determinism
    put('        ', 148, 8); // checksum placeholder
    put('0', 156, 1); // regular file
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    let sum = 0;
    for (const byte of h) sum += byte;
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(h, content, Buffer.alloc((512 - (content.length % 512)) % 512, 0));
  }
  blocks.push(Buffer.alloc(1024, 0));
  return Buffer.concat(blocks);
}

/** gzip with no file name and mtime 0 (Node's zlib writes neither), so output depends on input only. */
function gz(data: Buffer): Buffer {
  return gzipSync(data, { level: 9 });
}

export interface CcaasPackage {
  readonly label: string;
  readonly bytes: Buffer;
  readonly packageId: string;
}

export function ccaasPackage(label: string, connection: ConnectionJson): CcaasPackage {
  const code = gz(tar([['connection.json', Buffer.from(`${JSON.stringify(connection, null, 2)}\n`)]]));
  const metadata = Buffer.from(JSON.stringify({ type: 'ccaas', label }));
  const bytes = gz(
    tar([
      ['metadata.json', metadata],
      ['code.tar.gz', code],
    ]),
  );
  const packageId = `${label}:${createHash('sha256').update(bytes).digest('hex')}`;
  return { label, bytes, packageId };
}
