/**
 * cache.persistPath at scale: the real engine caches N positive answers (default 1,000,000) from
 * a directory that generates them, saves them, and a second engine, "restarted" two hours later
 * with the directory down, loads the file and answers every one of the N addresses: all must be
 * valid, served stale (past positiveTtl, within staleIfError), and a never-seen address must be
 * a tempfail. Prints the figures, PASS/FAIL, then one JSON line.
 *
 *   node --expose-gc --import tsx bench/memory/cache-persist.ts [N]
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import type { Directory } from '../../src/directory/types.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { loadAnswers, saveAnswers } from '../../src/snapshot/answer-file.js';

const n = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const HOUR = 3_600_000;
const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-answers-'));
const file = path.join(dir, 'answers');
const config = validateConfig({
  domains: ['example.com'],
  directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } },
  cache: { maxEntries: n, positiveTtl: '1h', staleIfError: '24h', persistPath: file },
});
const up: Directory = {
  kind: 'ldap',
  lookup: async (address) => ({ entry: { dn: `uid=${address.slice(0, address.indexOf('@'))},ou=people,dc=example,dc=com`, canonical: address } }),
  probe: async () => undefined,
  listAll: async function* () {},
  close: async () => undefined,
};
const down: Directory = {
  ...up,
  lookup: async () => {
    throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'directory down (bench)');
  },
};
const line = (what: string, value: string, target = '') => console.log(`${what.padEnd(52)} ${value.padEnd(24)} ${target}`);
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

try {
  const before = new RecipientValidatorImpl({ config, directory: up, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  const batch: Promise<unknown>[] = [];
  for (let k = 1; k <= n; k++) {
    batch.push(before.lookup(`user${k}@example.com`, { frontend: 'socketmap' }));
    if (batch.length === 1000) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  let t0 = process.hrtime.bigint();
  const saved = await saveAnswers(file, 'bench', before.answerCache!, Date.now(), 24 * HOUR);
  const saveSeconds = seconds(t0);
  const fileMB = (await stat(file)).size / 1024 / 1024;

  // The restart: a new process would start with an empty engine; two hours on, directory down.
  const later = () => Date.now() + 2 * HOUR;
  const after = new RecipientValidatorImpl({ config, directory: down, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), now: later });
  gc();
  const rss0 = process.memoryUsage().rss;
  t0 = process.hrtime.bigint();
  const loaded = await loadAnswers(file, 'bench', after.answerCache!, later(), 24 * HOUR);
  const loadSeconds = seconds(t0);
  let stale = 0;
  const wrong: string[] = [];
  for (let k = 1; k <= n; k++) {
    const r = await after.lookup(`user${k}@example.com`, { frontend: 'socketmap' });
    if (r.verdict === 'valid' && r.source === 'stale') stale++;
    else if (wrong.length < 3) wrong.push(`user${k}: ${r.verdict}/${r.source}`);
  }
  const unseen = await after.lookup('never-seen@example.com', { frontend: 'socketmap' });
  const ok = saved === n && loaded === n && stale === n && unseen.verdict === 'tempfail';
  line(`answers saved / file size`, `${saved} / ${fileMB.toFixed(0)} MB`);
  line(`save time / load time`, `${saveSeconds.toFixed(2)} s / ${loadSeconds.toFixed(2)} s`);
  line(`served stale-positive after the restart, directory down`, `${stale} of ${n}`, `all: ${ok ? 'PASS' : 'FAIL'}${wrong.length ? ` (${wrong.join(', ')})` : ''}`);
  line('never-seen address after the restart', `${unseen.verdict}`, `tempfail: ${unseen.verdict === 'tempfail' ? 'PASS' : 'FAIL'}`);
  process.stdout.write(JSON.stringify({ answers: n, saved, loaded, stale, saveSeconds, loadSeconds, fileMB, loadRssMB: (process.memoryUsage().rss - rss0) / 1024 / 1024 }) + '\n');
  if (!ok) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
