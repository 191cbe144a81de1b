/**
 * Issue 20: where rcptgate's time goes on the postmap paths. A separate instance runs under
 * `node --cpu-prof`; the benchmark notes the monotonic-clock window of a warm and of a cold
 * `postmap -q -` run and summarises the top self-time frames of each window.
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Context } from '../lib/context.js';
import { topSelfTime, type Frame } from '../lib/cpuprofile.js';
import { keyFile, socketmapSeq } from '../lib/native.js';
import { postmapConfigDir, postmapRun } from '../lib/postmap.js';
import { startRcptgate } from '../lib/rcptgate.js';
import { fmt } from '../lib/report.js';

const KEYS = 10_000;
const TOP = 12;
const micros = () => Number(process.hrtime.bigint() / 1000n);

export async function profileScenario(ctx: Context): Promise<void> {
  const profDir = path.join(ctx.dir, 'profile');
  await mkdir(profDir, { recursive: true });
  const cfDir = await postmapConfigDir(profDir);
  const rg = ctx.children.add(await startRcptgate({ dir: ctx.dir, name: 'profiled', slapd: ctx.slapd, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] })) as Awaited<ReturnType<typeof startRcptgate>>;
  const map = `socketmap:inet:127.0.0.1:${rg.socketmapPort}:recipients`;
  const warmFile = await keyFile(ctx.dir, 'profile-warm', ctx.keys.mixed(KEYS, 3));
  const coldFile = await keyFile(ctx.dir, 'profile-cold', ctx.keys.mixed(KEYS, 4));
  await socketmapSeq(ctx.tools, rg.socketmapPort, 8, 120, warmFile);
  await postmapRun(cfDir, map, warmFile, KEYS); // JIT warm-up of the warm path, outside the window
  const w0 = micros();
  const warm = await postmapRun(cfDir, map, warmFile, KEYS);
  await postmapRun(cfDir, map, warmFile, KEYS);
  const w1 = micros();
  await rg.flush();
  const c0 = micros();
  const cold = await postmapRun(cfDir, map, coldFile, KEYS);
  const c1 = micros();
  await rg.stop();
  const file = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
  if (!file) {
    ctx.notes.push('profile: rcptgate wrote no .cpuprofile (did it exit cleanly on SIGTERM?)');
    return;
  }
  const warmTop = topSelfTime(path.join(profDir, file), TOP, { fromMicros: w0, toMicros: w1 });
  const coldTop = topSelfTime(path.join(profDir, file), TOP, { fromMicros: c0, toMicros: c1 });
  const block = (title: string, t: { frames: Frame[]; samples: number }) =>
    [`### ${title} (${t.samples} samples)`, '', '| self % | function |', '|---|---|', ...t.frames.map((f) => `| ${f.percent.toFixed(1)} | \`${f.fn}\` |`)].join('\n');
  ctx.sections.push(
    [
      '## CPU profile of rcptgate on the postmap paths',
      '',
      `\`node --cpu-prof\` on a separate rcptgate instance (default settings); samples cut to the window of each phase. ` +
        `Under the profiler: warm ${fmt(warm.rate)} lookups/s, cold ${fmt(cold.rate)} lookups/s. "(program)" and "(idle)" are V8's own and waiting time.`,
      '',
      block('Warm: two `postmap -q -` runs of 10,000 cached keys', warmTop),
      '',
      block('Cold: one `postmap -q -` run of 10,000 fresh keys, cache flushed', coldTop),
    ].join('\n'),
  );
  const line = (t: { frames: Frame[] }) => t.frames.slice(0, 6).map((f) => `${f.percent.toFixed(1)}% ${f.fn}`).join('; ');
  ctx.log(`profile warm top: ${line(warmTop)}`);
  ctx.log(`profile cold top: ${line(coldTop)}`);
}
