/**
 * Issue 16's bench target: cold lookups at 32 connections through rcptgate (default settings)
 * against slapd's own single-search ceiling. Both sides are driven by the same C load generator
 * (hand-written BER for slapd: one search per key, anonymous, the preset's filter), so client CPU
 * is small and alike, and both read the same key file, so slapd's entry cache is in the same
 * state for both.
 *
 * 1. slapd alone at 4, 8, 16, 32 and 64 sequential connections: the best concurrency is slapd's.
 * 2. rcptgate is warmed up on the measured path until its CPU per lookup is steady
 *    (warmUntilSteady: a long-running service is measured, not the JIT compiling it).
 * 3. Then rounds alternate slapd alone (at its best concurrency) and rcptgate (cache flushed,
 *    32 connections). The figure is the median over rounds of rcptgate ÷ slapd in the same round,
 *    so load that drifts between rounds falls on both; a best-of for one side and a single run
 *    for the other would compare the upper tail of one with the middle of the other.
 */
import type { Context } from '../lib/context.js';
import { searchCounter } from '../lib/monitor.js';
import { keyFile, ldapSeq, type SeqResult } from '../lib/native.js';
import { coldRun, notAnswered, startRcptgate, warmUntilSteady, type ColdWindow, type Rcptgate } from '../lib/rcptgate.js';
import { fmt } from '../lib/report.js';
import { median } from './regress.js';

const LEVEL_SECONDS = 3;
const ROUND_SECONDS = 3;
const ROUNDS = 5;

const lat = (r: SeqResult) => `p50 ${fmt(r.p50)} / p99 ${fmt(r.p99)} ms`;
const kinds = (r: SeqResult) => Object.entries(r.replies).map(([k, v]) => `${k} ${v}`).join(', ');

export async function ceilingScenario(ctx: Context): Promise<void> {
  const { slapd, tools, rows } = ctx;
  const keys = await keyFile(ctx.dir, 'ceiling', ctx.keys.mixed(60_000, 5));
  let best: (SeqResult & { connections: number }) | null = null;
  for (const c of [4, 8, 16, 32, 64]) {
    const r = await ldapSeq(tools, slapd.port, slapd.baseDN, c, LEVEL_SECONDS, keys);
    ctx.log(`ceiling: slapd alone c=${c}: ${fmt(r.rate)} searches/s (${lat(r)})`);
    if (!best || r.rate > best.rate) best = { ...r, connections: c };
  }
  const bestC = best!.connections;
  const rg = ctx.children.add(await startRcptgate({ dir: ctx.dir, name: 'ceiling', slapd })) as Rcptgate;
  const warm = await warmUntilSteady(tools, rg, keys);
  ctx.log(`ceiling: rcptgate warmed up: ${warm.text}`);
  const own: SeqResult[] = [];
  const cold: ColdWindow[] = [];
  const searches = searchCounter(slapd);
  let searched = 0;
  for (let i = 0; i < ROUNDS; i++) {
    // The order swaps every round, so neither side always runs on the heels of the other.
    const runSlapd = async () => own.push(await ldapSeq(tools, slapd.port, slapd.baseDN, bestC, ROUND_SECONDS, keys));
    const runRcptgate = async () => {
      await searches.start();
      cold.push(await coldRun(tools, rg, 32, ROUND_SECONDS, keys));
      searched += await searches.stop();
    };
    if (i % 2 === 0) await runSlapd().then(runRcptgate);
    else await runRcptgate().then(runSlapd);
    ctx.log(`ceiling: round ${i + 1}: slapd alone ${fmt(own[i]!.rate)}/s, rcptgate ${fmt(cold[i]!.rate)}/s (${kinds(cold[i]!)}; CPU ${fmt(cold[i]!.cpuMicros)} µs/lookup)`);
  }
  await rg.stop();
  const ratio = median(cold.map((r, i) => r.rate / own[i]!.rate));
  const temp = cold.reduce((n, r) => n + notAnswered(r), warm.notAnswered);
  const requests = cold.reduce((n, r) => n + r.requests, 0);
  const mid = <T extends SeqResult>(xs: T[]) => [...xs].sort((a, b) => a.rate - b.rate)[xs.length >> 1]!;
  const slapdMid = mid(own);
  const rgMid = mid(cold);
  rows.push({
    section: 'ceiling',
    what: `slapd's own single-search rate (C client; best concurrency of 4…64: c=${bestC}; median of ${ROUNDS} rounds)`,
    value: slapdMid.rate,
    unit: 'searches/s',
    note: `${lat(slapdMid)}; the concurrency sweep's best: ${fmt(best!.rate)}/s`,
  });
  rows.push({
    section: 'ceiling',
    what: `rcptgate cold lookups, 32 sequential connections, distinct keys (median of ${ROUNDS} rounds, each paired with a slapd-alone round)`,
    value: rgMid.rate,
    unit: 'lookups/s',
    baseline: { name: 'slapd alone', value: slapdMid.rate },
    note:
      `paired median ${fmt(ratio)}× (rounds ${cold.map((r, i) => fmt(r.rate / own[i]!.rate)).join(', ')}); ${lat(rgMid)}; ${kinds(rgMid)}; ` +
      `TEMP or unanswered in the warm-up and all rounds: ${temp}; ${fmt(searched / Math.max(1, requests))} LDAP searches/lookup; ` +
      `rcptgate CPU ${fmt(median(cold.map((r) => r.cpuMicros)))} µs/lookup after a warm-up of ${warm.text}`,
    target: { text: 'paired median ≥ 1.5× slapd alone, 0 TEMP', pass: ratio >= 1.5 && temp === 0 },
  });
}
