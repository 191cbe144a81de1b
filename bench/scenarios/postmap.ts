/**
 * Issue 20, Postfix's own client (`postmap -q -`, one sequential connection) on 10,000 keys:
 * warm rcptgate against the C do-nothing responder and native `ldap:` (alternating rounds, best
 * of each), cold rcptgate against native `ldap:` (cache flushed before each round), and the CPU
 * each side spends per lookup (rcptgate, slapd, postmap) from /proc/PID/stat. Node's own floors
 * run beside them on the same keys: a do-nothing responder (warm) and a do-nothing LDAP forwarder
 * (cold), the least any Node server in between can cost.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.js';
import type { Context } from '../lib/context.js';
import { cpuMillis } from '../lib/cpu.js';
import { searchCounter } from '../lib/monitor.js';
import { keyFile, socketmapSeq, startNullSocketmap } from '../lib/native.js';
import { ROOT, startNode } from '../lib/procs.js';
import { postmapConfigDir, postmapRun, settle, writeLdapTable, type PostmapRun } from '../lib/postmap.js';
import { startRcptgate, warmUntilSteady } from '../lib/rcptgate.js';
import { fmt } from '../lib/report.js';

const KEYS = 10_000;
const ROUNDS = 3;
const COLD_ROUNDS = 2;

const best = (a: PostmapRun | null, b: PostmapRun) => (!a || b.rate > a.rate ? b : a);

export async function postmapScenario(ctx: Context): Promise<void> {
  const { slapd, tools, rows, notes } = ctx;
  const cfDir = await postmapConfigDir(await mkdirp(path.join(ctx.dir, 'postmap')));
  const rg = ctx.children.add(await startRcptgate({ dir: ctx.dir, name: 'postmap', slapd })) as Awaited<ReturnType<typeof startRcptgate>>;
  const nullPort = await freePort();
  const nul = ctx.children.add(await startNullSocketmap(tools, nullPort));
  const nodePort = await freePort();
  const nodeNul = ctx.children.add(await startNode(path.join(ROOT, 'bench/servers/null-socketmap.ts'), [String(nodePort)], nodePort, { what: 'do-nothing socketmap responder in Node' }));
  const ldapMap = `ldap:${await writeLdapTable(ctx.dir, 'ldap-direct', slapd.port, slapd.baseDN)}`;
  const sm = (port: number) => `socketmap:inet:127.0.0.1:${port}:recipients`;

  const warmKeys = ctx.keys.mixed(KEYS, 1);
  const warmFile = await keyFile(ctx.dir, 'postmap-warm', warmKeys);
  ctx.log('postmap: warming rcptgate with 10,000 keys');
  const warmup = await socketmapSeq(tools, rg.socketmapPort, 8, 120, warmFile);
  if (warmup.requests !== KEYS || warmup.replies.TEMP) notes.push(`postmap warm-up: ${warmup.requests} answers, ${JSON.stringify(warmup.replies)}`);

  let pNull: PostmapRun | null = null;
  let pNode: PostmapRun | null = null;
  let pWarm: PostmapRun | null = null;
  let pLdap: PostmapRun | null = null;
  let warmCpu = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await settle();
    pNull = best(pNull, await postmapRun(cfDir, sm(nullPort), warmFile, KEYS));
    await settle();
    pNode = best(pNode, await postmapRun(cfDir, sm(nodePort), warmFile, KEYS));
    await settle();
    const c0 = cpuMillis(rg.pid);
    pWarm = best(pWarm, await postmapRun(cfDir, sm(rg.socketmapPort), warmFile, KEYS));
    warmCpu += cpuMillis(rg.pid) - c0;
    await settle();
    pLdap = best(pLdap, await postmapRun(cfDir, ldapMap, warmFile, KEYS));
  }
  await nul.stop();
  await nodeNul.stop();
  ctx.log(`postmap warm: C responder ${fmt(pNull!.rate)}/s, rcptgate ${fmt(pWarm!.rate)}/s, ldap: ${fmt(pLdap!.rate)}/s`);
  rows.push({ section: 'postmap', what: 'warm: postmap → do-nothing socketmap responder in C (ceiling)', value: pNull!.rate, unit: 'lookups/s', note: `${pNull!.found} of ${KEYS} answered OK` });
  rows.push({
    section: 'postmap',
    what: "warm: postmap → do-nothing socketmap responder in Node (Node's own floor, for reference)",
    value: pNode!.rate,
    unit: 'lookups/s',
    baseline: { name: 'C responder', value: pNull!.rate },
    note: `${pNode!.found} of ${KEYS} answered OK; rcptgate reaches ${fmt(pWarm!.rate / pNode!.rate)}× of it`,
  });
  rows.push({ section: 'postmap', what: 'warm: postmap → Postfix native ldap: (slapd every time)', value: pLdap!.rate, unit: 'lookups/s', baseline: { name: 'C responder', value: pNull!.rate }, note: `${pLdap!.found} found` });
  rows.push({
    section: 'postmap',
    what: 'warm: postmap → rcptgate (every answer cached)',
    value: pWarm!.rate,
    unit: 'lookups/s',
    baseline: { name: 'C responder', value: pNull!.rate },
    note: `${pWarm!.found} found; rcptgate CPU ${fmt((warmCpu * 1000) / (ROUNDS * KEYS))} µs/lookup; Node's own do-nothing responder reaches ${fmt(pNode!.rate / pNull!.rate)}× (row above): the most any Node server can`,
    target: { text: '≥ 0.90× C responder', pass: pWarm!.rate >= 0.9 * pNull!.rate },
  });
  rows.push({
    section: 'postmap',
    what: 'warm: postmap → rcptgate vs native ldap:',
    value: pWarm!.rate,
    unit: 'lookups/s',
    baseline: { name: 'native ldap:', value: pLdap!.rate },
    target: { text: '≥ 1.0× native ldap:', pass: pWarm!.rate >= pLdap!.rate },
  });
  if (pWarm!.found !== pLdap!.found) notes.push(`postmap warm: rcptgate found ${pWarm!.found} keys, native ldap: ${pLdap!.found}: the answers differ.`);

  // Cold: the same fresh keys for both; rcptgate's cache is flushed before each of its rounds,
  // and its cold path is first brought to the steady state of a long-running service.
  const warm = await warmUntilSteady(tools, rg, await keyFile(ctx.dir, 'postmap-jit', ctx.keys.mixed(40_000, 12)));
  ctx.log(`postmap: rcptgate warmed up: ${warm.text}`);
  const coldFile = await keyFile(ctx.dir, 'postmap-cold', ctx.keys.mixed(KEYS, 2));
  const fwdPort = await freePort();
  const fwd = ctx.children.add(
    await startNode(path.join(ROOT, 'bench/servers/ldap-forwarder.ts'), [String(fwdPort), String(slapd.port), slapd.baseDN], fwdPort, { what: 'do-nothing LDAP forwarder in Node' }),
  );
  await postmapRun(cfDir, sm(fwdPort), warmFile, KEYS); // its JIT warm-up: it caches nothing, so these are cold for it
  const searches = searchCounter(slapd);
  let cRg: PostmapRun | null = null;
  let cFwd: PostmapRun | null = null;
  let cLdap: PostmapRun | null = null;
  const cpu = { rg: 0, slapdRg: 0, slapdLdap: 0, searchesRg: 0, clientLdap: 0, fwd: 0 };
  for (let round = 0; round < COLD_ROUNDS; round++) {
    await rg.flush();
    await settle();
    await searches.start();
    const r0 = cpuMillis(rg.pid);
    const s0 = cpuMillis(slapd.pid!);
    cRg = best(cRg, await postmapRun(cfDir, sm(rg.socketmapPort), coldFile, KEYS));
    cpu.rg += cpuMillis(rg.pid) - r0;
    cpu.slapdRg += cpuMillis(slapd.pid!) - s0;
    cpu.searchesRg += await searches.stop();
    await settle();
    const f0 = cpuMillis(fwd.pid);
    cFwd = best(cFwd, await postmapRun(cfDir, sm(fwdPort), coldFile, KEYS));
    cpu.fwd += cpuMillis(fwd.pid) - f0;
    await settle();
    const s1 = cpuMillis(slapd.pid!);
    const l = await postmapRun(cfDir, ldapMap, coldFile, KEYS);
    cpu.slapdLdap += cpuMillis(slapd.pid!) - s1;
    cpu.clientLdap += l.clientCpuMicros * KEYS;
    cLdap = best(cLdap, l);
  }
  const n = COLD_ROUNDS * KEYS;
  const rgPerLookup = (cpu.rg * 1000) / n;
  const slapdPerSearch = (cpu.slapdLdap * 1000) / n; // native ldap: sends one search per lookup
  const fwdPerLookup = (cpu.fwd * 1000) / n;
  await fwd.stop();
  ctx.log(`postmap cold: rcptgate ${fmt(cRg!.rate)}/s (${fmt(rgPerLookup)} µs CPU/lookup), ldap: ${fmt(cLdap!.rate)}/s (slapd ${fmt(slapdPerSearch)} µs/search)`);
  rows.push({ section: 'postmap', what: 'cold: postmap → Postfix native ldap: (10,000 keys)', value: cLdap!.rate, unit: 'lookups/s', note: `native ldap: CPU in all ${fmt(slapdPerSearch + cpu.clientLdap / n)} µs/lookup (postmap ${fmt(cpu.clientLdap / n)} + slapd ${fmt(slapdPerSearch)})` });
  rows.push({
    section: 'postmap',
    what: "cold: postmap → do-nothing LDAP forwarder in Node (Node's own floor, for reference)",
    value: cFwd!.rate,
    unit: 'lookups/s',
    baseline: { name: 'native ldap:', value: cLdap!.rate },
    note: `${cFwd!.found} found; one search per lookup, no cache; its CPU ${fmt(fwdPerLookup)} µs/lookup (${fmt(fwdPerLookup / slapdPerSearch)}× slapd's per search); rcptgate reaches ${fmt(cRg!.rate / cFwd!.rate)}× its rate at ${fmt(rgPerLookup / fwdPerLookup)}× its CPU`,
  });
  rows.push({
    section: 'postmap',
    what: 'cold: postmap → rcptgate (cache flushed, 10,000 keys)',
    value: cRg!.rate,
    unit: 'lookups/s',
    baseline: { name: 'native ldap:', value: cLdap!.rate },
    note: `${fmt(cpu.searchesRg / n)} LDAP searches/lookup (slapd cn=Monitor); slapd ${fmt((cpu.slapdRg * 1000) / n)} µs/lookup behind rcptgate; Node's own do-nothing forwarder reaches ${fmt(cFwd!.rate / cLdap!.rate)}× (row above): the most a Node server asking the directory for each lookup can`,
    target: { text: '≥ 1.0× native ldap:', pass: cRg!.rate >= cLdap!.rate },
  });
  rows.push({
    section: 'postmap',
    what: 'cold: rcptgate server CPU per lookup',
    value: rgPerLookup,
    unit: 'µs',
    baseline: { name: "slapd's CPU per search", value: slapdPerSearch },
    target: { text: "≤ slapd's CPU per search", pass: rgPerLookup <= slapdPerSearch },
  });
  if (cFwd!.found !== cLdap!.found) notes.push(`postmap cold: the Node forwarder found ${cFwd!.found} keys, native ldap: ${cLdap!.found}: the answers differ.`);
  if (cRg!.found !== cLdap!.found) notes.push(`postmap cold: rcptgate found ${cRg!.found} keys, native ldap: ${cLdap!.found}: the answers differ.`);
  await rg.stop();
  await snapshotCold(ctx, cfDir, warmFile, coldFile, cLdap!);
}

/**
 * The same cold keys asked of an rcptgate that keeps a snapshot of the directory (`sync.enabled`,
 * everything else default): present addresses are answered from memory, the rest still asked
 * live (`sync.confirmMisses`). For reference: how a large backup MX answers never-asked keys.
 */
async function snapshotCold(ctx: Context, cfDir: string, warmFile: string, coldFile: string, native: PostmapRun): Promise<void> {
  // A full listing needs an account without the anonymous size limit.
  const pwFile = path.join(ctx.dir, 'postmap-snapshot.pw');
  await writeFile(pwFile, ctx.slapd.servicePassword, { mode: 0o600 });
  const rg = ctx.children.add(
    await startRcptgate({
      dir: ctx.dir,
      name: 'postmap-snapshot',
      slapd: ctx.slapd,
      ldap: { bindDN: ctx.slapd.serviceDN, bindPasswordFile: pwFile },
      extra: { sync: { enabled: true, snapshotPath: path.join(ctx.dir, 'postmap-snapshot.bin') } },
    }),
  ) as Awaited<ReturnType<typeof startRcptgate>>;
  const t0 = Date.now();
  while (!/^rcptgate_snapshot_entries [1-9]/m.test(await rg.metrics())) {
    if (Date.now() - t0 > 120_000) throw new Error(`the snapshot sync did not finish within 120 s: ${rg.output().slice(-600)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const syncSeconds = (Date.now() - t0) / 1000;
  const entries = /^rcptgate_snapshot_entries (\d+)/m.exec(await rg.metrics())![1]!;
  const sm = `socketmap:inet:127.0.0.1:${rg.socketmapPort}:recipients`;
  await postmapRun(cfDir, sm, warmFile, KEYS); // JIT warm-up on other keys
  let run: PostmapRun | null = null;
  let cpu = 0;
  for (let round = 0; round < COLD_ROUNDS; round++) {
    await rg.flush();
    const c0 = cpuMillis(rg.pid);
    run = best(run, await postmapRun(cfDir, sm, coldFile, KEYS));
    cpu += cpuMillis(rg.pid) - c0;
  }
  ctx.rows.push({
    section: 'postmap',
    what: 'cold: postmap → rcptgate with a directory snapshot (sync.enabled; misses still asked live), for reference',
    value: run!.rate,
    unit: 'lookups/s',
    baseline: { name: 'native ldap:', value: native.rate },
    note: `${run!.found} found; ${entries} snapshot entries, synced in ${fmt(syncSeconds)} s; rcptgate CPU ${fmt((cpu * 1000) / (COLD_ROUNDS * KEYS))} µs/lookup`,
  });
  if (run!.found !== native.found) ctx.notes.push(`postmap cold with a snapshot: rcptgate found ${run!.found} keys, native ldap: ${native.found}: the answers differ.`);
  await rg.stop();
}

async function mkdirp(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}
