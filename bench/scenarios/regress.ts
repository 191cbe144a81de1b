/**
 * Issue 19, old against new build in one run: the 0.1 state (REGRESS_COMMIT, materialised from
 * git) and the working tree, side by side against the benchmark slapd, with Postfix's own client
 * (`postmap -q -`, one sequential connection). Warm (every answer cached) and cold (cache
 * flushed, fresh keys), in alternating rounds: the builds swap order every round and each round
 * pairs one run of each, so drifting machine load falls on both. The verdict allows for noise
 * measured in the same run: the typical change between two rounds of the same build.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { materialiseBuild, startBuild, workingTree, type BuildInstance } from '../lib/builds.js';
import type { Context } from '../lib/context.js';
import { cpuMillis } from '../lib/cpu.js';
import { searchCounter } from '../lib/monitor.js';
import { keyFile, socketmapSeq } from '../lib/native.js';
import { postmapConfigDir, postmapRun } from '../lib/postmap.js';
import { fmt } from '../lib/report.js';

/** Before this round's refactoring and changes (0.1). */
export const REGRESS_COMMIT = '46f1e78';
const WARM_KEYS = 10_000;
const WARM_ROUNDS = 7;
const COLD_KEYS = 4_000;
const COLD_ROUNDS = 5;
/** Cold JIT warm-up per build, not measured. */
const JIT_KEYS = 1_000;
/** Same-build noise above this leaves the run unable to show "no worse": it fails. */
const MAX_NOISE = 0.1;
/** Fresh directory users this scenario claims (bench/run.ts loads them into slapd). */
export const REGRESS_KEYS = WARM_KEYS + 2 * (JIT_KEYS + COLD_ROUNDS * COLD_KEYS);

interface Sample {
  rate: number;
  /** rcptgate process CPU, µs per lookup. */
  cpu: number;
  found: number;
  keys: number;
  /** LDAP searches slapd completed per lookup (cold only). */
  searches?: number;
}
type Pair = { old: Sample; new: Sample; order: string };

export async function regressScenario(ctx: Context): Promise<void> {
  ctx.log(`regress: materialising the old build ${REGRESS_COMMIT} from git`);
  const oldBuild = materialiseBuild(REGRESS_COMMIT, ctx.log);
  const started: BuildInstance[] = [];
  try {
    for (const build of [oldBuild, workingTree()]) {
      const instance = await startBuild(build, { dir: ctx.dir, slapd: ctx.slapd });
      ctx.children.add(instance);
      started.push(instance);
    }
    const [oldRg, newRg] = started as [BuildInstance, BuildInstance];
    const cfDir = await postmapConfigDir(await mkdirp(path.join(ctx.dir, 'regress')));
    const warm = await warmRounds(ctx, cfDir, oldRg, newRg);
    const cold = await coldRounds(ctx, cfDir, oldRg, newRg);
    report(ctx, 'warm', warm, `postmap, every answer cached, ${WARM_KEYS.toLocaleString('en-US')} keys, median of ${WARM_ROUNDS} alternating rounds`);
    report(ctx, 'cold', cold, `postmap, cache flushed, ${COLD_KEYS.toLocaleString('en-US')} fresh keys per build and round, median of ${COLD_ROUNDS} alternating rounds`);
    ctx.sections.push(section(oldBuild.deps, warm, cold));
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    oldBuild.dispose();
  }
}

/** One postmap run against `rg`, with the CPU rcptgate spent on it. */
async function measured(cfDir: string, rg: BuildInstance, file: string, keys: number): Promise<Sample> {
  const c0 = cpuMillis(rg.pid);
  const run = await postmapRun(cfDir, `socketmap:inet:127.0.0.1:${rg.socketmapPort}:recipients`, file, keys);
  return { rate: run.rate, cpu: ((cpuMillis(rg.pid) - c0) * 1000) / keys, found: run.found, keys };
}

/** Round r runs old first when r is even, new first when odd. */
const ordered = (r: number, oldRg: BuildInstance, newRg: BuildInstance) => (r % 2 === 0 ? [oldRg, newRg] : [newRg, oldRg]);

async function warmRounds(ctx: Context, cfDir: string, oldRg: BuildInstance, newRg: BuildInstance): Promise<Pair[]> {
  const file = await keyFile(ctx.dir, 'regress-warm', ctx.keys.mixed(WARM_KEYS, 19));
  for (const rg of [oldRg, newRg]) {
    const fill = await socketmapSeq(ctx.tools, rg.socketmapPort, 8, 120, file);
    if (fill.requests !== WARM_KEYS || fill.replies.TEMP) throw new Error(`regress warm-up of ${rg.build.label}: ${fill.requests} answers, ${JSON.stringify(fill.replies)}`);
    await measured(cfDir, rg, file, WARM_KEYS); // JIT warm-up of the postmap path, not counted
  }
  const pairs: Pair[] = [];
  for (let r = 0; r < WARM_ROUNDS; r++) {
    const round: Partial<Pair> = { order: r % 2 === 0 ? 'old, new' : 'new, old' };
    for (const rg of ordered(r, oldRg, newRg)) round[rg.build.name as 'old' | 'new'] = await measured(cfDir, rg, file, WARM_KEYS);
    pairs.push(round as Pair);
  }
  ctx.log(`regress warm: old ${fmt(median(pairs.map((p) => p.old.rate)))}/s, new ${fmt(median(pairs.map((p) => p.new.rate)))}/s`);
  return pairs;
}

async function coldRounds(ctx: Context, cfDir: string, oldRg: BuildInstance, newRg: BuildInstance): Promise<Pair[]> {
  const fresh = async (name: string, count: number, seed: number) => keyFile(ctx.dir, `regress-${name}`, ctx.keys.mixed(count, seed));
  for (const rg of [oldRg, newRg]) {
    await rg.flush();
    await measured(cfDir, rg, await fresh(`jit-${rg.build.name}`, JIT_KEYS, 20), JIT_KEYS); // JIT warm-up of the LDAP path
  }
  const searches = searchCounter(ctx.slapd);
  const pairs: Pair[] = [];
  for (let r = 0; r < COLD_ROUNDS; r++) {
    const round: Partial<Pair> = { order: r % 2 === 0 ? 'old, new' : 'new, old' };
    for (const rg of ordered(r, oldRg, newRg)) {
      // Each build gets its own users, never asked before: slapd has not read them for the other one.
      const file = await fresh(`cold-${r}-${rg.build.name}`, COLD_KEYS, 21 + r);
      await rg.flush();
      await searches.start();
      const sample = await measured(cfDir, rg, file, COLD_KEYS);
      sample.searches = (await searches.stop()) / COLD_KEYS;
      round[rg.build.name as 'old' | 'new'] = sample;
    }
    pairs.push(round as Pair);
  }
  ctx.log(`regress cold: old ${fmt(median(pairs.map((p) => p.old.rate)))}/s, new ${fmt(median(pairs.map((p) => p.new.rate)))}/s`);
  return pairs;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Same-build noise: the median of |x[i+1] / x[i] − 1| over consecutive rounds of each build,
 * both builds pooled — how far apart two rounds of the same code typically land in this run.
 */
export function sameBuildNoise(a: readonly number[], b: readonly number[]): number {
  const changes = (xs: readonly number[]) => xs.slice(1).map((x, i) => Math.abs(x / xs[i]! - 1));
  return median([...changes(a), ...changes(b)]);
}

export interface Verdict {
  oldRate: number;
  newRate: number;
  oldCpu: number;
  newCpu: number;
  /** Median over rounds of new ÷ old in the same round. */
  rateRatio: number;
  cpuRatio: number;
  rateNoise: number;
  cpuNoise: number;
  pass: boolean;
  why: string;
}

export function verdict(pairs: readonly Pair[]): Verdict {
  const col = (b: 'old' | 'new', k: 'rate' | 'cpu') => pairs.map((p) => p[b][k]);
  const rateRatio = median(pairs.map((p) => p.new.rate / p.old.rate));
  const cpuRatio = median(pairs.map((p) => p.new.cpu / p.old.cpu));
  const rateNoise = sameBuildNoise(col('old', 'rate'), col('new', 'rate'));
  const cpuNoise = sameBuildNoise(col('old', 'cpu'), col('new', 'cpu'));
  const why: string[] = [];
  if (rateNoise > MAX_NOISE || cpuNoise > MAX_NOISE) why.push(`same-build noise above ${MAX_NOISE * 100} %: too noisy to show "no worse"`);
  if (rateRatio < 1 - rateNoise) why.push(`lookups/s ${fmt(rateRatio)}× old, below 1 − noise (${fmt(1 - rateNoise)})`);
  if (cpuRatio > 1 + cpuNoise) why.push(`CPU/lookup ${fmt(cpuRatio)}× old, above 1 + noise (${fmt(1 + cpuNoise)})`);
  return {
    oldRate: median(col('old', 'rate')),
    newRate: median(col('new', 'rate')),
    oldCpu: median(col('old', 'cpu')),
    newCpu: median(col('new', 'cpu')),
    rateRatio,
    cpuRatio,
    rateNoise,
    cpuNoise,
    pass: why.length === 0,
    why: why.join('; '),
  };
}

const pct = (x: number) => `${fmt(x * 100)} %`;

function report(ctx: Context, phase: 'warm' | 'cold', pairs: Pair[], how: string): void {
  const v = verdict(pairs);
  const found = (b: 'old' | 'new') => pairs.reduce((n, p) => n + p[b].found, 0);
  const keys = pairs.reduce((n, p) => n + p.old.keys, 0);
  if (found('old') !== found('new')) ctx.notes.push(`regress ${phase}: the old build found ${found('old')} of ${keys} keys, the new one ${found('new')}: the answers differ.`);
  const baseline = `old build ${REGRESS_COMMIT}`;
  ctx.rows.push({
    section: 'regress',
    what: `${phase}: new vs old build (lookups/s and rcptgate CPU per lookup)`,
    value: v.newRate,
    unit: 'lookups/s',
    baseline: { name: baseline, value: v.oldRate },
    note: `${how}; paired new/old: rate ${fmt(v.rateRatio)}×, CPU ${fmt(v.cpuRatio)}×; same-build noise: rate ${pct(v.rateNoise)}, CPU ${pct(v.cpuNoise)}${v.why ? `; ${v.why}` : ''}`,
    target: { text: 'rate ≥ (1 − noise)× old, CPU ≤ (1 + noise)× old, noise ≤ 10 %', pass: v.pass },
  });
  const searches = phase === 'cold' ? `; LDAP searches/lookup new ${fmt(median(pairs.map((p) => p.new.searches!)))}, old ${fmt(median(pairs.map((p) => p.old.searches!)))}` : '';
  ctx.rows.push({
    section: 'regress',
    what: `${phase}: rcptgate CPU per lookup, new vs old build`,
    value: v.newCpu,
    unit: 'µs',
    baseline: { name: baseline, value: v.oldCpu },
    note: `median of rounds${searches}`,
  });
}

function section(deps: string, warm: Pair[], cold: Pair[]): string {
  const table = (phase: string, pairs: Pair[]) =>
    pairs.map((p, i) => `| ${phase} | ${i + 1} | ${p.order} | ${fmt(p.old.rate)} | ${fmt(p.new.rate)} | ${fmt(p.new.rate / p.old.rate)} | ${fmt(p.old.cpu)} | ${fmt(p.new.cpu)} | ${fmt(p.new.cpu / p.old.cpu)} |`);
  const line = (phase: string, v: Verdict) =>
    `- ${phase}: median new/old ${fmt(v.rateRatio)}× lookups/s (tolerance ${pct(v.rateNoise)}), ${fmt(v.cpuRatio)}× CPU per lookup (tolerance ${pct(v.cpuNoise)}): ${v.pass ? 'PASS' : `FAIL (${v.why})`}`;
  return `## Old against new build (regress)

The old build is commit ${REGRESS_COMMIT}, materialised with \`git archive\` at bench time (${deps}); the new one is the
working tree. Both run side by side as the real CLI with default settings against the same slapd; every round runs
each once, swapping the order every round. Rates are \`postmap -q -\` lookups/s, CPU is rcptgate's µs per lookup.

| phase | round | order | old lookups/s | new lookups/s | new/old | old CPU µs | new CPU µs | new/old |
|---|---|---|---|---|---|---|---|---|
${[...table('warm', warm), ...table('cold', cold)].join('\n')}

Noise and tolerance: two rounds of the same build differ by the machine's load alone, so for each figure the
noise is the median of |x(round i+1) ÷ x(round i) − 1| over both builds' consecutive rounds. The new build passes
if the median of its paired ratios (new ÷ old in the same round) is within that noise of 1: lookups/s at least
(1 − noise)× old and CPU per lookup at most (1 + noise)× old; a smaller gap cannot be told from the load. If the noise
itself exceeds ${MAX_NOISE * 100} %, the run cannot show "no worse" and the row fails.

${line('warm', verdict(warm))}
${line('cold', verdict(cold))}`;
}

async function mkdirp(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}
