/**
 * Issue 20 end to end: smtp-source → a private Postfix backup MX → rcptgate (socketmap) or
 * Postfix's native ldap: table, on the same slapd. For each of warm, cold, directory 5 ms away
 * (delaying proxy, cold, default settings) and directory down: RCPT/s, CPU per RCPT of the whole
 * system (Postfix master and daemons + rcptgate + slapd; not smtp-source, not the proxy), and
 * the 250/550/451 replies against ground truth.
 */
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.js';
import type { Context } from '../lib/context.js';
import { cpuMillis } from '../lib/cpu.js';
import { searchCounter } from '../lib/monitor.js';
import { countReplies, smtpSource, startMx, type Mx, type SmtpCounts } from '../lib/mx.js';
import { writeLdapTable } from '../lib/postmap.js';
import { keyFile, startNullSocketmap } from '../lib/native.js';
import { ROOT, startNode } from '../lib/procs.js';
import { startRcptgate, warmUntilSteady, type Rcptgate } from '../lib/rcptgate.js';
import { fmt, type Row } from '../lib/report.js';

const SESSIONS = 10;
const RCPTS = 5;
const PROXY_DELAY_MS = 5;

interface Contender {
  name: string;
  mx: Mx;
  /** The socketmap server whose CPU counts as rcptgate's share (rcptgate, or a do-nothing responder). */
  server?: { pid: number };
  logOffset: number;
}

interface E2eRun {
  rate: number;
  cpuPerRcpt: number;
  /** The same CPU by part, µs per RCPT. */
  parts: { postfix: number; rcptgate: number; slapd: number };
  counts: SmtpCounts;
}

export async function e2eScenario(ctx: Context, messages: number): Promise<void> {
  const { slapd, dir } = ctx;
  const numbered = ctx.numberedUsers;
  if (messages * RCPTS > numbered) throw new Error(`e2e: ${messages * RCPTS} recipients but only ${numbered} numbered users`);
  const truth = (n: number) => (n % 2 === 1 && n <= numbered ? 250 : 550);
  const rg = ctx.children.add(await startRcptgate({ dir, name: 'e2e', slapd })) as Rcptgate;
  const ldapCf = await writeLdapTable(dir, 'e2e-ldap', slapd.port, slapd.baseDN);
  const native: Contender = { name: 'native ldap:', mx: await startMx(`ldap:${ldapCf}`), logOffset: 0 };
  const ours: Contender = { name: 'rcptgate', mx: await startMx(`socketmap:inet:127.0.0.1:${rg.socketmapPort}:recipients`), server: rg, logOffset: 0 };
  const mxs = [native.mx, ours.mx];
  try {
    const run = async (c: Contender, count: number, expect: (n: number) => number, slapdUp = true): Promise<E2eRun> => {
      const cpu = async () => ({ postfix: await c.mx.cpuMillis(), rcptgate: c.server ? cpuMillis(c.server.pid) : 0, slapd: slapdUp ? cpuMillis(slapd.pid!) : 0 });
      const before = await cpu();
      const t0 = process.hrtime.bigint();
      await smtpSource(c.mx.port, SESSIONS, count, RCPTS);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const after = await cpu();
      const counts = await countReplies(c.mx, c.logOffset, count * RCPTS, expect);
      c.logOffset = counts.offset;
      const perRcpt = (k: keyof typeof after) => ((after[k] - before[k]) * 1000) / Math.max(1, counts.rcpts);
      const parts = { postfix: perRcpt('postfix'), rcptgate: perRcpt('rcptgate'), slapd: perRcpt('slapd') };
      return { rate: counts.rcpts / seconds, cpuPerRcpt: parts.postfix + parts.rcptgate + parts.slapd, parts, counts };
    };
    // Warm-up of both paths (JIT, connections), not measured.
    await run(ours, 20, truth);
    await run(native, 20, truth);
    // A long-running rcptgate is JIT-warm on its cold path; 100 RCPTs do not get it there.
    const jitKeys = await keyFile(ctx.dir, 'e2e-jit', ctx.keys.mixed(40_000, 13));
    ctx.log(`e2e: rcptgate warmed up: ${(await warmUntilSteady(ctx.tools, rg, jitKeys)).text}`);

    await rg.flush();
    const coldRg = await run(ours, messages, truth);
    const coldNative = await run(native, messages, truth);
    const warmNative = await run(native, messages, truth);
    const warmRg = await run(ours, messages, truth); // the same recipients again: all cached
    const warmCpu = report(ctx, 'warm', warmRg, warmNative, { cpu: 0.7 }).cpu;
    report(ctx, 'cold', coldRg, coldNative, { cpu: 1.0 });
    const floor = await floors(ctx, messages, run, mxs);
    // Postfix's own share varies between runs by more than a server costs, so the floor takes the
    // share Postfix had in rcptgate's own run and adds what a do-nothing responder costs instead of rcptgate.
    const least = (r: E2eRun) => fmt((warmRg.parts.postfix + r.parts.rcptgate) / warmNative.cpuPerRcpt);
    warmCpu.note += `; with Postfix's share of this run, a server costing what the C do-nothing responder costs (${fmt(floor.c.parts.rcptgate)} µs/RCPT) would reach ${least(floor.c)}× native, Node's (${fmt(floor.node.parts.rcptgate)}) ${least(floor.node)}× (warm floors below)`;

    // Directory 5 ms away: both clients behind the same delaying proxy, rcptgate with defaults.
    const proxyPort = await freePort();
    const proxy = ctx.children.add(await startNode(path.join(ROOT, 'bench/servers/delay-proxy.ts'), [String(proxyPort), String(slapd.port), String(PROXY_DELAY_MS)], proxyPort, { what: 'delaying proxy' }));
    const remote = ctx.children.add(await startRcptgate({ dir, name: 'e2e-remote', slapd, ldapPort: proxyPort })) as Rcptgate;
    const farCf = await writeLdapTable(dir, 'e2e-ldap-far', proxyPort, slapd.baseDN);
    const farNative: Contender = { name: 'native ldap:', mx: await startMx(`ldap:${farCf}`), logOffset: 0 };
    const farOurs: Contender = { name: 'rcptgate', mx: await startMx(`socketmap:inet:127.0.0.1:${remote.socketmapPort}:recipients`), server: remote, logOffset: 0 };
    mxs.push(farNative.mx, farOurs.mx);
    await run(farOurs, 10, truth);
    await run(farNative, 10, truth);
    ctx.log(`e2e: rcptgate (directory ${PROXY_DELAY_MS} ms away) warmed up: ${(await warmUntilSteady(ctx.tools, remote, jitKeys)).text}`);
    await remote.flush();
    const farRg = await run(farOurs, Math.ceil(messages / 2), truth);
    const searches = searchCounter(slapd);
    await searches.start();
    const farN = await run(farNative, Math.ceil(messages / 2), truth);
    const nativeTrips = (await searches.stop()) / Math.max(1, farN.counts.rcpts);
    const farRate = report(ctx, `cold, directory ${PROXY_DELAY_MS} ms away, default settings`, farRg, farN, { rate: 1.5 }).rate;
    farRate.note += `; ${bestCase(warmRg, farN, nativeTrips)}`;
    await farOurs.mx.instance.close();
    await farNative.mx.instance.close();
    await remote.stop();
    await proxy.stop();

    // Directory down: every answer must be 451 (rcptgate's cache flushed first: nothing to serve stale).
    await rg.flush();
    await slapd.stop();
    try {
      const down = Math.ceil(messages / 5);
      const downRg = await run(ours, down, () => 451, false);
      const downNative = await run(native, down, () => 451, false);
      report(ctx, 'directory down (slapd stopped), cache empty', downRg, downNative, {});
    } finally {
      await slapd.start();
    }
    await rg.stop();
  } finally {
    for (const mx of mxs) await mx.instance.close();
  }
}

/**
 * What a socketmap server costs per RCPT at this request rate when it does nothing: the C and the
 * Node do-nothing responders behind their own MX (every RCPT accepted). One reply per wake-up
 * is the regime of a real MX, so this is the floor for rcptgate's share of the warm CPU.
 */
async function floors(ctx: Context, messages: number, run: (c: Contender, count: number, expect: (n: number) => number, slapdUp?: boolean) => Promise<E2eRun>, mxs: Mx[]): Promise<{ c: E2eRun; node: E2eRun }> {
  const cPort = await freePort();
  const c = ctx.children.add(await startNullSocketmap(ctx.tools, cPort));
  const nodePort = await freePort();
  const node = ctx.children.add(await startNode(path.join(ROOT, 'bench/servers/null-socketmap.ts'), [String(nodePort)], nodePort, { what: 'do-nothing socketmap responder in Node' }));
  const accept = () => 250;
  const floor: Partial<Record<'C' | 'Node', E2eRun>> = {};
  for (const [name, child, port] of [['C', c, cPort], ['Node', node, nodePort]] as const) {
    const mx = await startMx(`socketmap:inet:127.0.0.1:${port}:recipients`);
    mxs.push(mx);
    const contender: Contender = { name, mx, server: child, logOffset: 0 };
    await run(contender, 20, accept, false);
    const r = await run(contender, messages, accept, false);
    floor[name] = r;
    ctx.rows.push({
      section: 'e2e',
      what: `warm floor: do-nothing socketmap responder in ${name}, its CPU per RCPT (for reference)`,
      value: r.parts.rcptgate,
      unit: 'µs',
      note: `${fmt(r.rate)} RCPT/s; Postfix ${fmt(r.parts.postfix)} µs/RCPT`,
    });
    await mx.instance.close();
  }
  await c.stop();
  await node.stop();
  return { c: floor.C!, node: floor.Node! };
}

function codes(c: SmtpCounts): string {
  const x = (k: number) => c.codes[k] ?? 0;
  const other = c.rcpts - x(250) - x(550) - x(451);
  return `250 ${x(250)} / 550 ${x(550)} / 451 ${x(451)}${other ? ` / other ${other}` : ''}; wrong ${c.wrong}${c.examples.length ? ` (e.g. ${c.examples.join(', ')})` : ''}`;
}

type Noted = Row & { note: string };

/** Pushes the scenario's rows; returns its rate and CPU rows (a later measurement may add to their notes). */
function report(ctx: Context, scenario: string, ours: E2eRun, native: E2eRun, targets: { cpu?: number; rate?: number }): { rate: Noted; cpu: Noted } {
  const rows = ctx.rows;
  ctx.log(`e2e ${scenario}: rcptgate ${fmt(ours.rate)} RCPT/s ${fmt(ours.cpuPerRcpt)} µs/RCPT [${codes(ours.counts)}]; native ${fmt(native.rate)} RCPT/s ${fmt(native.cpuPerRcpt)} µs/RCPT [${codes(native.counts)}]`);
  rows.push({ section: 'e2e', what: `${scenario}: native ldap: RCPT/s`, value: native.rate, unit: 'RCPT/s', note: `${fmt(native.cpuPerRcpt)} µs CPU/RCPT; ${codes(native.counts)}` });
  const rateRow = {
    section: 'e2e',
    what: `${scenario}: rcptgate RCPT/s`,
    value: ours.rate,
    unit: 'RCPT/s',
    baseline: { name: 'native ldap:', value: native.rate },
    note: codes(ours.counts),
    ...(targets.rate ? { target: { text: `≥ ${targets.rate}× native ldap:`, pass: ours.rate >= targets.rate * native.rate } } : {}),
  };
  rows.push(rateRow);
  const cpuRow = {
    section: 'e2e',
    what: `${scenario}: CPU per RCPT, whole system (Postfix + rcptgate + slapd)`,
    value: ours.cpuPerRcpt,
    unit: 'µs',
    baseline: { name: 'native ldap: (Postfix + slapd)', value: native.cpuPerRcpt },
    note: `Postfix ${fmt(ours.parts.postfix)} + rcptgate ${fmt(ours.parts.rcptgate)} + slapd ${fmt(ours.parts.slapd)}; native: Postfix ${fmt(native.parts.postfix)} + slapd ${fmt(native.parts.slapd)}`,
    ...(targets.cpu ? { target: { text: `≤ ${targets.cpu.toFixed(2)}× native ldap:`, pass: ours.cpuPerRcpt <= targets.cpu * native.cpuPerRcpt } } : {}),
  };
  rows.push(cpuRow);
  const wrong = ours.counts.wrong + native.counts.wrong;
  rows.push({ section: 'e2e', what: `${scenario}: wrong answers of rcptgate`, value: ours.counts.wrong, unit: '', note: `native ldap: ${native.counts.wrong}`, target: { text: '0', pass: ours.counts.wrong === 0 && ours.counts.rcpts > 0 } });
  if (wrong) ctx.notes.push(`e2e ${scenario}: wrong answers — rcptgate: ${codes(ours.counts)}; native ldap:: ${codes(native.counts)}`);
  return { rate: rateRow, cpu: cpuRow };
}

/**
 * The most RCPT/s any server between Postfix and a distant directory can reach against native
 * ldap: when recipients are cold and distinct: each RCPT still waits one directory round trip.
 * Native's RCPT time is T = C + n·R (n LDAP searches per RCPT, counted on slapd); C, the time per
 * RCPT without any directory wait, is taken from the warm rcptgate run; so R = (T − C) / n and the
 * best case is C + R per RCPT.
 */
function bestCase(warm: E2eRun, native: E2eRun, nativeTrips: number): string {
  const c = SESSIONS / warm.rate;
  const t = SESSIONS / native.rate;
  const r = (t - c) / Math.max(1, nativeTrips);
  return `native asks ${fmt(nativeTrips)} LDAP searches per RCPT (the "@domain" wildcard after an unknown user); with one round trip per RCPT and nothing else, a server in between reaches at most ${fmt(t / (c + r))}× (RCPT time ${fmt(c * 1000)} ms warm + one round trip ${fmt(r * 1000)} ms, against native's ${fmt(t * 1000)} ms)`;
}
