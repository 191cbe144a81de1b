/**
 * A backup MX's bad day, end to end: a real Postfix (smtpd with relay_recipient_maps as a
 * socketmap, the same map through proxymap, and policy delegation) in front of rcptgate over a
 * real slapd, under a spam run of many concurrent SMTP sessions, mostly unknown recipients.
 * Meanwhile slapd is stopped and restarted, hung (SIGSTOP), slowed, a user is added and one
 * deleted, the config is reloaded and the cache flushed. Every RCPT reply is checked against the
 * ground truth of the moment it was asked, and Postfix's log must show no lookup problem but
 * the temporary errors behind the 451s seen. A quiet spell longer than rcptgate's idle timeout
 * and shorter than Postfix's closes the connections smtpd and proxymap hold under their feet.
 * What only the real MTA path shows: Postfix's connection reuse and reconnects, proxymap,
 * smtpd's handling of TEMP, dozens of smtpd processes at once, and how long after slapd
 * returns valid recipients stay deferred (printed as a diagnostic, not bounded tightly).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { freePort } from '../helpers/ports.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const USERS = 200;
const WORKERS = 24;
const RCPTS = 6;
const POSITIVE_TTL_MS = 2_000;
const NEGATIVE_TTL_MS = 2_000;
const STALE_MS = 3_000;
/** rcptgate's idle timeout, below Postfix's 10 s for socketmap connections. */
const IDLE_MS = 3_000;
/** A deleted address may be accepted while a positive answer lives, then served stale. */
const VALID_GRACE_MS = POSITIVE_TTL_MS + STALE_MS + 500;
/** A created address may be refused while a negative cached just before lives. */
const UNKNOWN_GRACE_MS = NEGATIVE_TTL_MS + 500;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const now = () => performance.now();
const mail = (uid: string) => `${uid}@example.com`;

interface Answer {
  port: string;
  address: string;
  code: number;
  text: string;
  sent: number;
  received: number;
}

/** One SMTP session: EHLO, MAIL, each RCPT timed, QUIT. A dropped connection ends it. */
async function session(port: number, label: string, rcpts: string[], out: Answer[]): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.setEncoding('utf8');
  let buffered = '';
  let lines: string[] = [];
  const waiters: Array<(reply: string) => void> = [];
  socket.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      lines.push(line);
      if (line[3] !== '-') {
        const reply = lines.join('\n');
        lines = [];
        waiters.shift()?.(reply);
      }
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve('000 connection closed')));
  const reply = () => Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), closed]);
  const send = (command: string) => {
    const r = reply();
    socket.write(`${command}\r\n`);
    return r;
  };
  try {
    await reply();
    await send('EHLO spam.client.test');
    await send('MAIL FROM:<bounce@spam.client.test>');
    for (const address of rcpts) {
      const sent = now();
      const text = await send(`RCPT TO:<${address}>`);
      out.push({ port: label, address, code: Number(text.slice(0, 3)), text, sent, received: now() });
      if (text.startsWith('000')) return;
    }
    await send('QUIT');
  } finally {
    socket.destroy();
  }
}

/** When each address existed: [from, mustFrom] added, [mustUntil, until] removed (with grace). */
class Truth {
  private readonly spans = new Map<string, { from: number; mustFrom: number; until: number; mustUntil: number }>();
  added(address: string, t0: number, t1: number): void {
    this.spans.set(address, { from: t0, mustFrom: t1, until: Infinity, mustUntil: Infinity });
  }
  removed(address: string, t0: number, t1: number): void {
    const s = this.spans.get(address)!;
    s.mustUntil = t0;
    s.until = t1 + VALID_GRACE_MS;
  }
  acceptOk(a: Answer): boolean {
    const s = this.spans.get(a.address);
    return !!s && s.from <= a.received && s.until >= a.sent;
  }
  rejectOk(a: Answer): boolean {
    const s = this.spans.get(a.address);
    return !s || !(s.mustFrom + UNKNOWN_GRACE_MS <= a.sent && s.mustUntil >= a.received);
  }
  exists(address: string): boolean {
    return this.spans.has(address);
  }
}

let ldap: Slapd;
let proxy: FaultProxy;
let app: App | undefined;
let mx: PostfixInstance | undefined;
let dir: string;

before(async () => {
  requirePostfixTools();
  ldap = await startSlapd({ generatedUsers: USERS });
  proxy = await startFaultProxy(ldap.port);
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-badday-'));
});

after(async () => {
  await mx?.close();
  await app?.close();
  await proxy?.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function configText(passwordFile: string, level: string): string {
  return JSON.stringify({
    listen: { http: null, socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [proxy.url], bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, baseDN: ldap.baseDN, timeout: '2s' } },
    cache: { positiveTtl: `${POSITIVE_TTL_MS}ms`, negativeTtl: `${NEGATIVE_TTL_MS}ms`, staleIfError: `${STALE_MS}ms` },
    // Shorter than Postfix's 10 s socketmap idle: rcptgate closes connections smtpd still holds.
    server: { idleTimeout: `${IDLE_MS}ms` },
    // A spam run from one address is what harvest protection stops; here it would hide the verdicts.
    policy: { harvest: { maxUnknown: 1_000_000 } },
    log: { level },
  });
}

/** One Postfix, three smtpd listeners: proxy:socketmap (main.cf), socketmap direct, policy. */
async function startBackupMx(socketmap: string, policy: string): Promise<Array<[string, number]>> {
  const directPort = await freePort();
  const policyPort = await freePort();
  mx = await startPostfix({
    mainCf: {
      relay_domains: `socketmap:${socketmap}:domains`,
      relay_recipient_maps: `proxy:socketmap:${socketmap}:recipients`,
      // Spam sessions collect errors; smtpd must not slow down or hang up on the prober.
      smtpd_error_sleep_time: '0',
      smtpd_soft_error_limit: '1000',
      smtpd_hard_error_limit: '1000',
      // Nothing is ever delivered here: without this each session's first 250 waits 1 s for a
      // flow-control token (Postfix's own input rate limit, not the lookup).
      in_flow_delay: '0s',
    },
    masterCfExtra: [
      `127.0.0.1:${directPort} inet n - n - - smtpd -o relay_recipient_maps=socketmap:${socketmap}:recipients`,
      `127.0.0.1:${policyPort} inet n - n - - smtpd -o relay_recipient_maps= -o {smtpd_recipient_restrictions=check_policy_service ${policy}, reject_unauth_destination}`,
    ].join('\n'),
  });
  return [
    ['proxymap', mx.port],
    ['socketmap', directPort],
    ['policy', policyPort],
  ];
}

/** The spam run: WORKERS sessions at a time, RCPTS recipients each, one of them valid. */
class SpamRun {
  readonly answers: Answer[] = [];
  /** Addresses the script touches: asked often, so each change is seen at once. */
  readonly hot: string[] = [];
  private stopped = false;
  private lull: Promise<void> | null = null;
  private spam = 0;
  private readonly workers: Promise<void>[];

  constructor(private readonly ports: Array<[string, number]>) {
    this.workers = Array.from({ length: WORKERS }, (_, w) => this.worker(w));
  }

  private async worker(w: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      if (this.lull) await this.lull;
      const [label, port] = this.ports[(w + n) % this.ports.length]!;
      // Fresh unknowns (a directory search each) and repeated ones (cached negatives).
      const rcpts: string[] = [];
      for (let i = 0; i < RCPTS - 1; i++) rcpts.push(mail(`spam${i % 2 === 0 || this.spam < 100 ? this.spam++ : (this.spam * 7919 + i) % this.spam}`));
      const hot = this.hot.length > 0 && n % 3 === 0;
      rcpts.splice((w + n) % RCPTS, 0, hot ? this.hot[(w + n) % this.hot.length]! : mail(`user${1 + ((w * 97 + n * 13) % USERS)}`));
      await session(port, label, rcpts, this.answers);
    }
  }

  /** No new session for `ms`; sessions in progress finish. */
  async pause(ms: number): Promise<void> {
    this.lull = sleep(ms);
    await this.lull;
    this.lull = null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }
}

interface Timeline {
  start: number;
  /** [begin, end] of each time the directory could not answer. */
  outages: Array<[number, number]>;
  /** When slapd answered again after each outage. */
  returns: number[];
  /** The 3 s after traffic resumed from the quiet spell. */
  resumed: number;
  marks: string[];
}

/** The bad day. Returns when things happened, for the checks. */
async function badDay(run: SpamRun, truth: Truth, reload: (level: string) => Promise<void>): Promise<Timeline> {
  const start = now();
  const tl: Timeline = { start, outages: [], returns: [], resumed: 0, marks: [] };
  const mark = (name: string) => tl.marks.push(`${name}@${Math.round(now() - start)}`);
  const outage = async (name: string, begin: () => Promise<void>, hold: number, end: () => Promise<void> | void) => {
    const t0 = now();
    mark(name);
    await begin();
    await sleep(hold);
    await end();
    tl.outages.push([t0, now()]);
    tl.returns.push(now());
    mark('slapd back');
  };
  const dn = (uid: string) => `uid=${uid},ou=people,dc=example,dc=com`;
  const change = async (uid: string, ldif: string, effect: (t0: number, t1: number) => void) => {
    run.hot.push(mail(uid));
    const t0 = now();
    await ldap.modify(ldif);
    effect(t0, now());
    mark(`${ldif.includes('changetype: add') ? 'added' : 'deleted'} ${uid}`);
  };
  const add = (uid: string) =>
    change(uid, `dn: ${dn(uid)}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${mail(uid)}\n`, (t0, t1) => truth.added(mail(uid), t0, t1));
  const del = (uid: string) => change(uid, `dn: ${dn(uid)}\nchangetype: delete\n`, (t0, t1) => truth.removed(mail(uid), t0, t1));

  await sleep(3_000);
  // Asked before it exists (a cached unknown), then created; one deleted while cached valid.
  run.hot.push(mail('newcomer1'), mail('user5'));
  await sleep(1_000);
  await add('newcomer1');
  await del('user5');
  await sleep(3_000);
  await outage('slapd stopped', () => ldap.stop(), 5_000, () => ldap.start());
  await sleep(4_000);
  await reload('fatal');
  app!.validator.flush();
  mark('reloaded, cache flushed');
  await sleep(3_000);
  await outage('slapd hung (SIGSTOP)', () => ldap.pause(), 4_000, () => ldap.resume());
  await sleep(3_000);
  await add('newcomer2');
  await del('user9');
  mark('slapd slowed to 2 kB/s');
  proxy.downBytesPerSecond = 2_000;
  await sleep(4_000);
  proxy.downBytesPerSecond = 0;
  await sleep(3_000);
  mark('quiet spell');
  await run.pause(IDLE_MS + 1_500);
  tl.resumed = now();
  mark('traffic resumes');
  await sleep(3_000);
  const stopped = async () => {
    await ldap.stop();
    await sleep(1_000);
    await reload('silent');
    app!.validator.flush();
  };
  await outage('slapd stopped, reloaded and flushed meanwhile', stopped, 3_000, () => ldap.start());
  await sleep(5_000);
  return tl;
}

/** Every reply against the truth: 250 and 550 must be right, 4xx only as 451 4.3.0. */
function judge(answers: Answer[], truth: Truth, start: number): { wrong: string[]; counts: Record<string, number> } {
  const wrong: string[] = [];
  const counts: Record<string, number> = {};
  for (const a of answers) {
    counts[`${a.port} ${a.code}`] = (counts[`${a.port} ${a.code}`] ?? 0) + 1;
    const at = `${a.address} via ${a.port} at ${Math.round(a.sent - start)} ms: ${a.text}`;
    if (a.code === 250) {
      if (!truth.acceptOk(a)) wrong.push(`accepted ${at}`);
    } else if (a.code === 550) {
      if (!/^550 5\.1\.1 /.test(a.text) || !truth.rejectOk(a)) wrong.push(`rejected ${at}`);
    } else if (!/^451 4\.3\.0 /.test(a.text)) {
      wrong.push(`unexpected ${at}`);
    }
  }
  return { wrong, counts };
}

/** After slapd returned: how long existing addresses stayed deferred, when the first 550 came. */
function recovery(answers: Answer[], truth: Truth, since: number, until: number): string {
  const window = answers.filter((a) => a.sent >= since && a.received < until);
  const deferred = window.filter((a) => a.code === 451 && truth.exists(a.address));
  const last451 = deferred.reduce((m, a) => Math.max(m, a.received), since);
  const first550 = window.find((a) => a.code === 550);
  return `valid deferred until +${Math.round(last451 - since)} ms (${deferred.length} replies), first 550 at +${first550 ? Math.round(first550.received - since) : '-'} ms`;
}

test('a backup MX under a spam run through directory outages, slowness, churn, reload and flush: no wrong reply', { timeout: 150_000 }, async (t) => {
  const passwordFile = path.join(dir, 'bind-password');
  await writeFile(passwordFile, ldap.servicePassword, { mode: 0o600 });
  const configFile = path.join(dir, 'rcptgate.yaml');
  await writeFile(configFile, configText(passwordFile, 'silent'));
  app = await createApp({ loaded: loadConfig(configFile, {}), logger: silentLogger() });
  await app.start();
  const ports = await startBackupMx(`inet:127.0.0.1:${app.addresses.socketmap!.port}`, `inet:127.0.0.1:${app.addresses.policy!.port}`);
  const reload = async (level: string) => {
    await writeFile(configFile, configText(passwordFile, level));
    assert.equal(await app!.reload(configFile), true, 'the reload is accepted');
  };
  const truth = new Truth();
  for (let k = 1; k <= USERS; k++) truth.added(mail(`user${k}`), -Infinity, -Infinity);

  const run = new SpamRun(ports);
  let tl: Timeline;
  try {
    tl = await badDay(run, truth, reload);
  } finally {
    await run.stop();
  }
  const { answers } = run;
  const { wrong, counts } = judge(answers, truth, tl.start);
  const ends = [...tl.outages.slice(1).map(([b]) => b), Infinity];
  const recoveries = tl.returns.map((r, i) => recovery(answers, truth, r, ends[i]!));
  const healthy451 = answers.filter((a) => a.code === 451 && ((a.received < tl.outages[0]![0]) || (a.sent >= tl.resumed && a.received < tl.outages[2]![0])));
  const closed = (await app.metrics.connectionsClosed.get()).values;
  const idleClosed = (frontend: string) => closed.find((v) => v.labels.frontend === frontend && v.labels.reason === 'idle')?.value ?? 0;
  const protocolErrors = (await app.metrics.protocolErrors.get()).values.reduce((n, v) => n + v.value, 0);
  const warnings = (await mx!.maillog()).split('\n').filter((l) => /warning|error|fatal|panic/i.test(l));
  const tempLines = warnings.filter((l) => /socketmap server temporary error: /.test(l)).length;
  const odd = warnings.filter((l) => !/socketmap server temporary error: |recipients lookup error for "/.test(l));
  const summary = [
    `${answers.length} RCPTs, ${wrong.length} wrong; ${JSON.stringify(counts)}`,
    ...recoveries.map((r, i) => `recovery after outage ${i + 1}: ${r}`),
    `idle-closed by rcptgate: socketmap ${idleClosed('socketmap')}, policy ${idleClosed('policy')}; protocol errors ${protocolErrors}`,
    `postfix warnings: ${tempLines} temporary-error lines, ${odd.length} others`,
    `timeline ${tl.marks.join(', ')}`,
  ].join('\n');
  t.diagnostic(summary);

  assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} wrong replies of ${answers.length}`);
  for (const [label] of ports) for (const code of [250, 550, 451]) assert.ok((counts[`${label} ${code}`] ?? 0) > 0, `${label} answered ${code} at some point`);
  // With the directory healthy (before the first outage, after the quiet spell), nothing defers.
  assert.deepEqual(healthy451.map((a) => `${a.address} via ${a.port}: ${a.text}`).slice(0, 10), []);
  assert.ok(idleClosed('socketmap') > 0 && idleClosed('policy') > 0, 'rcptgate closed idle connections Postfix held');
  assert.equal(protocolErrors, 0);
  // Postfix logs one line per TEMP it got (smtpd or proxymap) and nothing else about rcptgate.
  assert.deepEqual(odd.slice(0, 10), []);
  assert.equal(tempLines, (counts['socketmap 451'] ?? 0) + (counts['proxymap 451'] ?? 0));
  // After the last outage, within the last 5 s of the run, unknown and valid are answered again.
  const last = answers.filter((a) => a.sent >= tl.returns.at(-1)!);
  assert.ok(last.some((a) => a.code === 550) && last.some((a) => a.code === 250 && truth.exists(a.address)), recoveries.at(-1));
});
