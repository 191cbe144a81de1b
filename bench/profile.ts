/**
 * Profiles rcptgate's warm and cold socketmap paths: a small slapd, rcptgate under
 * `node --cpu-prof`, 32 sequential connections, then the top self-time functions.
 *
 *   node --import tsx bench/profile.ts [warm|cold] [copy-the-profile-here.cpuprofile]
 */
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSlapd } from '../test/helpers/slapd.js';
import { topSelfTime } from './lib/cpuprofile.js';
import { mixedKeys } from './lib/keys.js';
import { startRcptgate } from './lib/rcptgate.js';
import { socketmapLoad } from './lib/socketmap-load.js';

const mode = process.argv[2] === 'cold' ? 'cold' : 'warm';
const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-profile-'));
const slapd = await startSlapd({ generatedUsers: 30_000, fixture: false });
try {
  const rg = await startRcptgate({ dir, name: 'profiled', slapd, poolSize: Number(process.env.BENCH_POOL_SIZE ?? 8), maxInFlight: 1000, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
  try {
    const keys = mixedKeys(mode === 'cold' ? 40_000 : 10_000, 1, 7);
    if (mode === 'warm') await socketmapLoad({ port: rg.socketmapPort, map: 'recipients', keys, connections: 16, maxRequests: keys.length, maxSeconds: 60, cycle: false });
    const r = await socketmapLoad({ port: rg.socketmapPort, map: 'recipients', keys, connections: 32, maxRequests: 2_000_000, maxSeconds: 5, cycle: mode === 'warm' });
    process.stdout.write(`${mode}: ${Math.round(r.rate)} req/s, p50 ${r.latency.p50.toFixed(3)} ms, p99 ${r.latency.p99.toFixed(3)} ms, ${JSON.stringify(r.replies)}\n`);
  } finally {
    await rg.stop();
  }
  const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no .cpuprofile written');
  if (process.argv[3]) await copyFile(path.join(dir, file), process.argv[3]);
  for (const { percent, fn } of topSelfTime(path.join(dir, file))) process.stdout.write(`${percent.toFixed(1).padStart(5)} %  ${fn}\n`);
} finally {
  await slapd.close();
  await rm(dir, { recursive: true, force: true });
}
