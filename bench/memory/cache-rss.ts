/**
 * RSS of the engine holding N cached answers (default 1,000,000): the real RecipientValidatorImpl
 * and its LRU cache, filled through `lookup()` from a directory that generates answers (no LDAP,
 * so only the engine's memory is counted). Prints one JSON line. Run with --expose-gc.
 * RSS depends on V8's heap sizing as much as on the cache: run.ts measures it with default flags
 * and with the heap budget a container would set (NODE_OPTIONS, see bench/RESULTS.md).
 *
 *   node --expose-gc [--max-semi-space-size=8 --max-old-space-size=384] --import tsx bench/memory/cache-rss.ts 1000000
 */
import { validateConfig } from '../../src/config/load.js';
import type { Directory } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';

const n = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const mb = (b: number) => b / 1024 / 1024;

const directory: Directory = {
  kind: 'ldap',
  // Like slapd's answers: 70 % found (an entry with its DN and primary address), 30 % not found.
  lookup: async (address) => {
    const k = Number(address.slice(4, address.indexOf('@')));
    // The filter string travels with the answer, as LdapDirectory returns it.
    const filter = `(|(mail=${address})(mailAlternateAddress=${address}))`;
    return k % 10 < 7 ? { entry: { dn: `uid=user${k},ou=people,dc=example,dc=com`, canonical: address }, filter } : { entry: null, filter };
  },
  probe: async () => undefined,
  listAll: async function* () {},
  close: async () => undefined,
};
const config = validateConfig({
  domains: ['example.com'],
  directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } },
  cache: { maxEntries: n },
});
const validator = new RecipientValidatorImpl({ config, directory, metrics: new Metrics(), logger: silentLogger() });

gc();
const before = process.memoryUsage();
const t0 = process.hrtime.bigint();
const batch: Promise<unknown>[] = [];
for (let k = 1; k <= n; k++) {
  batch.push(validator.lookup(`user${k}@example.com`, { frontend: 'http' }));
  if (batch.length === 1000) await Promise.all(batch.splice(0));
}
await Promise.all(batch);
const fillSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
gc();
const after = process.memoryUsage();
process.stdout.write(
  JSON.stringify({ heapTotalMB: mb(after.heapTotal), externalMB: mb(after.external), entries: validator.cacheSize, fillSeconds, rssBeforeMB: mb(before.rss), rssMB: mb(after.rss), heapUsedMB: mb(after.heapUsed), deltaMB: mb(after.rss - before.rss) }) + '\n',
);
