import { redactUrlCredentials } from '../config/exposure.js';
import type { LookupResult } from '../recipient/types.js';

/** One lookup as the HTTP API shows it (schema LookupResult in openapi.yaml). */
export type LookupBody = LookupResult & { valid: boolean };

/** Retry-After for a tempfail whose result carries no useful TTL. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** Largest batch POST /v1/recipients:check accepts. */
export const MAX_BATCH = 1000;

/** Lookups of one batch in flight at once, so a batch cannot starve the directory pool. */
export const BATCH_CONCURRENCY = 8;

/** Picks the public fields, in a stable order; `explain` only when the caller asked for it. */
export function toBody(result: LookupResult, explain: boolean): LookupBody {
  const body: LookupBody = {
    address: result.address,
    verdict: result.verdict,
    valid: result.verdict === 'valid',
    source: result.source,
    ttlSeconds: Math.max(0, Math.round(result.ttlSeconds)),
  };
  if (result.canonical !== undefined) body.canonical = result.canonical;
  if (result.reason !== undefined) body.reason = result.reason;
  if (result.shadow !== undefined) body.shadow = result.shadow;
  if (result.enforcedVerdict !== undefined) body.enforcedVerdict = result.enforcedVerdict;
  if (explain && result.explain !== undefined) {
    const { detail } = result.explain;
    body.explain = detail === undefined ? result.explain : { ...result.explain, detail: redactUrlCredentials(detail) };
  }
  return body;
}

export function retryAfterSeconds(result: LookupResult): number {
  const ttl = Math.ceil(result.ttlSeconds);
  return Number.isFinite(ttl) && ttl >= 1 ? ttl : DEFAULT_RETRY_AFTER_SECONDS;
}

/**
 * Maps `items` through `fn` with at most `limit` calls pending, keeping the input order. Once
 * `stopped()` is true no further call starts (the result then has holes).
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>, stopped: () => boolean = () => false): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stopped()) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
