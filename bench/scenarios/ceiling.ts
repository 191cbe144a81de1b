/**
 * Issue 16's bench target: cold lookups at 32 connections through rcptgate (default settings)
 * against slapd's own single-search ceiling. slapd's ceiling is measured with the C load
 * generator (hand-written BER, one search per key, anonymous, the preset's filter) at 4, 8, 16,
 * 32 and 64 sequential connections; the best rate counts. Both sides are driven by the same C client,
 * so client CPU is small and alike.
 */
import type { Context } from '../lib/context.js';
import { cpuMillis } from '../lib/cpu.js';
import { searchCounter } from '../lib/monitor.js';
import { keyFile, ldapSeq, socketmapSeq, type SeqResult } from '../lib/native.js';
import { startRcptgate } from '../lib/rcptgate.js';
import { fmt } from '../lib/report.js';

const SECONDS = 4;
const lat = (r: SeqResult) => `p50 ${fmt(r.p50)} / p99 ${fmt(r.p99)} ms`;
const kinds = (r: SeqResult) => Object.entries(r.replies).map(([k, v]) => `${k} ${v}`).join(', ');

export async function ceilingScenario(ctx: Context): Promise<void> {
  const { slapd, tools, rows } = ctx;
  const slapdFile = await keyFile(ctx.dir, 'ceiling-slapd', ctx.keys.mixed(40_000, 5));
  let own: (SeqResult & { connections: number }) | null = null;
  for (const c of [4, 8, 16, 32, 64]) {
    const r = await ldapSeq(tools, slapd.port, slapd.baseDN, c, SECONDS, slapdFile);
    ctx.log(`ceiling: slapd alone c=${c}: ${fmt(r.rate)} searches/s (${lat(r)})`);
    if (!own || r.rate > own.rate) own = { ...r, connections: c };
  }
  const rg = ctx.children.add(await startRcptgate({ dir: ctx.dir, name: 'ceiling', slapd })) as Awaited<ReturnType<typeof startRcptgate>>;
  // Warm-up on the measured path itself (cold lookups, 32 connections), so the 4 s measure the
  // steady state a long-running service is in, not the JIT compiling it.
  await socketmapSeq(tools, rg.socketmapPort, 32, 3, await keyFile(ctx.dir, 'ceiling-jit', ctx.keys.mixed(12_000, 6)));
  await rg.flush();
  const coldFile = await keyFile(ctx.dir, 'ceiling-rcptgate', ctx.keys.mixed(60_000, 7));
  const searches = searchCounter(slapd);
  await searches.start();
  const c0 = cpuMillis(rg.pid);
  const cold = await socketmapSeq(tools, rg.socketmapPort, 32, SECONDS, coldFile);
  const cpu = ((cpuMillis(rg.pid) - c0) * 1000) / Math.max(1, cold.requests);
  const perLookup = (await searches.stop()) / Math.max(1, cold.requests);
  await rg.stop();
  const temp = (cold.replies.TEMP ?? 0) + (cold.replies.PERM ?? 0) + (cold.replies.OTHER ?? 0) + cold.unanswered;
  ctx.log(`ceiling: rcptgate cold c=32: ${fmt(cold.rate)}/s (${kinds(cold)}), ${fmt(perLookup)} searches/lookup`);
  rows.push({ section: 'ceiling', what: `slapd's own single-search rate (C client, best of c=4…64: c=${own!.connections})`, value: own!.rate, unit: 'searches/s', note: lat(own!) });
  rows.push({
    section: 'ceiling',
    what: 'rcptgate cold lookups, 32 sequential connections, distinct keys',
    value: cold.rate,
    unit: 'lookups/s',
    baseline: { name: 'slapd alone', value: own!.rate },
    note: `${lat(cold)}; ${kinds(cold)}; ${fmt(perLookup)} LDAP searches/lookup; rcptgate CPU ${fmt(cpu)} µs/lookup`,
    target: { text: '≥ 1.5× slapd alone, 0 TEMP', pass: cold.rate >= 1.5 * own!.rate && temp === 0 },
  });
}
