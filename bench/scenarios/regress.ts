/**
 * Issue 19, old against new build in one run: the 0.1 state (REGRESS_COMMIT, materialised from
 * git) and the working tree, side by side against the benchmark slapd, with Postfix's own client
 * (`postmap -q -`, one sequential connection). Warm (every answer cached) and cold (cache
 * flushed, fresh keys), in alternating rounds: the builds swap order every round and each round
 * pairs one run of each, so drifting machine load falls on both. The verdict allows for the noise
 * of the same run: the confidence interval of the median paired ratio over the rounds.
 */
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { materialiseBuild, startBuild, workingTree, type BuildInstance } from '../lib/builds.js';
import type { Context } from '../lib/context.js';
import { searchCounter } from '../lib/monitor.js';
import { keyFile, socketmapSeq } from '../lib/native.js';
import { postmapConfigDir, postmapRun, settle, SETTLE_MS } from '../lib/postmap.js';
import { fmt } from '../lib/report.js';
import { cpuNanos } from '../lib/schedstat.js';

/** Before this round's refactoring and changes (0.1). */
export const REGRESS_COMMIT = '46f1e78';
/** Rounds of each phase; each round runs both builds once. */
const ROUNDS = 61;
const WARM_KEYS = 2_000;
const COLD_KEYS = 1_000;
/** Cold JIT warm-up per build, not measured. */
const JIT_KEYS = 1_000;
/**
 * The regression the check must be able to rule out: the 95 % interval has to exclude a new
 * build this much worse. Fixed beforehand: finer than what a refactoring risks (a lost fast path
 * costs tens of per cent), and about the finest a loaded 2-core machine resolves in minutes.
 */
const MARGIN = 0.1;
/** Fresh directory users this scenario claims (bench/run.ts loads them into slapd). */
export const REGRESS_KEYS = WARM_KEYS + 2 * (JIT_KEYS + ROUNDS * COLD_KEYS);

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
    // The machine's load over each phase, so a reader can tell a noisy run from a regression.
    const load = [os.loadavg()[0]!];
    const warm = await warmRounds(ctx, cfDir, oldRg, newRg);
    load.push(os.loadavg()[0]!);
    const cold = await coldRounds(ctx, cfDir, oldRg, newRg);
    load.push(os.loadavg()[0]!);
    report(ctx, 'warm', warm, `postmap, every answer cached, ${WARM_KEYS.toLocaleString('en-US')} keys a run`);
    report(ctx, 'cold', cold, `postmap, cache flushed, ${COLD_KEYS.toLocaleString('en-US')} fresh keys a run`);
    ctx.sections.push(section(oldBuild.deps, warm, cold, load.map((x) => x.toFixed(2))));
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    oldBuild.dispose();
  }
}

/** One postmap run against `rg` after SETTLE_MS of quiet, with the CPU rcptgate spent on it. */
async function measured(cfDir: string, rg: BuildInstance, file: string, keys: number): Promise<Sample> {
  // Without this the warm rounds (old, new | new, old | ...) ran one build twice in a row at each
  // round boundary: new/old read 1.22 in "old, new" rounds and 0.78 in "new, old" ones.
  await settle();
  const c0 = cpuNanos(rg.pid);
  const run = await postmapRun(cfDir, `socketmap:inet:127.0.0.1:${rg.socketmapPort}:recipients`, file, keys);
  return { rate: run.rate, cpu: (cpuNanos(rg.pid) - c0) / 1000 / keys, found: run.found, keys };
}

/** ROUNDS rounds of one run per build; old goes first in even rounds, new in odd ones. */
async function alternate(oldRg: BuildInstance, newRg: BuildInstance, one: (rg: BuildInstance, round: number) => Promise<Sample>): Promise<Pair[]> {
  const pairs: Pair[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const round: Partial<Pair> = { order: r % 2 === 0 ? 'old, new' : 'new, old' };
    for (const rg of r % 2 === 0 ? [oldRg, newRg] : [newRg, oldRg]) round[rg.build.name as 'old' | 'new'] = await one(rg, r);
    pairs.push(round as Pair);
  }
  return pairs;
}

async function warmRounds(ctx: Context, cfDir: string, oldRg: BuildInstance, newRg: BuildInstance): Promise<Pair[]> {
  const file = await keyFile(ctx.dir, 'regress-warm', ctx.keys.mixed(WARM_KEYS, 19));
  for (const rg of [oldRg, newRg]) {
    const fill = await socketmapSeq(ctx.tools, rg.socketmapPort, 8, 120, file);
    if (fill.requests !== WARM_KEYS || fill.replies.TEMP) throw new Error(`regress warm-up of ${rg.build.label}: ${fill.requests} answers, ${JSON.stringify(fill.replies)}`);
    await measured(cfDir, rg, file, WARM_KEYS); // JIT warm-up of the postmap path, not counted
  }
  const pairs = await alternate(oldRg, newRg, (rg) => measured(cfDir, rg, file, WARM_KEYS));
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
  const pairs = await alternate(oldRg, newRg, async (rg, r) => {
    // Each build gets its own users, never asked before: slapd has not read them for the other one.
    const file = await fresh(`cold-${r}-${rg.build.name}`, COLD_KEYS, 21 + r);
    await rg.flush();
    await searches.start();
    const sample = await measured(cfDir, rg, file, COLD_KEYS);
    return { ...sample, searches: (await searches.stop()) / COLD_KEYS };
  });
  ctx.log(`regress cold: old ${fmt(median(pairs.map((p) => p.old.rate)))}/s, new ${fmt(median(pairs.map((p) => p.new.rate)))}/s`);
  return pairs;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Distribution-free 95 % confidence interval of the median of xs (sign test): the k-th smallest
 * and k-th largest value, k the largest with P(Binomial(n, ½) < k) ≤ 2.5 %. No assumption about
 * the shape of the machine's noise.
 */
export function medianInterval(xs: readonly number[]): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  let k = 0;
  let below = 0; // P(X ≤ k - 1)
  for (let j = 0; j < n; j++) {
    const next = below + binomialHalf(n, j);
    if (next > 0.025) break;
    below = next;
    k = j + 1;
  }
  if (k === 0) return [-Infinity, Infinity]; // too few rounds for any interval
  return [s[k - 1]!, s[n - k]!];
}

function binomialHalf(n: number, j: number): number {
  let c = 1;
  for (let i = 0; i < j; i++) c = (c * (n - i)) / (i + 1);
  return c / 2 ** n;
}

/** Median of |x[i+1] / x[i] − 1| over consecutive rounds: how far apart two runs of the same build land. */
export function sameBuildSpread(xs: readonly number[]): number {
  return median(xs.slice(1).map((x, i) => Math.abs(x / xs[i]! - 1)));
}

export interface Figure {
  old: number;
  new: number;
  /** Median over rounds of new ÷ old in the same round, with its 95 % interval. */
  ratio: number;
  interval: [number, number];
  /** The interval reaches 1 on the good side: the rounds do not show the new build worse. */
  reaches: boolean;
  /** The interval excludes a regression of MARGIN or more. */
  bounded: boolean;
  spreadOld: number;
  spreadNew: number;
  pass: boolean;
}

/** `higherIsBetter`: lookups/s; otherwise CPU per lookup. */
export function figure(oldXs: readonly number[], newXs: readonly number[], higherIsBetter: boolean): Figure {
  const ratios = newXs.map((x, i) => x / oldXs[i]!);
  const ratio = median(ratios);
  const interval = medianInterval(ratios);
  const reaches = higherIsBetter ? interval[1] >= 1 : interval[0] <= 1;
  const bounded = higherIsBetter ? interval[0] >= 1 - MARGIN : interval[1] <= 1 + MARGIN;
  return {
    old: median(oldXs),
    new: median(newXs),
    ratio,
    interval,
    reaches,
    bounded,
    spreadOld: sameBuildSpread(oldXs),
    spreadNew: sameBuildSpread(newXs),
    pass: reaches && bounded,
  };
}

function verdicts(pairs: readonly Pair[]): { rate: Figure; cpu: Figure } {
  const col = (b: 'old' | 'new', k: 'rate' | 'cpu') => pairs.map((p) => p[b][k]);
  return { rate: figure(col('old', 'rate'), col('new', 'rate'), true), cpu: figure(col('old', 'cpu'), col('new', 'cpu'), false) };
}

const pct = (x: number) => `${fmt(x * 100)} %`;
const why = (f: Figure, worse: string) =>
  `paired new/old ${fmt(f.ratio)}× (95 % ${fmt(f.interval[0])}–${fmt(f.interval[1])})` +
  (f.pass ? ', no worse within the noise' : !f.reaches ? `: ${worse} beyond the noise` : `: cannot rule out a ${pct(MARGIN)} regression (too noisy)`);

function report(ctx: Context, phase: 'warm' | 'cold', pairs: Pair[], how: string): void {
  const { rate, cpu } = verdicts(pairs);
  const found = (b: 'old' | 'new') => pairs.reduce((n, p) => n + p[b].found, 0);
  const keys = pairs.reduce((n, p) => n + p.old.keys, 0);
  if (found('old') !== found('new')) ctx.notes.push(`regress ${phase}: the old build found ${found('old')} of ${keys} keys, the new one ${found('new')}: the answers differ.`);
  const baseline = `old build ${REGRESS_COMMIT}`;
  ctx.rows.push({
    section: 'regress',
    what: `${phase}: new vs old build, lookups/s (postmap, median of ${ROUNDS} alternating rounds)`,
    value: rate.new,
    unit: 'lookups/s',
    baseline: { name: baseline, value: rate.old },
    note: `${how}; ${why(rate, 'slower')}; same-build spread old ${pct(rate.spreadOld)}, new ${pct(rate.spreadNew)}`,
    target: { text: '95 % interval of new/old reaches 1 and stays above 0.90', pass: rate.pass },
  });
  const searches = phase === 'cold' ? `; LDAP searches/lookup new ${fmt(median(pairs.map((p) => p.new.searches!)))}, old ${fmt(median(pairs.map((p) => p.old.searches!)))}` : '';
  ctx.rows.push({
    section: 'regress',
    what: `${phase}: new vs old build, rcptgate CPU per lookup (median of ${ROUNDS} rounds)`,
    value: cpu.new,
    unit: 'µs',
    baseline: { name: baseline, value: cpu.old },
    note: `${why(cpu, 'more CPU')}; same-build spread old ${pct(cpu.spreadOld)}, new ${pct(cpu.spreadNew)}${searches}`,
    target: { text: '95 % interval of new/old reaches 1 and stays below 1.10', pass: cpu.pass },
  });
}

function section(deps: string, warm: Pair[], cold: Pair[], load: string[]): string {
  const rounds = (phase: string, pairs: Pair[]) =>
    pairs.map((p, i) => `| ${phase} | ${i + 1} | ${p.order} | ${fmt(p.old.rate)} | ${fmt(p.new.rate)} | ${fmt(p.new.rate / p.old.rate)} | ${fmt(p.old.cpu)} | ${fmt(p.new.cpu)} | ${fmt(p.new.cpu / p.old.cpu)} |`);
  const line = (phase: string, v: { rate: Figure; cpu: Figure }) =>
    `- ${phase}: lookups/s ${fmt(v.rate.ratio)}× old (95 % ${fmt(v.rate.interval[0])}–${fmt(v.rate.interval[1])}) ${v.rate.pass ? 'PASS' : 'FAIL'}; ` +
    `CPU per lookup ${fmt(v.cpu.ratio)}× old (95 % ${fmt(v.cpu.interval[0])}–${fmt(v.cpu.interval[1])}) ${v.cpu.pass ? 'PASS' : 'FAIL'}; ` +
    `same-build spread: lookups/s old ${pct(v.rate.spreadOld)} / new ${pct(v.rate.spreadNew)}, CPU old ${pct(v.cpu.spreadOld)} / new ${pct(v.cpu.spreadNew)}`;
  return `## Old against new build (regress)

The old build is commit ${REGRESS_COMMIT}, materialised with \`git archive\` at bench time (${deps}); the new one is the
working tree. Both run side by side as the real CLI with default settings against the same slapd. Each of ${ROUNDS} rounds
runs \`postmap -q -\` once against each build, the order swapping every round, each run after ${SETTLE_MS} ms of quiet (a build run
twice in a row otherwise reads about 25 % slower); CPU is the rcptgate process's time on CPU
(all threads, /proc/PID/task/*/schedstat) per lookup.

Noise and tolerance: on this shared machine two runs of the same build differ by the load alone (the "same-build
spread": the median change between consecutive rounds of one build, listed below). The figure compared is the median
over rounds of new ÷ old in the same round, so load that drifts between rounds falls on both builds, and the noise
allowed for is that median's distribution-free 95 % confidence interval (sign test over the rounds; no assumption on
the shape of the noise). "No worse" passes when the interval both reaches 1 (lookups/s: upper end ≥ 1; CPU: lower end
≤ 1), so the rounds do not show the new build worse beyond their own scatter, and excludes a ${pct(MARGIN)} regression
(lookups/s: lower end ≥ ${fmt(1 - MARGIN)}; CPU: upper end ≤ ${fmt(1 + MARGIN)}), so a run too noisy to see a regression of that size
fails instead of passing by default. ${pct(MARGIN)}, fixed beforehand: finer than what a refactoring risks (a lost fast
path costs tens of per cent) and about the finest a loaded shared 2-core machine resolves in a few minutes of rounds.
A regression smaller than the interval's half-width can still pass; a FAIL that says "too noisy" is a verdict on the
run, not on the build: read the per-round table and the load average.

${line('warm', verdicts(warm))}; load average ${load[0]} → ${load[1]}
${line('cold', verdicts(cold))}; load average ${load[1]} → ${load[2]}

| phase | round | order | old lookups/s | new lookups/s | new/old | old CPU µs | new CPU µs | new/old |
|---|---|---|---|---|---|---|---|---|
${[...rounds('warm', warm), ...rounds('cold', cold)].join('\n')}`;
}

async function mkdirp(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}
