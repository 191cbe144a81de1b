/**
 * The one gate every socket front end asks (socketmap, policy, milter): it runs the engine,
 * turns an engine failure into tempfail, decides whether an invalid address is ours to refuse,
 * and applies directory-harvest protection (docs/harvest-protection.md). Front ends keep only
 * their codec and a table of reply texts keyed by `Answer`.
 */
import { isIP } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { LogLimiter } from '../net/log-limiter.js';
import type { Frontend, LookupOptions, LookupResult, RecipientValidator } from '../recipient/types.js';
import type { HarvestGuard } from './harvest.js';
import { canonicalIpv6 } from './ipv6-network.js';
import { servedTarget } from './source-route.js';

/**
 * What a front end must say:
 * - `valid`, `unknown`, `tempfail` as the verdicts;
 * - `invalid`: a syntactically invalid address in a served domain, refused permanently
 *   (README "Invalid addresses": 501 5.1.3);
 * - `pass`: not ours (a foreign domain, or an invalid address we cannot place): no opinion;
 * - `harvest`: reject-mode harvest protection refused the client (421).
 */
export type Answer = 'valid' | 'unknown' | 'tempfail' | 'invalid' | 'pass' | 'harvest';

export interface GateAnswer {
  answer: Answer;
  /** The engine's answer (null when the harvest guard refused without asking). */
  result: LookupResult | null;
  /** Tarpit: hold the reply this long from now (ms; what is left of the delay after the lookup); 0 to send it at once. */
  delayMs: number;
}

export interface GateOptions {
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  /** Directory harvest protection; null disables it. */
  harvest?: HarvestGuard | null;
  /** Shared warning limiter (one per process); a private one otherwise. */
  logLimiter?: LogLimiter;
}

/** The engine's optional promise-free path (RecipientValidatorImpl.lookupNow). */
type LookupNow = (address: string, options: LookupOptions) => LookupResult | undefined;

const OPTIONS: Record<Frontend, LookupOptions> = Object.freeze({
  socketmap: Object.freeze({ frontend: 'socketmap' }),
  policy: Object.freeze({ frontend: 'policy' }),
  milter: Object.freeze({ frontend: 'milter' }),
  http: Object.freeze({ frontend: 'http' }),
  cli: Object.freeze({ frontend: 'cli' }),
} as const);

/** The domain of a raw address (after the last '@', angle brackets dropped), or null. */
function domainOf(address: string): string | null {
  const s = address.startsWith('<') && address.endsWith('>') ? address.slice(1, -1) : address;
  const at = s.lastIndexOf('@');
  return at < 0 || at === s.length - 1 ? null : s.slice(at + 1);
}

/** A recipient that needs the directory: where it is looked up, and the tarpit delay decided before. */
class Later {
  /** When the recipient arrived: the tarpit delay runs from here, alongside the lookup. */
  readonly begunAt = performance.now();
  constructor(
    readonly address: string,
    readonly delayMs: number,
  ) {}
}

export class Gate {
  readonly harvest: HarvestGuard | null;
  private readonly validator: RecipientValidator;
  readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly limiter: LogLimiter;
  private readonly lookupNowFn: LookupNow | null;
  private readonly isServed = (domain: string): boolean => this.validator.isServedDomain(domain);

  constructor(options: GateOptions) {
    this.validator = options.validator;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.harvest = options.harvest ?? null;
    this.limiter = options.logLimiter ?? new LogLimiter(options.metrics);
    const now = (options.validator as { lookupNow?: LookupNow }).lookupNow;
    this.lookupNowFn = typeof now === 'function' ? now.bind(options.validator) : null;
  }

  /** The engine's answer when it has one at hand (no promise), else undefined. Never throws. */
  now(address: string, frontend: Frontend): LookupResult | undefined {
    if (this.lookupNowFn === null) return undefined;
    try {
      return this.lookupNowFn(address, OPTIONS[frontend]);
    } catch (err) {
      return this.failed(address, err);
    }
  }

  /** The engine's answer, asking the directory if need be. Never rejects. */
  lookup(address: string, frontend: Frontend): Promise<LookupResult> {
    try {
      return this.validator.lookup(address, OPTIONS[frontend]).catch((err: unknown) => this.failed(address, err));
    } catch (err) {
      return Promise.resolve(this.failed(address, err));
    }
  }

  /** How a front end must answer `result`. */
  answerOf(result: LookupResult): Answer {
    switch (result.verdict) {
      case 'valid':
      case 'unknown':
      case 'tempfail':
        return result.verdict;
      case 'invalid': {
        const domain = domainOf(result.address);
        return domain !== null && this.validator.isServedDomain(domain) ? 'invalid' : 'pass';
      }
      default:
        return 'pass';
    }
  }

  /**
   * A recipient from a client (policy, milter): the verdict plus harvest protection keyed by
   * `client` (an IPv6 client counts as its network: harvest.ts). Synchronous when the engine has the answer at hand.
   */
  recipient(recipient: string, client: string, frontend: Frontend, logger: Logger): GateAnswer | Promise<GateAnswer> {
    const begun = this.begin(recipient, client, frontend, logger, false)!;
    if (!(begun instanceof Later)) return begun;
    const { address, delayMs, begunAt } = begun;
    // A flagged client's answer is held until `delayMs` after its arrival, the lookup included:
    // the answer goes at max(lookup, delay), not lookup + delay. The tarpit costs a harvester
    // the same per guess, while a shared sender's valid mail (a backup MX) and MTA timeouts
    // (Sendmail's 10 s milter read, with a directory at its timeout) no longer pay for both.
    return this.lookup(address, frontend).then((r) => this.judge(r, client, delayMs, frontend, logger, performance.now() - begunAt));
  }

  /** recipient()'s answer when it needs no directory request, else undefined (nothing counted). */
  recipientNow(recipient: string, client: string, frontend: Frontend, logger: Logger): GateAnswer | undefined {
    const begun = this.begin(recipient, client, frontend, logger, true);
    return begun instanceof Later ? undefined : begun;
  }

  /** `quick`: only an answer at hand, else undefined with nothing taken (recipient() follows). */
  private begin(recipient: string, client: string, frontend: Frontend, logger: Logger, quick: boolean): GateAnswer | Later | undefined {
    // "nobody@example.com"@[127.0.0.1]: judged where the MTA will route it (source-route.ts).
    const address = servedTarget(recipient, this.isServed);
    // A shadow domain answers as the MTA did before rcptgate: valid, never refused or held back,
    // postmaster included; its would-be unknowns are answered valid, so they count for nothing.
    const harvest = this.inShadowDomain(address) ? null : this.harvest;
    if (harvest !== null && harvest.action === 'reject' && harvest.isBlocked(client)) {
      this.metrics.harvestBlocked.inc({ frontend });
      if (logger.isLevelEnabled('debug')) logger.debug({ client, recipient: address }, 'recipient refused: client is harvesting');
      return { answer: 'harvest', result: null, delayMs: 0 };
    }
    // Decided before the lookup, so valid and unknown recipients of a flagged client wait alike.
    const delayMs = harvest === null ? 0 : harvest.delayMs(client);
    // A flagged client's answer is held back anyway: not tried for at hand, so its place in the
    // tarpit is taken once, by the recipient() that follows (a try that found no answer took one
    // too, and a busy MX's flagged client got 421 with half its places free).
    if (quick && delayMs > 0) return undefined;
    // Past its places in the tarpit (harvest.ts hold), the client's session is ended instead.
    if (delayMs > 0 && !harvest!.hold(client, delayMs)) {
      this.metrics.harvestBlocked.inc({ frontend });
      return { answer: 'harvest', result: null, delayMs: 0 };
    }
    const result = this.now(address, frontend);
    if (result === undefined) return quick ? undefined : new Later(address, delayMs);
    return this.judge(result, client, delayMs, frontend, logger);
  }

  /** `waitedMs`: the time the lookup took, already part of the tarpit delay. */
  private judge(result: LookupResult, client: string, delayMs: number, frontend: Frontend, logger: Logger, waitedMs = 0): GateAnswer {
    let answer = this.answerOf(result);
    const harvest = this.harvest;
    // One unknown address named again is counted once per window (harvest.ts firstAsk).
    if (answer === 'unknown' && harvest !== null && harvest.firstAsk(client, result.address)) {
      const wasFlagged = harvest.isBlocked(client);
      if (harvest.recordUnknown(client)) {
        if (!wasFlagged) {
          // Rate-limited: one line per flagged client, and a client rotating its address (over
          // IPv6 networks, a direct peer naming any client_address) is a new client each time.
          const fields = { client: harvest.keyOf(client), recipient: result.address, maxUnknown: harvest.maxUnknown, action: harvest.action };
          this.limiter.warn(logger, 'harvest_engaged', fields, 'client exceeded the unknown-recipient limit: harvest protection engaged');
        }
        if (harvest.action === 'reject') {
          this.metrics.harvestBlocked.inc({ frontend });
          answer = 'harvest';
        }
      }
    }
    if (delayMs > 0) this.metrics.harvestDelayed.inc({ frontend });
    const holdMs = delayMs > 0 ? Math.max(0, Math.ceil(delayMs - waitedMs)) : 0;
    if (logger.isLevelEnabled('debug')) logger.debug({ client, recipient: result.address, verdict: result.verdict, answer, delayMs, holdMs }, 'recipient answer');
    return { answer, result, delayMs: holdMs };
  }

  private inShadowDomain(address: string): boolean {
    const domain = this.harvest === null ? null : domainOf(address);
    return domain !== null && (this.validator.isShadowDomain?.(domain) ?? false);
  }

  private failed(address: string, err: unknown): LookupResult {
    // The engine promises never to throw; if it does anyway, defer rather than lose mail.
    this.logger.error({ err, address }, 'validator threw');
    return { address, verdict: 'tempfail', source: 'directory', ttlSeconds: 0, reason: 'internal error' };
  }
}

/**
 * A client address as a harvest key: its IP address in one spelling (Sendmail's "IPv6:" prefix,
 * a zone, upper case, uncompressed IPv6 and IPv4-mapped IPv6 folded), or null when it is no IP
 * address. The caller then counts the request against the connection's peer: a key is kept for
 * up to 100,000 clients, and a peer naming a new 60 kB string per session must neither grow
 * that by gigabytes nor escape counting.
 */
export function clientKey(address: string): string | null {
  let a = address.replace(/^IPv6:/i, '');
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const kind = a.length <= 45 ? isIP(a) : 0;
  if (kind === 4) return a;
  if (kind !== 6) return null;
  a = a.toLowerCase();
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) return a.slice(7);
  const v6 = canonicalIpv6(a);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped === null) return v6;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}
