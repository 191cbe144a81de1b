import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../log.js';
import type { LogLimiter } from '../net/log-limiter.js';
import { sendProblem } from './problem.js';
import { tokenGetter, type Token } from './token-file.js';

/**
 * Compares two secrets in constant time. Both sides are hashed first so that neither a length
 * mismatch (timingSafeEqual throws on it) nor the comparison time reveals the token's length.
 */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or null. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1] ?? null;
}

/**
 * Guards the admin endpoints: 404 while admin is disabled (no token configured), 401 without a
 * bearer token, 403 with a wrong one. Never logs the header or either token.
 */
export function requireAdmin(token: Token, logger: Logger, limiter?: LogLimiter): RequestHandler {
  const current = tokenGetter(token);
  return (req, res, next) => {
    const adminToken = current();
    if (adminToken === null) {
      sendProblem(res, 'not-found', 'Admin endpoints are disabled: set admin.tokenFile to enable them.');
      return;
    }
    const given = bearerToken(req.get('authorization'));
    if (given === null) {
      res.set('WWW-Authenticate', 'Bearer realm="rcptgate"');
      sendProblem(res, 'unauthorized', 'This endpoint needs an Authorization: Bearer <token> header.');
      return;
    }
    if (!tokensEqual(given, adminToken)) {
      const fields = { remoteAddress: req.socket.remoteAddress, method: req.method, path: req.path };
      // Rate-limited: a peer can send wrong tokens as fast as it likes.
      if (limiter) limiter.warn(logger, 'http_wrong_token', fields, 'admin request with a wrong token');
      else logger.warn(fields, 'admin request with a wrong token');
      sendProblem(res, 'forbidden', 'The bearer token is not valid for this endpoint.');
      return;
    }
    next();
  };
}
