import { readFile } from 'node:fs/promises';
import express, { type Express, type Request, type RequestHandler } from 'express';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { LogLimiter } from '../net/log-limiter.js';
import { peerClient } from '../net/host-port.js';
import { DEFAULT_MAX_OUTSTANDING, DEFAULT_MAX_OUTSTANDING_PER_CLIENT } from '../net/tcp-server.js';
import type { HealthReport, LookupOptions, LookupResult, RecipientValidator } from '../recipient/types.js';
import { requireAdmin } from './auth.js';
import { accessControl, LOOPBACK_ONLY, wantsExplain, type AccessControl, type LookupAccess } from './access.js';
import { adminHealth, publicHealth } from './health-view.js';
import { errorHandler, notFound } from './errors.js';
import { BATCH_CONCURRENCY, MAX_BATCH, mapLimit, retryAfterSeconds, toBody } from './lookup.js';
import { BATCH_BYTES_IN_PROGRESS, batchBudget } from './batch-budget.js';
import { sendProblem } from './problem.js';
import { parseBatchRequest } from './batch-request.js';
import { STATUS_PAGE_CSP, renderStatusPage, type StatusStats } from './status-page.js';
import { ABANDONED, LookupTurns, type LookupTurnLimits } from './turns.js';
import type { Token } from './token-file.js';

export interface HttpAppDeps {
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  health: () => HealthReport;
  /** Bearer token for the admin endpoints; null disables them (404). A function gives the current one (token-file.ts). */
  adminToken: Token;
  version: string;
  /** Serve the status page at GET / (config `statusPage`). */
  statusPage: boolean;
  /** Who may use the lookup endpoints (http.lookupTokenFile, http.lookupAllowFrom); default loopback only. */
  lookupAccess?: LookupAccess;
  /** Rate-limits warnings a client can trigger at will (wrong tokens). */
  logLimiter?: LogLimiter;
  /** Lookups waiting for the engine at once (server.maxOutstanding*; README "Limits per client address"). */
  lookupTurns?: LookupTurnLimits;
  /** Cache flush for DELETE /v1/cache; defaults to `validator.flush`. */
  flushCache?: (address?: string) => number;
  /** Leading bits of an IPv6 address that name one client for turns and batch shares (default 64). */
  clientIpv6PrefixBits?: number;
  /** Tests: BATCH_BYTES_IN_PROGRESS. */
  batchBytesInProgress?: number;
}

/** Largest request body accepted (a full batch of 1000 long addresses fits). */
export const BODY_LIMIT_BYTES = 256 * 1024;

/** openapi.yaml sits at the package root: two levels up from both src/http and dist/http. */
const SPEC_URL = new URL('../../openapi.yaml', import.meta.url);

type Method = 'get' | 'post' | 'delete';

type Route = (path: string, handlers: Partial<Record<Method, RequestHandler[]>>) => void;

/** Registers the handlers of one path; any other method gets 405 with Allow. */
function router(app: Express): Route {
  return (path, handlers) => {
    const r = app.route(path);
    const allowed: string[] = [];
    for (const [method, hs] of Object.entries(handlers) as Array<[Method, RequestHandler[]]>) {
      r[method](...hs);
      allowed.push(method.toUpperCase(), ...(method === 'get' ? ['HEAD'] : []));
    }
    const allow = allowed.join(', ');
    r.all((req, res) => {
      res.set('Allow', allow);
      sendProblem(res, 'method-not-allowed', `${req.method} is not allowed on this resource; allowed: ${allow}.`);
    });
  };
}

/**
 * The HTTP front end as an express app that does not listen (the caller owns the server).
 * Lookups are counted in metrics by the engine itself (options.frontend), not here.
 */
export function createHttpApp(deps: HttpAppDeps): Express {
  const access = accessControl(deps.lookupAccess ?? LOOPBACK_ONLY, deps.adminToken, deps.logger, deps.logLimiter);
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    // Node's setHeader: express's res.set() adds charset logic this header does not need.
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  const route = router(app);
  lookupRoutes(route, deps, access);
  adminRoutes(route, deps);
  probeRoutes(route, deps, access);
  documentRoutes(route, deps, access);
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}

/** The engine's optional promise-free path (RecipientValidatorImpl.lookupNow). */
type LookupNow = (address: string, options: LookupOptions) => LookupResult | undefined;

type Lookup = (req: Request, address: string, explain: boolean, gone?: () => boolean) => Promise<LookupResult | typeof ABANDONED>;

function lookupRoutes(route: Route, deps: HttpAppDeps, access: ReturnType<typeof accessControl>): void {
  const { validator } = deps;
  const turns = new LookupTurns(deps.lookupTurns ?? { maxOutstanding: DEFAULT_MAX_OUTSTANDING, maxOutstandingPerClient: DEFAULT_MAX_OUTSTANDING_PER_CLIENT });
  // The engine writes the one debug line per lookup; logging here too would double it. Lookups
  // take turns per client address (turns.ts); one whose connection is gone before its turn never runs.
  // An answer the engine has at hand (rules, snapshot, fresh cache) costs the directory nothing,
  // so it does not wait behind its client's own cold lookups (as on the socket front ends).
  const now = (validator as { lookupNow?: LookupNow }).lookupNow?.bind(validator);
  const lookup: Lookup = (req, address, explain, gone = () => false) => {
    const options = { frontend: 'http' as const, explain };
    const known = now?.(address, options);
    if (known !== undefined) return Promise.resolve(known);
    return turns.run(peerClient(req.socket, deps.clientIpv6PrefixBits), () => validator.lookup(address, options), () => gone() || req.socket.destroyed);
  };

  // A wildcard, so that an unencoded "/" in a local part (RFC 5321 allows it) still reaches us.
  route('/v1/recipients/*address', {
    get: [
      access.lookup,
      access.explain,
      async (req, res) => {
        const address = wildcardParam(req.params);
        // Most lookups carry no query string: skip parsing one.
        const explain = req.url.includes('?') && wantsExplain(req.query['explain']);
        const result = await lookup(req, address, explain);
        if (result === ABANDONED) return;
        const body = toBody(result, explain);
        if (result.verdict === 'invalid') {
          sendProblem(res, 'invalid-address', result.reason ?? 'Not a syntactically valid email address.', { ...body });
        } else if (result.verdict === 'tempfail') {
          res.set('Retry-After', String(retryAfterSeconds(result)));
          sendProblem(res, 'temporary-failure', result.reason ?? 'The directory could not answer in time.', { ...body });
        } else {
          res.json(body);
        }
      },
    ],
  });

  // The colon is literal: escaped so path-to-regexp does not read ":check" as a parameter.
  route('/v1/recipients\\:check', {
    post: [
      access.lookup,
      access.explain,
      batchBudget(deps.batchBytesInProgress ?? BATCH_BYTES_IN_PROGRESS, BODY_LIMIT_BYTES, deps.clientIpv6PrefixBits),
      express.json({ limit: BODY_LIMIT_BYTES, type: ['application/json', 'application/*+json'] }),
      checkBatch(lookup),
    ],
  });
}

/** POST /v1/recipients:check: up to MAX_BATCH addresses, answered together. */
function checkBatch(lookup: Lookup): RequestHandler {
  return async (req, res) => {
    if (req.body === undefined) {
      const empty = !req.get('transfer-encoding') && Number(req.get('content-length') ?? 0) === 0;
      if (empty) sendProblem(res, 'invalid-request', 'The body must be a JSON object {"addresses": [...]}.');
      else sendProblem(res, 'unsupported-media-type', 'The body must be application/json.');
      return;
    }
    const parsed = parseBatchRequest(req.body, MAX_BATCH);
    if (!parsed.ok) {
      sendProblem(res, 'invalid-request', parsed.detail, { errors: parsed.errors });
      return;
    }
    const explain = wantsExplain(req.query['explain']);
    // A client gone before its answer starts no further lookups: batch after batch sent and
    // reset would otherwise keep up to 1000 lookups each running past every connection cap.
    // Its FIN counts as gone too (a half-closed client still gets a single lookup's answer).
    let gone = false;
    res.once('close', () => (gone = !res.writableFinished));
    const left = (): void => void (gone = true);
    req.socket.once('end', left);
    res.once('finish', () => req.socket.off('end', left));
    const results = await mapLimit(parsed.addresses, BATCH_CONCURRENCY, (a) => lookup(req, a, explain, () => gone), () => gone);
    // Abandoned: no answer will come, so the connection closes now. A half-closed client's
    // socket stayed open otherwise (no timeout applies to a request read whole), holding its slot.
    if (gone || results.includes(ABANDONED)) return void req.socket.destroy();
    res.json({ results: results.map((r) => toBody(r as LookupResult, explain)) });
  };
}

function adminRoutes(route: Route, deps: HttpAppDeps): void {
  const { logger, validator } = deps;
  const flush = deps.flushCache ?? ((address?: string) => validator.flush(address));
  const admin = requireAdmin(deps.adminToken, logger, deps.logLimiter);
  route('/v1/cache', {
    delete: [
      admin,
      (req, res) => {
        // The router reads "/v1/cache/" as "/v1/cache": an address left out (an empty shell
        // variable) must not flush every answer, the stale ones that carry an outage included.
        if (req.path.endsWith('/')) {
          sendProblem(res, 'invalid-request', 'No address after /v1/cache/: name the address to flush one, or DELETE /v1/cache (no trailing slash) to flush every answer.');
          return;
        }
        const removed = flush();
        logger.info({ removed, remoteAddress: req.socket.remoteAddress }, 'cache flushed');
        res.status(204).end();
      },
    ],
  });
  route('/v1/cache/*address', {
    delete: [
      admin,
      (req, res) => {
        const address = wildcardParam(req.params);
        const removed = flush(address);
        logger.info({ removed, address, remoteAddress: req.socket.remoteAddress }, 'cache entry flushed');
        res.status(204).end();
      },
    ],
  });
}

function probeRoutes(route: Route, deps: HttpAppDeps, access: ReturnType<typeof accessControl>): void {
  const { health, metrics } = deps;
  route('/healthz', {
    get: [(_req, res) => void res.set('Cache-Control', 'no-store').json({ status: 'ok' })],
  });
  route('/readyz', {
    get: [
      (req, res) => {
        const report = health();
        // Raw directory errors name servers and bind DNs: only the admin token sees them.
        const body = access.isAdmin(req) ? adminHealth(report) : publicHealth(report);
        res.status(report.ready ? 200 : 503).set('Cache-Control', 'no-store').json(body);
      },
    ],
  });
  route('/metrics', {
    get: [
      access.metrics,
      async (_req, res) => {
        const text = await metrics.render();
        res.set('Content-Type', metrics.registry.contentType).send(text);
      },
    ],
  });
}

function documentRoutes(route: Route, deps: HttpAppDeps, access: AccessControl): void {
  let spec: Promise<string> | undefined;
  route('/openapi.yaml', {
    get: [
      async (_req, res) => {
        spec ??= readFile(SPEC_URL, 'utf8');
        const text = await spec.catch((err: unknown) => {
          spec = undefined; // retry on the next request rather than caching the failure
          throw err;
        });
        res.type('application/yaml').send(text);
      },
    ],
  });
  if (!deps.statusPage) return;
  route('/', {
    get: [
      // Health only: the former lookup form was a harvest oracle with DNs and filters. The lookup
      // counters and the cache hit ratio move with each verdict (in shadow mode too, where the MTA
      // answers every recipient valid): they are shown to the lookup API's clients only, as /metrics.
      async (req, res) => {
        const stats = access.admits(req) ? await statusStats(deps.metrics) : null;
        res
          .set('Content-Security-Policy', STATUS_PAGE_CSP)
          .set('Cache-Control', 'no-store')
          .type('html')
          .send(renderStatusPage(publicHealth(deps.health()), deps.version, stats));
      },
    ],
  });
}

/** express 5 hands a `*name` wildcard over as its decoded path segments. */
function wildcardParam(params: Record<string, unknown>): string {
  const raw = params['address'];
  return Array.isArray(raw) ? raw.join('/') : String(raw);
}

/** Figures for the status page, read from the same counters /metrics exports. */
async function statusStats(metrics: Metrics): Promise<StatusStats> {
  const lookupsByVerdict: StatusStats['lookupsByVerdict'] = {};
  for (const v of (await metrics.lookups.get()).values) {
    const verdict = v.labels.verdict as keyof StatusStats['lookupsByVerdict'];
    lookupsByVerdict[verdict] = (lookupsByVerdict[verdict] ?? 0) + v.value;
  }
  let hits = 0;
  let misses = 0;
  for (const v of (await metrics.cacheEvents.get()).values) {
    if (v.labels.event === 'hit') hits += v.value;
    else if (v.labels.event === 'miss') misses += v.value;
  }
  return { lookupsByVerdict, cacheHitRatio: hits + misses > 0 ? hits / (hits + misses) : null };
}
