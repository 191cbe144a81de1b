import type { Request, RequestHandler } from 'express';
import { addressMatcher } from '../config/cidr.js';
import type { Logger } from '../log.js';
import type { LogLimiter } from '../net/log-limiter.js';
import { bearerToken, tokensEqual } from './auth.js';
import { hostGuard } from './host-guard.js';
import { sendProblem } from './problem.js';
import { tokenGetter, type Token } from './token-file.js';

/**
 * Who may use the lookup API (README "HTTP API", "Security and exposure"). One rule:
 * a request is answered when it carries the lookup token or the admin token, or when it
 * carries no token and its peer address is in `http.lookupAllowFrom` (loopback by default).
 * A wrong token is refused even from an allowed address: it is a mistake worth seeing.
 * A token-free request from loopback must name the server by IP address or localhost in Host
 * (host-guard.ts): otherwise a web page could read verdicts through DNS rebinding.
 */
export interface LookupAccess {
  /** Bearer token for the lookup endpoints (http.lookupTokenFile); null = none. */
  token: Token;
  /** Peers answered without a token (http.lookupAllowFrom). */
  allowFrom: readonly string[];
}

export const LOOPBACK_ONLY: LookupAccess = { token: null, allowFrom: ['127.0.0.0/8', '::1/128'] };

type Grant = 'admin' | 'lookup' | 'peer';

export interface AccessControl {
  /** Guards GET /v1/recipients/{address} and POST /v1/recipients:check. */
  lookup: RequestHandler;
  /**
   * Guards GET /metrics on listen.http: the same clients as the lookup API. Its counters move
   * with each verdict, so a stranger who could send recipients through the MTA and read them
   * learned verdicts the MTA did not tell (shadow mode answers every recipient valid).
   * listen.metrics stays open: its exposure is the operator's (loopback by default).
   */
  metrics: RequestHandler;
  /** True when the lookup API would answer this request (its token, or no token from the allow list). */
  admits(req: Request): boolean;
  /** True when the request carries the admin token (explanations, full health report). */
  isAdmin(req: Request): boolean;
  /** Guards ?explain=1: only the admin sees DNs, filters and directory errors. */
  explain: RequestHandler;
}

export function accessControl(access: LookupAccess, admin: Token, logger: Logger, limiter?: LogLimiter): AccessControl {
  const allowed = addressMatcher(access.allowFrom);
  const adminToken = tokenGetter(admin);
  const lookupToken = tokenGetter(access.token);
  const tokenMatches = (given: string): Grant | null => {
    const a = adminToken();
    if (a !== null && tokensEqual(given, a)) return 'admin';
    const l = lookupToken();
    if (l !== null && tokensEqual(given, l)) return 'lookup';
    return null;
  };
  // A token file rotates, it does not come or go: whether one is set is known from the start.
  const canAuthenticate = lookupToken() !== null || adminToken() !== null;
  const rebinding = hostGuard();

  const lookup = guard('the lookup API');
  const metrics = guard('/metrics on listen.http');

  /** Admits the lookup or admin token, or no token from http.lookupAllowFrom; `what` names the resource in answers. */
  function guard(what: string): RequestHandler {
    const What = what[0]!.toUpperCase() + what.slice(1);
    return (req, res, next) => {
      const given = bearerToken(req.get('authorization'));
      if (given !== null) {
        if (tokenMatches(given) !== null) return next();
        const fields = { remoteAddress: req.socket.remoteAddress, method: req.method, path: req.path };
        // Rate-limited: a peer can send wrong tokens as fast as it likes.
        if (limiter) limiter.warn(logger, 'http_lookup_wrong_token', fields, 'lookup request with a wrong token');
        else logger.warn(fields, 'lookup request with a wrong token');
        sendProblem(res, 'forbidden', `The bearer token is not valid for ${what}.`);
        return;
      }
      if (allowed(req.socket.remoteAddress)) {
        const refusal = rebinding(req.socket.remoteAddress, req.headers.host);
        if (refusal === null) return next();
        if (limiter) limiter.warn(logger, 'http_lookup_foreign_host', { remoteAddress: req.socket.remoteAddress, path: req.path }, 'token-free request from loopback under a foreign Host refused (DNS rebinding guard)');
        sendProblem(res, 'forbidden', refusal);
        return;
      }
      if (canAuthenticate) {
        res.set('WWW-Authenticate', 'Bearer realm="rcptgate"');
        sendProblem(res, 'unauthorized', `${What} needs an Authorization: Bearer <token> header from this address.`);
        return;
      }
      sendProblem(res, 'forbidden', `${What} answers only the addresses in http.lookupAllowFrom; set http.lookupTokenFile to let other clients in with a token.`);
    };
  }

  const isAdmin = (req: Request): boolean => {
    const given = bearerToken(req.get('authorization'));
    const a = adminToken();
    return given !== null && a !== null && tokensEqual(given, a);
  };

  const explain: RequestHandler = (req, res, next) => {
    if (!req.url.includes('?') || !wantsExplain(req.query['explain']) || isAdmin(req)) return next();
    if (adminToken() === null) {
      sendProblem(res, 'forbidden', 'Explanations show directory internals and need the admin token: set admin.tokenFile, or run `rcptgate check --explain` on the host.');
      return;
    }
    if (bearerToken(req.get('authorization')) === null) {
      res.set('WWW-Authenticate', 'Bearer realm="rcptgate"');
      sendProblem(res, 'unauthorized', 'Explanations need the admin token in an Authorization: Bearer <token> header.');
      return;
    }
    sendProblem(res, 'forbidden', 'Explanations need the admin token; this token does not grant them.');
  };

  const admits = (req: Request): boolean => {
    const given = bearerToken(req.get('authorization'));
    if (given !== null) return tokenMatches(given) !== null;
    return allowed(req.socket.remoteAddress) && rebinding(req.socket.remoteAddress, req.headers.host) === null;
  };

  return { lookup, metrics, admits, isAdmin, explain };
}

/** `?explain`, `?explain=1` and `?explain=true` ask for the explanation. */
export function wantsExplain(value: unknown): boolean {
  const v = Array.isArray(value) ? value[value.length - 1] : value;
  return v === '' || v === '1' || v === 'true';
}
