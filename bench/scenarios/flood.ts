/**
 * Issue 16's flood: one attacker connection (then 200) pipelining random unknown addresses at
 * full speed (C flood client), while a victim client looks up cold valid addresses one at a time.
 * The victim connects from 127.0.0.2, the attacker from 127.0.0.1. The victim's same lookups with no flood are the baseline (cache flushed before each run).
 * LDAP searches per lookup come from slapd's cn=Monitor, with batching (the default) and, when
 * the code under test has `directory.ldap.batchSize`, without (`batchSize: 1`).
 */
import type { Context } from '../lib/context.js';
import { sleep } from '../lib/context.js';
import { rssPeak } from '../lib/cpu.js';
import { searchCounter } from '../lib/monitor.js';
import { flood, keyFile, socketmapSeq, type FloodResult, type SeqResult } from '../lib/native.js';
import { acceptsConfig, startRcptgate } from '../lib/rcptgate.js';
import { fmt } from '../lib/report.js';

const VICTIM_KEYS = 300;
const VICTIM_SECONDS = 15;
/** The attack outlasts the victim's run: it starts 1 s before the victim and ends after it. */
const ATTACK_SECONDS = VICTIM_SECONDS + 2;
/** The victim is another host than the attacker (127.0.0.1), as on a real MX: per-peer limits apply. */
const VICTIM_HOST = '127.0.0.2';

interface Variant {
  label: string;
  ldap: Record<string, unknown>;
}

const kinds = (r: Record<string, number>) => Object.entries(r).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
const nonAnswers = (r: Record<string, number>) => (r.TEMP ?? 0) + (r.PERM ?? 0) + (r.OTHER ?? 0);

export async function floodScenario(ctx: Context): Promise<void> {
  const variants: Variant[] = [{ label: 'default settings', ldap: {} }];
  const batchKey = { directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], batchSize: 1 } } };
  if (acceptsConfig(batchKey)) variants.push({ label: 'batchSize: 1', ldap: { batchSize: 1 } });
  else ctx.notes.push('flood: batching not available — this code has no `directory.ldap.batchSize`, so there is no with/without comparison (every figure below is the default configuration).');
  const victimFile = await keyFile(ctx.dir, 'flood-victim', ctx.keys.valid(VICTIM_KEYS));
  const perLookup: Record<string, number> = {};
  for (const v of variants) {
    const jitFile = await keyFile(ctx.dir, `flood-jit-${variants.indexOf(v)}`, ctx.keys.mixed(2_000, 8));
    // A fresh instance for every run: a backlog left by one flood must not slow the next run.
    const fresh = async (name: string) => {
      const rg = ctx.children.add(await startRcptgate({ dir: ctx.dir, name: `flood-${variants.indexOf(v)}-${name}`, slapd: ctx.slapd, ldap: v.ldap })) as Awaited<ReturnType<typeof startRcptgate>>;
      await socketmapSeq(ctx.tools, rg.socketmapPort, 4, 10, jitFile); // JIT warm-up
      await rg.flush();
      return rg;
    };
    const alone = await fresh('alone');
    const base = await socketmapSeq(ctx.tools, alone.socketmapPort, 1, VICTIM_SECONDS, victimFile, VICTIM_HOST);
    await alone.stop();
    ctx.log(`flood [${v.label}]: victim alone ${fmt(base.rate)}/s p50 ${fmt(base.p50)} p99 ${fmt(base.p99)} ms (${kinds(base.replies)})`);
    let searches = 0;
    let lookups = 0;
    for (const connections of [1, 200]) {
      const rg = await fresh(`c${connections}`);
      const counter = searchCounter(ctx.slapd);
      await counter.start();
      const rss = rssPeak(rg.pid);
      const attack = flood(ctx.tools, rg.socketmapPort, connections, ATTACK_SECONDS, 1000 + connections);
      await sleep(1_000);
      const victim = await socketmapSeq(ctx.tools, rg.socketmapPort, 1, VICTIM_SECONDS, victimFile, VICTIM_HOST);
      const a = await attack;
      const peak = rss.stop();
      const s = await counter.stop();
      const answered = victim.requests - nonAnswers(victim.replies) + a.answered - nonAnswers(a.replies);
      searches += s;
      lookups += answered;
      ctx.log(`flood [${v.label}] ${connections} conn: victim ${kinds(victim.replies)} unanswered ${victim.unanswered} p50 ${fmt(victim.p50)} p99 ${fmt(victim.p99)} ms; attacker ${fmt(a.rate)}/s (${kinds(a.replies)}); peak RSS ${fmt(peak)} MB; ${fmt(s / Math.max(1, answered))} searches/lookup`);
      pushRows(ctx, v.label, connections, base, victim, a, peak, `${s} LDAP searches for ${answered} answered lookups (${fmt(s / Math.max(1, answered))} per lookup)`);
      await rg.stop();
    }
    perLookup[v.label] = searches / Math.max(1, lookups);
  }
  const withBatch = perLookup['default settings']!;
  const without = perLookup['batchSize: 1'];
  if (without !== undefined) {
    ctx.rows.push({ section: 'flood', what: 'LDAP searches per answered lookup under flood, default settings (batching)', value: withBatch, unit: 'searches', baseline: { name: 'batchSize: 1', value: without } });
  } else {
    ctx.rows.push({ section: 'flood', what: 'LDAP searches per answered lookup under flood (batching not available)', value: withBatch, unit: 'searches' });
  }
}

function pushRows(ctx: Context, label: string, connections: number, base: SeqResult, victim: SeqResult, a: FloodResult, peak: number, searches: string): void {
  const tag = `${connections === 1 ? '1 attacker connection' : `${connections} attacker connections`}, ${label}`;
  const temp = nonAnswers(victim.replies);
  const answered = victim.requests - temp;
  // "0 TEMP" alone would pass a victim that was starved into silence: it must get every answer too.
  ctx.rows.push({
    section: 'flood',
    what: `${tag}: victim TEMP answers (${VICTIM_KEYS} cold valid lookups, ${VICTIM_SECONDS} s allowed)`,
    value: temp,
    unit: '',
    note: `${kinds(victim.replies)}; ${answered} of ${VICTIM_KEYS} answered in ${fmt(victim.seconds)} s${victim.unanswered ? `, ${victim.unanswered} still unanswered 30 s after the end` : ''}; no flood: ${base.requests} in ${fmt(base.seconds)} s`,
    target: { text: '0 TEMP, all answered', pass: temp === 0 && answered === VICTIM_KEYS },
  });
  // No answer at all has no latency (the C client reports 0): shown as NaN, not as a fast victim.
  const ms = (v: number) => (victim.requests > 0 ? v : NaN);
  const none = victim.requests > 0 ? {} : { note: 'no lookup answered' };
  ctx.rows.push({ section: 'flood', what: `${tag}: victim p50`, value: ms(victim.p50), unit: 'ms', baseline: { name: 'no flood', value: base.p50 }, ...none });
  ctx.rows.push({ section: 'flood', what: `${tag}: victim p99`, value: ms(victim.p99), unit: 'ms', baseline: { name: 'no flood', value: base.p99 }, ...none });
  ctx.rows.push({ section: 'flood', what: `${tag}: attacker answered`, value: a.rate, unit: 'answers/s', note: `${kinds(a.replies)}; ${a.sent} sent; ${a.closedByServer} connections closed by the server` });
  ctx.rows.push({ section: 'flood', what: `${tag}: peak RSS of rcptgate`, value: peak, unit: 'MB', note: searches });
}
