/**
 * Fault injection under load: real slapd, the real app, real socketmap connections. While a
 * steady stream of lookups (existing users and never-seen addresses) runs, slapd is killed and
 * restarted, frozen with SIGSTOP and resumed, or the first of two directory URLs dies. Every
 * answer is compared with the ground truth (user1..userN exist, ghost-* do not):
 *  - zero wrong verdicts: never NOTFOUND for an existing user, never OK for a ghost;
 *  - while the directory is down or hangs, uncached lookups answer TEMP within the configured
 *    timeout plus a generous margin, and connections to the directory stay bounded;
 *  - once the directory is back, fresh lookups are answered correctly within 5 s, without
 *    restarting anything.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { BreakerDirectory } from '../../src/directory/breaker.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import type { DirectoryAnswer } from '../../src/directory/types.js';
import { DirectoryError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { closedPortUrl, startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { isWrong, summary, type LookupSample } from '../helpers/lookup-samples.js';

const USERS = 2_000;
/** Users 1..LOAD_USERS feed the load; the rest stay uncached for recovery checks. */
const LOAD_USERS = 1_500;
const TIMEOUT_MS = 1_000;
/** "Within the timeout" with room for a loaded CI machine (the engine's own backstop is +500 ms). */
const ANSWER_BOUND_MS = TIMEOUT_MS + 2_500;
const RECOVERY_MS = 5_000;
const POOL_SIZE = 4;

interface Sample extends LookupSample {
  address: string;
}

const rand = (n: number) => Math.floor(Math.random() * n);
let ghostSeq = 0;
const ghost = () => `ghost-${process.pid}-${++ghostSeq}-${rand(1e9)}@example.com`;
let reserved = LOAD_USERS;
/** An existing user nothing has asked for yet: a guaranteed cache miss. */
const freshUser = () => {
  if (reserved >= USERS) throw new Error('ran out of reserved users');
  return `user${++reserved}@example.com`;
};

/** Sequential lookups on `connections` socketmap connections until stop(). */
class Load {
  readonly samples: Sample[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(private readonly clients: SocketmapClient[]) {
    this.loops = clients.map((c) => this.loop(c));
  }

  private async loop(client: SocketmapClient): Promise<void> {
    while (this.running) {
      const exists = Math.random() < 0.5;
      const address = exists ? `user${1 + rand(LOAD_USERS)}@example.com` : ghost();
      const sample = await ask(client, address, exists).catch(() => null);
      if (!sample) return; // connection closed by cleanup after a failed assertion
      this.samples.push(sample);
    }
  }

  since(t: number): Sample[] {
    return this.samples.filter((s) => s.at >= t);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function ask(client: SocketmapClient, address: string, exists: boolean): Promise<Sample> {
  const at = Date.now();
  const reply = await client.query('recipients', address);
  return { address, exists, reply, ms: Date.now() - at, at };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ESTABLISHED client connections to 127.0.0.1:port, from /proc/net/tcp (Linux). */
async function connectionsTo(port: number): Promise<number> {
  const text = await readFile('/proc/net/tcp', 'utf8').catch(() => {
    throw new Error('this test needs /proc/net/tcp (Linux procfs) to count directory connections');
  });
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return text
    .split('\n')
    .slice(1)
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[2] === remote && f[3] === '01';
    }).length;
}

/** Polls fresh (uncached) lookups until one existing user is OK and one ghost NOTFOUND. */
async function recoveryTime(client: SocketmapClient, since: number, samples: Sample[]): Promise<number> {
  for (;;) {
    const [u, g] = await Promise.all([ask(client, freshUser(), true), ask(client, ghost(), false)]);
    samples.push(u, g);
    if (u.reply.startsWith('OK') && g.reply.startsWith('NOTFOUND')) return Date.now() - since;
    if (Date.now() - since > RECOVERY_MS * 3) throw new Error(`no recovery: last replies ${u.reply} / ${g.reply}`);
    await sleep(100);
  }
}

function ldapConfig(urls: string[], baseDN: string, serviceDN: string) {
  return validateConfig({
    listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: {
      kind: 'ldap',
      ldap: { urls, baseDN, bindDN: serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: POOL_SIZE, maxInFlight: 16 },
    },
    cache: { positiveTtl: '1h', negativeTtl: '5m', staleIfError: '1h' },
    log: { level: 'silent' },
  });
}

async function startApp(urls: string[], ldap: Slapd): Promise<{ app: App; clients: SocketmapClient[] }> {
  const app = await createApp({
    loaded: { config: ldapConfig(urls, ldap.baseDN, ldap.serviceDN), file: null },
    logger: silentLogger(),
    env: { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
  });
  await app.start();
  const port = app.addresses.socketmap!.port;
  const clients = await Promise.all(Array.from({ length: 8 }, () => SocketmapClient.connect(port)));
  return { app, clients };
}

function assertNoneWrong(samples: Sample[]): void {
  const wrong = samples.filter(isWrong);
  assert.deepEqual(wrong.slice(0, 5), [], `wrong verdicts (${summary(samples)})`);
}

describe('fault injection under load (real slapd)', { timeout: 180_000 }, () => {
  let ldap: Slapd;
  let ldap2: Slapd;
  const cleanup: Array<() => Promise<void> | void> = [];

  before(async () => {
    [ldap, ldap2] = await Promise.all([startSlapd({ generatedUsers: USERS }), startSlapd({ generatedUsers: USERS })]);
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c();
    await Promise.all([ldap?.close(), ldap2?.close()]);
  });

  /** Closes the app when the test ends, so its pooled connections do not count in the next one. */
  const track = (t: TestContext, app: App, clients: SocketmapClient[], load?: Load) => {
    t.after(async () => {
      await load?.stop();
      for (const c of clients) c.close();
      await app.close();
    });
  };

  test('slapd killed then restarted: TEMP while down, no wrong verdict, recovery within 5 s', async (t) => {
    const { app, clients } = await startApp([ldap.url], ldap);
    const load = new Load(clients.slice(1));
    track(t, app, clients, load);
    await sleep(1_000);
    const warm = load.since(0);
    assert.ok(warm.some((s) => s.reply.startsWith('OK')) && warm.some((s) => s.reply.startsWith('NOTFOUND')), summary(warm));

    await ldap.kill();
    const downAt = Date.now();
    await sleep(2_500);
    const down = load.since(downAt + 200);
    const ghostsDown = down.filter((s) => !s.exists);
    assert.ok(ghostsDown.length > 0, 'lookups kept being answered while slapd was down');
    assert.ok(ghostsDown.every((s) => s.reply.startsWith('TEMP')), `uncached lookups defer while down: ${summary(ghostsDown)}`);
    assert.ok(Math.max(...down.map((s) => s.ms)) <= ANSWER_BOUND_MS, `every answer within ${ANSWER_BOUND_MS} ms`);

    await ldap.start();
    const upAt = Date.now();
    const recovered = await recoveryTime(clients[0]!, upAt, load.samples);
    assert.ok(recovered <= RECOVERY_MS, `recovered after ${recovered} ms`);
    const afterAt = Date.now();
    await sleep(1_000);
    await load.stop();
    const final = load.since(afterAt);
    assert.ok(final.length > 0);
    assert.deepEqual(final.filter((s) => s.reply.startsWith('TEMP')).map((s) => s.reply).slice(0, 3), [], 'no TEMP after recovery');
    assertNoneWrong(load.samples);
    console.log(`kill/restart: ${summary(load.samples)}; recovered in ${recovered} ms`);
  });

  test('slapd frozen (SIGSTOP): uncached lookups TEMP within the timeout, bounded connections, recovery after SIGCONT', async (t) => {
    const { app, clients } = await startApp([ldap.url], ldap);
    const load = new Load(clients.slice(1));
    track(t, app, clients, load);
    await sleep(1_000);

    await ldap.pause();
    const frozenAt = Date.now();
    let maxConnections = 0;
    try {
      for (let i = 0; i < 12; i++) {
        await sleep(250);
        maxConnections = Math.max(maxConnections, await connectionsTo(ldap.port));
      }
    } finally {
      ldap.resume();
    }
    const resumedAt = Date.now();
    const frozen = load.samples.filter((s) => s.at >= frozenAt && s.at + s.ms < resumedAt);
    const ghostsFrozen = frozen.filter((s) => !s.exists);
    assert.ok(ghostsFrozen.length > 0, 'lookups kept being answered while slapd hung');
    assert.ok(ghostsFrozen.every((s) => s.reply.startsWith('TEMP')), `uncached lookups defer while the directory hangs: ${summary(ghostsFrozen)}`);
    const slowest = Math.max(...frozen.map((s) => s.ms));
    assert.ok(slowest <= ANSWER_BOUND_MS, `slowest answer ${slowest} ms while frozen; bound ${ANSWER_BOUND_MS} ms`);
    assert.ok(maxConnections <= POOL_SIZE, `directory connections stayed bounded: saw ${maxConnections}, pool ${POOL_SIZE}`);

    const recovered = await recoveryTime(clients[0]!, resumedAt, load.samples);
    assert.ok(recovered <= RECOVERY_MS, `recovered after ${recovered} ms`);
    const afterAt = Date.now();
    await sleep(1_000);
    await load.stop();
    assert.deepEqual(load.since(afterAt).filter((s) => s.reply.startsWith('TEMP')).map((s) => s.reply).slice(0, 3), [], 'no TEMP after recovery');
    assertNoneWrong(load.samples);
    console.log(`SIGSTOP/SIGCONT: ${summary(load.samples)}; slowest ${slowest} ms frozen; ${maxConnections} directory connections; recovered in ${recovered} ms`);
  });

  test('first URL dead from the start, then the first of two live servers killed: the second answers', async (t) => {
    const dead = await closedPortUrl();
    const a = await startApp([dead, ldap2.url], ldap2);
    const loadA = new Load(a.clients);
    track(t, a.app, a.clients, loadA);
    await sleep(1_500);
    await loadA.stop();
    assert.ok(loadA.samples.length > 50);
    assert.deepEqual(loadA.samples.filter((s) => s.reply.startsWith('TEMP')).map((s) => s.reply).slice(0, 3), [], 'a dead first URL costs no TEMP');
    assertNoneWrong(loadA.samples);

    const b = await startApp([ldap.url, ldap2.url], ldap);
    const load = new Load(b.clients.slice(1));
    track(t, b.app, b.clients, load);
    t.after(() => (ldap.pid === undefined ? ldap.start() : undefined));
    await sleep(1_000);
    await ldap.kill();
    const killedAt = Date.now();
    const recovered = await recoveryTime(b.clients[0]!, killedAt, load.samples);
    assert.ok(recovered <= RECOVERY_MS, `failed over after ${recovered} ms`);
    const afterAt = Date.now();
    await sleep(1_500);
    await load.stop();
    assert.deepEqual(load.since(afterAt).filter((s) => s.reply.startsWith('TEMP')).map((s) => s.reply).slice(0, 3), [], 'no TEMP once failed over');
    assertNoneWrong(load.samples);
    console.log(`failover: ${summary([...loadA.samples, ...load.samples])}; failed over in ${recovered} ms`);
  });

  test('circuit breaker around the real LDAP directory: opens while slapd hangs, fails fast, closes after resume', async () => {
    const inner = new LdapDirectory({
      config: ldapConfig([ldap.url], ldap.baseDN, ldap.serviceDN).directory.ldap,
      bindPassword: ldap.servicePassword,
      metrics: new Metrics(),
      logger: silentLogger(),
    });
    const breaker = new BreakerDirectory(inner, { failureThreshold: 3, cooldownMs: 300, maxCooldownMs: 1_000 });
    cleanup.push(() => breaker.close());
    assert.equal((await breaker.lookup('user1@example.com')).entry?.canonical, 'user1@example.com');

    await ldap.pause();
    try {
      const results = await Promise.allSettled(Array.from({ length: 3 }, (_, i) => breaker.lookup(`user${10 + i}@example.com`)));
      assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof DirectoryError), 'hung lookups fail');
      assert.equal(breaker.state, 'open');
      const started = Date.now();
      const fast = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => breaker.lookup(`user${100 + i}@example.com`)));
      assert.ok(fast.every((r) => r.status === 'rejected' && /circuit open/.test(String(r.reason))), 'an open breaker fails at once');
      assert.ok(Date.now() - started < TIMEOUT_MS, 'without waiting for the directory timeout');
    } finally {
      ldap.resume();
    }
    const resumedAt = Date.now();
    for (;;) {
      const r: DirectoryAnswer | Error = await breaker.lookup('user2@example.com').catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      if (!(r instanceof Error)) {
        assert.equal(r.entry?.canonical, 'user2@example.com');
        break;
      }
      assert.ok(Date.now() - resumedAt <= RECOVERY_MS, `breaker closed within ${RECOVERY_MS} ms of resume (last: ${r.message})`);
      await sleep(100);
    }
    assert.equal(breaker.state, 'closed');
    assert.equal((await breaker.lookup('nobody@example.com')).entry, null);
  });
});
