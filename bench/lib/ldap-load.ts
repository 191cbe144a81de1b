/**
 * slapd's own rate: `connections` ldapts clients, each sequential, doing exactly the searches
 * rcptgate's openldap preset sends for a lookup (same filter, attributes, size limit).
 */
import { Client } from 'ldapts';
import { expandFilter, parseFilter } from '../../src/directory/filter.js';
import { summarize, type Latency } from './stats.js';

export const LOOKUP_FILTER = '(|(mail=%s)(mailAlternateAddress=%s))';

export interface LdapLoadResult {
  requests: number;
  seconds: number;
  rate: number;
  latency: Latency;
  found: number;
}

export async function ldapLoad(o: { url: string; baseDN: string; keys: readonly string[]; connections: number; maxSeconds: number }): Promise<LdapLoadResult> {
  const clients = Array.from({ length: o.connections }, () => new Client({ url: o.url, connectTimeout: 5_000, timeout: 10_000 }));
  await Promise.all(clients.map((c) => c.bind('', '')));
  const latencies = new Float64Array(o.keys.length);
  let next = 0;
  let done = 0;
  let found = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(o.maxSeconds * 1e9));
  const worker = async (c: Client) => {
    for (;;) {
      const i = next++;
      if (i >= o.keys.length) return;
      const t0 = process.hrtime.bigint();
      if (t0 > deadline) return;
      const filter = parseFilter(expandFilter(LOOKUP_FILTER, o.keys[i]!));
      const r = await c.search(o.baseDN, { scope: 'sub', filter, attributes: ['mail', 'mailAlternateAddress'], sizeLimit: 16, derefAliases: 'never' });
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.searchEntries.length > 0) found++;
    }
  };
  try {
    await Promise.all(clients.map(worker));
  } finally {
    await Promise.all(clients.map((c) => c.unbind().catch(() => undefined)));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { requests: done, seconds, rate: done / seconds, latency: summarize(latencies.subarray(0, done)), found };
}
