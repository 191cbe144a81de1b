/** The one question every front end asks, and the shapes of its answer. */

export type Verdict = 'valid' | 'unknown' | 'not_ours' | 'tempfail' | 'invalid';

/** Where an answer came from (README "HTTP API"). */
export type Source = 'cache' | 'directory' | 'snapshot' | 'stale' | 'static';

export type Frontend = 'socketmap' | 'policy' | 'milter' | 'http' | 'cli';

/** Which rule decided a verdict (for `--explain` and `?explain=1`). */
export type Rule =
  | 'syntax'
  | 'not_served'
  | 'deny'
  | 'allow'
  | 'always_valid'
  | 'catch_all'
  | 'directory'
  | 'snapshot'
  | 'cache'
  | 'stale'
  | 'directory_error';

export interface Explanation {
  /** Address after normalization (lowercased, IDN A-label, trailing dot dropped). */
  normalized?: string;
  /** Keys looked up, in order: the exact address, then the one without the sub-address. */
  tried: string[];
  rule: Rule;
  /** Filter sent to the directory, values escaped (LDAP only). */
  filter?: string;
  /** DN of the entry that matched. */
  dn?: string;
  /** Cache state of the key that decided: hit, miss, stale. */
  cache?: 'hit' | 'miss' | 'stale' | 'bypass';
  /** Free text, e.g. the directory error. */
  detail?: string;
}

export interface LookupResult {
  /** The address as the caller gave it. */
  address: string;
  verdict: Verdict;
  /** The entry's primary address, when valid and known. */
  canonical?: string;
  source: Source;
  /** How long a client may reuse the answer. */
  ttlSeconds: number;
  /** Human-readable reason for invalid and tempfail verdicts. */
  reason?: string;
  /** Set in shadow mode: the answer is `valid`, `enforcedVerdict` is what enforce mode would say. */
  shadow?: boolean;
  enforcedVerdict?: Verdict;
  explain?: Explanation;
}

export interface LookupOptions {
  frontend: Frontend;
  explain?: boolean;
}

/** The engine every front end talks to. Never throws: failures are verdicts. */
export interface RecipientValidator {
  lookup(address: string, options: LookupOptions): Promise<LookupResult>;
  /** True when `domain` (any case, trailing dot, IDN) is one we answer for. */
  isServedDomain(domain: string): boolean;
  /** Normalized form of a served domain, or null. */
  servedDomain(domain: string): string | null;
  /** True when `domain` is served in shadow mode (every answer there is valid); absent: none is. */
  isShadowDomain?(domain: string): boolean;
  /** Drop one address (any form) or every cached answer. Returns how many entries went. */
  flush(address?: string): number;
}

/**
 * Why not ready, or what is degraded, as a stable code (public responses show it; the words in
 * `reason` and `lastError` may carry server names and are for the admin).
 */
export type HealthReasonCode = 'draining' | 'waiting_for_directory' | 'directory_down' | 'canary_missing';

/** What /readyz and the status page report. */
export interface HealthReport {
  /** False until the directory answered once or a snapshot is loaded, and while draining. */
  ready: boolean;
  draining: boolean;
  /** Set exactly when `reason` is. Consumers must accept codes added later. */
  reasonCode?: HealthReasonCode | (string & {});
  /** Why not ready (or what is degraded), in words. */
  reason?: string;
  directory: {
    kind: 'ldif' | 'ldap';
    up: boolean;
    lastSuccessAt: string | null;
    lastError: string | null;
  };
  snapshot: { loaded: boolean; entries: number; ageSeconds: number | null };
  cache: { entries: number };
  uptimeSeconds: number;
  version: string;
}
