import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { createDirectory } from '../directory/index.js';
import type { Directory } from '../directory/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { RecipientValidatorImpl, type SnapshotView } from '../recipient/engine.js';
import { DirectoryHealth } from '../recipient/health.js';
import { normalizedDn } from '../snapshot/source.js';
import type { AnswerCache } from '../recipient/answer-cache.js';
import { currentSecretFilesDigest, secretFilesDigest } from './secret-files.js';
import type { LookupOptions, LookupResult, RecipientValidator } from '../recipient/types.js';

/** One configuration's directory and engine. */
export interface Engine {
  config: Readonly<Config>;
  directory: Directory;
  validator: RecipientValidatorImpl;
  /** What the LDAP directory was built from (settings, bind password, CA); null for LDIF. */
  directoryKey: string | null;
  /** What its bind password and CA files held (secret-files.ts); null when none is a file. */
  secretFiles: string | null;
}

/**
 * Everything an LDAP directory is built from. A reload with the same key keeps the running
 * directory: a new one would open (and bind) a pool of its own while the old one stays open for
 * the work begun on it, so a storm of SIGHUPs multiplied the connections to the server. A
 * rotated password or CA file changes the key. An LDIF file is read again on every reload.
 */
function directoryKey({ config, bindPassword, ca }: ResolvedConfig): string | null {
  if (config.directory.kind !== 'ldap') return null;
  return createHash('sha256')
    .update(JSON.stringify([config.directory.ldap, bindPassword, ca?.toString('base64') ?? null]))
    .digest('hex');
}

/** The validator the front ends hold: it always asks the current engine, across reloads. */
export type AppValidator = RecipientValidator & {
  cacheSize(): number;
  lookupNow(address: string, options: LookupOptions): LookupResult | undefined;
};

/**
 * True when `next` can change no cached answer of `prev` in a domain both serve: the same
 * entries are recipients (base, scope, filter, read with the same account, the same canaries).
 * How they are reached (URLs, timeouts, pool, TLS) decides no answer: a timeout raised during an
 * outage flushed every answer the outage was served from. Nor do the domains: a cached answer
 * is the directory's word on one address, and install() drops those of domains no longer
 * served. (An LDIF directory is re-read.)
 */
export function sameAnswers(prev: Readonly<Config>, next: Readonly<Config>): boolean {
  if (prev.directory.kind !== 'ldap' || next.directory.kind !== 'ldap') return false;
  // DNs as the directory compares them: `dc=example, dc=com` respaced by a reload is the same tree
  // (it flushed the cache, and during an outage every cached valid answer became tempfail).
  const dn = (d: string | null) => (d === null ? null : normalizedDn(d));
  const key = ({ directory: { ldap: l, canaries } }: Readonly<Config>) => JSON.stringify([l.preset, dn(l.baseDN), l.scope, l.filter, l.matchUserPrincipalName, dn(l.bindDN), canaries]);
  return key(prev) === key(next);
}

/** Copies every answer of `from` into `to`, oldest first, so that recency order is kept. */
function moveAnswers(from: AnswerCache, to: AnswerCache): void {
  to.shortestPositiveTtlMs = Math.min(to.shortestPositiveTtlMs, from.shortestPositiveTtlMs);
  for (const key of [...from.keysByAge()]) {
    const a = from.get(key)!;
    to.set(key, a.canonical === null || a.dn === null ? null : { canonical: a.canonical, dn: a.dn }, a.freshUntil);
  }
}

/** Drops the answers of `cache` whose domain `served` no longer answers for; how many. */
function dropUnserved(cache: AnswerCache, served: (domain: string) => string | null): number {
  const gone: string[] = [];
  // Asked once per domain: a million keys share a handful of them.
  const known = new Map<string, boolean>();
  for (const key of cache.keysByAge()) {
    const domain = key.slice(key.lastIndexOf('@') + 1);
    let keep = known.get(domain);
    if (keep === undefined) known.set(domain, (keep = served(domain) !== null));
    if (!keep) gone.push(key);
  }
  for (const key of gone) cache.delete(key);
  return gone.length;
}

export interface EngineHolderDeps {
  logger: Logger;
  metrics: Metrics;
  env: NodeJS.ProcessEnv;
}

/**
 * Holds the current engine and builds the next one on a reload. Directory health lives here,
 * not in an engine, so readiness and up/down state carry over a reload; so does the answer
 * cache, unless the reload changed the directory or domain settings.
 */
export class EngineHolder {
  readonly health: DirectoryHealth;
  current: Engine;
  readonly validator: AppValidator;
  /** Directories replaced by a reload, kept open for the lookups begun on them (reload.ts). */
  readonly retiring = new Set<Directory>();

  constructor(
    resolved: ResolvedConfig,
    private readonly deps: EngineHolderDeps,
  ) {
    this.health = new DirectoryHealth({ metrics: deps.metrics, logger: deps.logger });
    this.current = this.build(resolved, null, null);
    this.validator = {
      lookup: (address, o) => this.current.validator.lookup(address, o),
      // Promise-free path for answers the engine has at hand (socketmap's hot path).
      lookupNow: (address, o) => this.current.validator.lookupNow(address, o),
      isServedDomain: (d) => this.current.validator.isServedDomain(d),
      servedDomain: (d) => this.current.validator.servedDomain(d),
      isShadowDomain: (d) => this.current.validator.isShadowDomain(d),
      flush: (a) => this.current.validator.flush(a),
      cacheSize: () => this.current.validator.cacheSize,
    };
  }

  private build(resolved: ResolvedConfig, previous: Engine | null, snapshot: SnapshotView | null): Engine {
    const { config, overrides } = resolved;
    const { logger, metrics, env } = this.deps;
    const key = directoryKey(resolved);
    const directory = key !== null && previous?.directoryKey === key ? previous.directory : createDirectory(config, { logger, metrics, env });
    const keep = previous !== null && sameAnswers(previous.config, config) ? previous.validator.answerCache : null;
    const validator = new RecipientValidatorImpl({ config, directory, metrics, logger, overrides, health: this.health, cache: keep, snapshot });
    return { config, directory, validator, directoryKey: key, secretFiles: secretFilesDigest(config, resolved.bindPassword, resolved.ca) };
  }

  /** True when the bind password or CA file now holds something else than the current directory was built with (a rotation). */
  secretFilesChanged(): boolean {
    const now = currentSecretFilesDigest(this.current.config);
    return now !== null && now !== this.current.secretFiles;
  }

  /** Builds the engine of `config` without installing it. Throws, changing nothing, when the config cannot be built. */
  prepare(resolved: ResolvedConfig, snapshot: SnapshotView | null): Engine {
    return this.build(resolved, this.current, snapshot);
  }

  /** Installs `next` (from prepare()); returns the old engine (its directory is still open) and whether the cache was kept. */
  install(next: Engine): { old: Engine; cacheKept: boolean } {
    const old = this.current;
    this.current = next;
    const from = old.validator.answerCache;
    const to = next.validator.answerCache;
    // Another cache.maxEntries builds a cache of that size: the answers move into it (the most
    // recent ones when it is smaller). Flushed, a size raised during an outage deferred everyone.
    const moved = from !== null && to !== null && from !== to && sameAnswers(old.config, next.config);
    if (moved) moveAnswers(from, to);
    const cacheKept = to !== null && (to === from || moved);
    // Another server may know a user the old one did not: its "no such entry" is asked again.
    if (cacheKept && JSON.stringify(old.config.directory) !== JSON.stringify(next.config.directory)) next.validator.answerCache!.deleteNegatives();
    // A domain no longer served must not come back with the answers it had when it is served again.
    const domains = (c: Readonly<Config>) => JSON.stringify([c.domains, c.catchAllDomains]);
    if (cacheKept && domains(old.config) !== domains(next.config)) dropUnserved(next.validator.answerCache!, next.validator.servedDomain);
    return { old, cacheKept };
  }

  /** Closes `directory`, replaced by a reload, once nothing runs on it any more. */
  retire(directory: Directory, idle: () => Promise<void>, afterMs: number): void {
    this.retiring.add(directory);
    const close = () => void idle().then(() => (this.retiring.delete(directory) ? directory.close() : undefined)).catch(() => undefined);
    setTimeout(close, afterMs).unref();
  }

  /** Every directory still open: the current one and those replaced by a reload, not yet closed. */
  openDirectories(): Directory[] {
    return [this.current.directory, ...[...this.retiring].filter((d) => d !== this.current.directory)];
  }

  /** Drops an engine from prepare() unused: its directory closes (unless the live engine shares it), and the live engine's cache is the one counted again. */
  discard(next: Engine): void {
    this.deps.metrics.cacheSize = () => this.current.validator.cacheSize;
    if (next.directory !== this.current.directory) void next.directory.close().catch(() => undefined);
  }
}
