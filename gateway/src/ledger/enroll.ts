import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import FabricCAServices from 'fabric-ca-client';
import type { Logger } from 'pino';
import type { Config } from '../config';

export interface EnrolledIdentity {
  readonly certificate: string;
  readonly privateKey: string;
}

/** Re-enroll when the certificate has less than this left. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

/**
 * The gateway's Fabric identity: enrolled from its organization's Fabric CA (fabric-ca-client) with the
 * enrollment id and secret the network's operator registered for it, and kept in the data folder
 * (mode 0600) so restarts reuse it. Enrolls again when missing or close to expiry.
 */
export async function enrollGatewayIdentity(config: Config, log: Logger): Promise<EnrolledIdentity> {
  const dir = path.join(config.dataDir, 'identity');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    const certificate = fs.readFileSync(certFile, 'utf8');
    const notAfter = new Date(new X509Certificate(certificate).validTo).getTime();
    if (notAfter - Date.now() > RENEW_BEFORE_MS) {
      return { certificate, privateKey: fs.readFileSync(keyFile, 'utf8') };
    }
    log.info({ notAfter: new Date(notAfter).toISOString() }, 'gateway certificate close to expiry: enrolling again');
  }
  const ca = new FabricCAServices(config.caUrl, { trustedRoots: [fs.readFileSync(config.caTlsCaFile, 'utf8')], verify: true }, config.caName);
  let enrollment: FabricCAServices.IEnrollResponse;
  try {
    enrollment = await ca.enroll({
      enrollmentID: config.enrollmentId,
      enrollmentSecret: config.enrollmentSecret,
      attr_reqs: [{ name: 'hdx.role', optional: false }],
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`could not enroll "${config.enrollmentId}" with the Fabric CA at ${config.caUrl}: ${reason}`);
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(keyFile, enrollment.key.toBytes(), { mode: 0o600 });
  fs.writeFileSync(certFile, enrollment.certificate, { mode: 0o600 });
  log.info({ enrollmentId: config.enrollmentId, mspId: config.mspId }, 'gateway identity enrolled from the Fabric CA');
  return { certificate: enrollment.certificate, privateKey: enrollment.key.toBytes() };
}
