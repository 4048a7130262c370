/**
 * The patient's web app (webapp/, built by `npm run build` into webapp/dist) served at /app: static files
 * and /app/config.json, which tells the page the gateway's FHIR base URL (the audience of the DID tokens
 * it makes) and its member. Nothing here reads stored resources: the page talks to /fhir like any
 * client, with the patient's own tokens, through the same enforcement point.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import express from 'express';
import { OperationOutcomeError } from '../errors';

/** webapp/dist of this checkout (from gateway/src/http or gateway/dist/http alike). */
export function defaultWebappDir(): string {
  return path.resolve(__dirname, '..', '..', '..', 'webapp', 'dist');
}

/** No inline script or style, nothing from elsewhere, never framed. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface WebappOptions {
  /** The built app (index.html and assets/). */
  readonly dir: string;
  readonly fhirBaseUrl: string;
  readonly mspId: string;
}

export function webappRoutes(options: WebappOptions): express.Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    next();
  });
  // The page resolves config.json and ../fhir against its own URL: /app must be /app/.
  router.get('/', (req, res, next) => {
    const [pathname = '', query] = req.originalUrl.split('?', 2);
    if (pathname.endsWith('/')) return next();
    res.redirect(301, `${pathname}/${query !== undefined ? `?${query}` : ''}`);
  });
  const config = JSON.stringify({ fhirBaseUrl: options.fhirBaseUrl, mspId: options.mspId });
  router.get('/config.json', (_req, res) => {
    res.status(200).setHeader('Cache-Control', 'no-cache').type('application/json').send(config);
  });
  if (!existsSync(path.join(options.dir, 'index.html'))) {
    router.use(() => {
      throw new OperationOutcomeError('NOT_FOUND', 'The web app is not built on this server: run npm run build (it builds webapp/ into webapp/dist)');
    });
    return router;
  }
  router.use(
    express.static(options.dir, {
      index: 'index.html',
      dotfiles: 'ignore',
      setHeaders: (res, file) => {
        // Vite names built assets by content hash: they never change; index.html must be checked each time.
        res.setHeader('Cache-Control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    }),
  );
  return router;
}
