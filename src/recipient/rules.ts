import { domainToUnicode } from 'node:url';
import { domainRules } from '../config/load.js';
import type { Config, DomainRule } from '../config/schema.js';
import { templateUses } from '../directory/filter.js';
import type { Directory } from '../directory/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { LogLimiter } from '../net/log-limiter.js';
import { foldLocal, isDotAtom, MAX_ADDRESS_OCTETS, MAX_LOCAL_OCTETS, normalizeDomain, parseAddress, stripSubaddress, type ParseResult } from './address.js';
import { NO_OVERRIDES, type Overrides } from './overrides.js';
import type { LookupResult, Rule, Verdict } from './types.js';

/** A served domain's rules, with the global defaults filled in. */
export type EffectiveRule = Required<Pick<DomainRule, 'mode' | 'onDirectoryError'>> & { catchAll: boolean; alwaysValid: ReadonlySet<string> };

/** A lookup the static rules could not decide: the keys to try in the snapshot, cache and directory. */
export class Pending {
  constructor(
    readonly input: string,
    /** Normalized address. */
    readonly address: string,
    readonly domain: string,
    readonly rule: EffectiveRule,
    /** The keys to look up, the normalized address first (StaticRules.lookupKeys()). */
    readonly candidates: readonly string[],
    readonly wantExplain: boolean,
  ) {}

  /** Leading candidates the cache holds a fresh "no such entry" for (set by the cache step). */
  cachedMisses = 0;
}

/** A lowercase ASCII dot-atom (RFC 5322 atext): parseAddress() leaves such a local part as it is. */
const PLAIN_LOCAL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * parseAddress(), with a shortcut for the common case already in normal form: a lowercase ASCII
 * dot-atom local part at one of `plainDomains` (domains that normalize to themselves). Same
 * answer as parseAddress() for every input, without the full parse for those.
 */
export function parseServedAddress(input: string, plainDomains: ReadonlySet<string>): ParseResult {
  const at = input.lastIndexOf('@');
  if (at > 0 && input.length <= MAX_ADDRESS_OCTETS) {
    const domain = input.slice(at + 1);
    if (plainDomains.has(domain)) {
      const local = input.slice(0, at);
      if (local.length <= MAX_LOCAL_OCTETS && PLAIN_LOCAL.test(local)) return { ok: true, value: { local, domain, address: input } };
    }
  }
  return parseAddress(input);
}

/** A quoted local part's content: quotes and backslash escapes removed. */
function unquote(local: string): string {
  return local.slice(1, -1).replace(/\\(.)/g, '$1');
}

/**
 * The local part without its sub-address. Postfix splits the internal (unquoted) form, so
 * `"alice+x y"` is alice's: a quoted local part is split unquoted, and the base quoted again
 * where it still needs it.
 */
function baseLocal(local: string, delimiters: string): string | null {
  if (local.charCodeAt(0) !== 0x22) return stripSubaddress(local, delimiters);
  const base = stripSubaddress(unquote(local), delimiters);
  if (base === null || isDotAtom(base)) return base;
  return `"${base.replace(/["\\]/g, '\\$&')}"`;
}

/** True when any of `keys` is in `set`. */
function anyIn(set: ReadonlySet<string>, keys: readonly string[]): boolean {
  for (let i = 0; i < keys.length; i++) if (set.has(keys[i]!)) return true;
  return false;
}

/**
 * Whether lookups also try `@domain`, as Postfix's own tables do after `user@domain` and `user`
 * (an entry holding `@example.com` accepts every address there). Not under a configured filter
 * that asks for the local part: ldap_table(5) suppresses a query whose `%u` would be empty.
 */
function asksDomainKey(c: Readonly<Config>): boolean {
  const filter = c.directory.kind === 'ldap' ? c.directory.ldap.filter : null;
  return filter === null || !templateUses(filter, 'u');
}

function buildRules(c: Readonly<Config>, directory: Directory): Map<string, EffectiveRule> {
  const rules = new Map<string, EffectiveRule>();
  const make = (r: DomainRule, catchAll: boolean): EffectiveRule => ({
    mode: r.mode ?? c.mode,
    onDirectoryError: r.onDirectoryError ?? c.onDirectoryError,
    catchAll: r.catchAll ?? catchAll,
    alwaysValid: new Set((r.alwaysValid ?? c.alwaysValid).map(foldLocal)),
  });
  let served = domainRules(c);
  if (served.size === 0 && directory.knownDomains) {
    // LDIF with `domains: []`: every domain in the file is served.
    served = new Map(directory.knownDomains().map((d) => [d, {}]));
  }
  for (const [d, r] of served) rules.set(d, make(r, false));
  for (const d of c.catchAllDomains) {
    const n = normalizeDomain(d);
    if (n) rules.set(n, make(served.get(n) ?? {}, true));
  }
  return rules;
}

/** Shadow-mode log lines per domain per minute; the rest are counted in rcptgate_log_suppressed_total. */
export const SHADOW_LINES_PER_MINUTE = 100;

export interface StaticRulesDeps {
  config: Readonly<Config>;
  directory: Directory;
  metrics: Metrics;
  logger: Logger;
  overrides?: Overrides;
}

/**
 * The rules that need no I/O: syntax, served domain, deny / allow lists, always-valid local
 * parts, catch-all; and shadow mode, applied to every verdict.
 */
export class StaticRules {
  private readonly rules: Map<string, EffectiveRule>;
  private readonly anyShadow: boolean;
  /** Served domains already in normal form (lowercase A-labels), for parseServedAddress(). */
  private readonly plainDomains = new Set<string>();
  private readonly delimiters: string;
  private readonly domainKey: boolean;
  /** Served IDN domains (A-label) → their U-label form. */
  private readonly unicodeDomains = new Map<string, string>();
  private readonly staticTtl: number;
  /** Would-be refusals follow the senders' rate (a dictionary attack on a shadow domain): lines per domain are bounded, the counter is exact. */
  private readonly shadowLog: LogLimiter;
  overrides: Overrides;
  /** `cache.positiveTtl` in seconds: the TTL of static and snapshot answers. */
  get positiveTtlSeconds(): number {
    return this.staticTtl;
  }

  constructor(private readonly deps: StaticRulesDeps, positiveTtlMs: number) {
    this.rules = buildRules(deps.config, deps.directory);
    this.anyShadow = [...this.rules.values()].some((r) => r.mode === 'shadow');
    for (const d of this.rules.keys()) if (normalizeDomain(d) === d) this.plainDomains.add(d);
    this.delimiters = deps.config.recipientDelimiter;
    this.domainKey = asksDomainKey(deps.config);
    for (const d of this.rules.keys()) {
      const unicode = /(^|\.)xn--/.test(d) ? domainToUnicode(d) : '';
      if (unicode !== '' && unicode !== d) this.unicodeDomains.set(d, unicode);
    }
    this.staticTtl = Math.round(positiveTtlMs / 1000);
    this.overrides = deps.overrides ?? NO_OVERRIDES;
    this.shadowLog = new LogLimiter(deps.metrics, { burst: SHADOW_LINES_PER_MINUTE });
  }

  servedDomain(domain: string): string | null {
    const n = normalizeDomain(domain.startsWith('@') ? domain.slice(1) : domain);
    return n !== null && this.rules.has(n) ? n : null;
  }

  /** True when `domain` is served in shadow mode: whatever is asked there is answered valid. */
  isShadowDomain(domain: string): boolean {
    // Asked for every recipient of a policy or milter client: no domain parse where none is shadow.
    if (!this.anyShadow) return false;
    const n = this.servedDomain(domain);
    return n !== null && this.rules.get(n)?.mode === 'shadow';
  }

  servedDomains(): string[] {
    return [...this.rules.keys()].sort();
  }

  /** Cheap pre-check for stripSubaddress(): most local parts hold no delimiter at all. */
  private hasDelimiter(local: string): boolean {
    for (let i = 0; i < this.delimiters.length; i++) if (local.includes(this.delimiters[i]!)) return true;
    return false;
  }

  /**
   * The keys to look up, in order: the address (first: `local@domain` itself); for a local part
   * that must stay quoted its unquoted form, as Postfix asks its tables for the external and then
   * the internal form (an entry holding `p(x)@example.com` answers `"p(x)"@…`); the address
   * without sub-address; `@domain`. At an IDN domain each key also comes with the U-label form of
   * the domain: a directory may hold either (SMTPUTF8 systems store U-labels) and compares them
   * as different strings.
   */
  private lookupKeys(address: string, local: string, domain: string, base: string | null): string[] {
    const unicode = this.unicodeDomains.get(domain);
    const quoted = local.charCodeAt(0) === 0x22;
    if (unicode === undefined && !quoted) {
      // The common case, without building strings twice.
      const keys = [address];
      if (base !== null) keys.push(`${base}@${domain}`);
      if (this.domainKey) keys.push(`@${domain}`);
      return keys;
    }
    const locals = [local];
    const unquoted = quoted ? unquote(local) : '';
    // `""@domain` unquoted is `@domain`: asked as the domain key, and never when that is off.
    if (unquoted !== '') locals.push(unquoted);
    if (base !== null) locals.push(base);
    // A base that needs quotes, like the local part itself, in the external and internal form.
    if (base !== null && base.charCodeAt(0) === 0x22) locals.push(unquote(base));
    if (this.domainKey) locals.push('');
    const keys: string[] = [];
    for (const l of locals) {
      keys.push(`${l}@${domain}`);
      if (unicode !== undefined) keys.push(`${l}@${unicode}`);
    }
    return keys;
  }

  /** The verdict of the static rules, or what is left to look up. */
  decide(input: string, wantExplain: boolean): LookupResult | Pending {
    const parsed = parseServedAddress(input, this.plainDomains);
    if (!parsed.ok) return this.invalid(input, parsed.reason, wantExplain);
    const { local, domain, address } = parsed.value;
    const rule = this.rules.get(domain);
    if (!rule) {
      const result: LookupResult = { address: input, verdict: 'not_ours', source: 'static', ttlSeconds: this.staticTtl };
      if (wantExplain) result.explain = { normalized: address, tried: [], rule: 'not_served' };
      return result;
    }
    const base = this.hasDelimiter(local) ? baseLocal(local, this.delimiters) : null;
    const candidates = this.lookupKeys(address, local, domain, base);
    const p = new Pending(input, address, domain, rule, candidates, wantExplain);
    const { deny, allow } = this.overrides;
    if (deny.size > 0 && anyIn(deny, candidates)) return this.result(p, 'unknown', 'deny');
    if (allow.size > 0 && anyIn(allow, candidates)) return this.result(p, 'valid', 'allow');
    if (rule.alwaysValid.has(local) || (base !== null && rule.alwaysValid.has(base))) return this.result(p, 'valid', 'always_valid');
    if (rule.catchAll) return this.result(p, 'valid', 'catch_all');
    return p;
  }

  /**
   * An address of bad syntax. In a shadow domain it is answered valid like any would-be refusal:
   * the MTA took `a..b@` or a 65-octet local part before rcptgate, and shadow means "as before".
   */
  private invalid(input: string, reason: string, wantExplain: boolean): LookupResult {
    const result: LookupResult = { address: input, verdict: 'invalid', source: 'static', ttlSeconds: 0, reason };
    if (wantExplain) result.explain = { tried: [], rule: 'syntax', detail: reason };
    const at = input.lastIndexOf('@');
    const domain = at < 0 ? null : this.servedDomain(input.slice(at + 1).replace(/>$/, ''));
    const rule = domain === null ? undefined : this.rules.get(domain);
    return rule?.mode === 'shadow' ? this.shadowed(domain!, input, result) : result;
  }

  private result(p: Pending, verdict: Verdict, r: Rule): LookupResult {
    const result: LookupResult = { address: p.input, verdict, source: 'static', ttlSeconds: this.staticTtl };
    if (p.wantExplain) result.explain = { normalized: p.address, tried: [], rule: r };
    return p.rule.mode === 'shadow' ? this.shadowed(p.domain, p.input, result) : result;
  }

  /**
   * The last step of every verdict the snapshot, cache or directory reached: the deny list
   * against the mailbox found (deniedMailbox), then shadow mode.
   */
  applyMode(p: Pending, result: LookupResult): LookupResult {
    const settled = this.deniedMailbox(p, result) ?? result;
    return p.rule.mode === 'shadow' ? this.shadowed(p.domain, p.input, settled) : settled;
  }

  /**
   * A deny list names a mailbox that must stop receiving: an address that reaches it by another
   * of its addresses (a second `mail` value, a `mailAlternateAddress`, an AD proxy address) is
   * refused too. Checked on every answer, cached ones included, so the list applies at once.
   */
  private deniedMailbox(p: Pending, result: LookupResult): LookupResult | null {
    const { deny } = this.overrides;
    if (deny.size === 0 || result.verdict !== 'valid' || result.canonical === undefined) return null;
    const mailbox = parseServedAddress(result.canonical, this.plainDomains);
    if (!mailbox.ok || !deny.has(mailbox.value.address)) return null;
    const denied: LookupResult = { address: p.input, verdict: 'unknown', source: 'static', ttlSeconds: this.staticTtl };
    if (p.wantExplain) denied.explain = { normalized: p.address, tried: result.explain?.tried ?? [], rule: 'deny', detail: `mailbox ${result.canonical}` };
    return denied;
  }

  /** Shadow mode: answer valid, keep what enforce mode would have said, log and count it. */
  private shadowed(domain: string, input: string, result: LookupResult): LookupResult {
    const enforced = result.verdict;
    if (enforced === 'unknown' || enforced === 'tempfail' || enforced === 'invalid') {
      this.deps.metrics.shadowRejections.inc({ domain });
      this.shadowLog.info(this.deps.logger, `shadow_would_refuse:${domain}`, { address: input, domain, enforcedVerdict: enforced, source: result.source }, 'shadow mode: would have refused');
    }
    return { ...result, verdict: 'valid', shadow: true, enforcedVerdict: enforced };
  }
}
