import pino, { type Logger } from 'pino';

/**
 * Structured logs without PHI: never log request or response bodies, query strings (search parameters
 * can hold names or identifiers) or credentials.
 */
export function newLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'hdx-gateway' },
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.enrollmentSecret', '*.privateKey'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
