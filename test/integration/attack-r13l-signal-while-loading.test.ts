/**
 * A signal that reaches `rcptgate serve` while Node is still loading its modules (about half a
 * second, more on a loaded host), i.e. right after a restart: an Ansible play that notifies both
 * "restart" and "reload", a config reloader reacting to the change that also rolled the pod, a
 * supervisor's stop right after its start. Until main.ts ran, Node's defaults applied:
 *   - SIGHUP killed the process (exit by signal, nothing logged): the backup MX deferred all mail
 *     until something restarted it;
 *   - SIGUSR1 opened the V8 inspector on 127.0.0.1:9229 for the life of the process, with no
 *     authentication (user-signals.ts ignores it only from main.ts on);
 *   - SIGTERM killed it without a word (and PID 1, the container, lost it: it served on until SIGKILL).
 * Now a handler installed before any other module holds such a signal and hands it on: the reload
 * runs once serving, SIGUSR1 is ignored with its warning, SIGTERM stops with exit 0.
 * Real slapd, the built CLI (dist/main.js: the sources through a loader take longer to load than
 * the product); the signal is sent while the modules load (timing from /proc/PID/status).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, type ServeProcess } from '../helpers/process.js';
import { caughtSignals, startDistServe } from '../helpers/r13l-dist-serve.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const bit = (signal: number): bigint => 1n << BigInt(signal - 1);
const SIGHUP = 1;
const SIGUSR1 = 10;

/**
 * Waits until the moment to signal: rcptgate catches SIGHUP (its first handler is in place), or
 * 150 ms after Node's own start-up (its SIGUSR1 handler), whichever comes first. Loading the
 * commands takes 570 to 1250 ms after that here: a signal then lands while they load.
 */
async function loading(p: ServeProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  let nodeUp: number | null = null;
  for (;;) {
    const caught = caughtSignals(p.child.pid!);
    if ((caught & bit(SIGHUP)) !== 0n) return;
    if (nodeUp === null && (caught & bit(SIGUSR1)) !== 0n) nodeUp = Date.now();
    if (nodeUp !== null && Date.now() - nodeUp >= 150) return;
    assert.ok(Date.now() < deadline, 'node never started');
    assert.equal(p.child.exitCode, null, `exited early: ${p.stderr}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('a signal while serve is still loading its modules (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;
  let config: string;
  const running: ServeProcess[] = [];

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13l-early-'));
    config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
      log: { level: 'info' },
    }));
  });
  after(async () => {
    for (const p of running) await p.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (signal: NodeJS.Signals): Promise<ServeProcess> => {
    const p = startDistServe(['--config', config], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    running.push(p);
    await loading(p);
    assert.equal(p.logs.length, 0, 'the signal goes out before serve has said anything');
    p.child.kill(signal);
    return p;
  };

  const assertServes = async (p: ServeProcess): Promise<void> => {
    const port = await listenerPort(p, 'socketmap');
    const client = await SocketmapClient.connect(port);
    try {
      assert.match(await client.query('recipients', 'alice@example.com'), /^OK /);
      assert.match(await client.query('recipients', 'nobody-r13l@example.com'), /^NOTFOUND/);
    } finally {
      client.close();
    }
  };

  test('SIGHUP: the process lives, serves right verdicts and reloads once serving', async () => {
    const p = await start('SIGHUP');
    const outcome = await Promise.race([p.exited.then((code) => `exited (${code})`), p.waitForLog((l) => l.msg === 'listening').then(() => 'listening')]);
    assert.equal(outcome, 'listening', `stderr: ${p.stderr}`);
    await assertServes(p);
    await p.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded'), 30_000);
    assert.equal(p.child.exitCode, null);
    await p.kill();
  });

  test('SIGUSR1: no inspector opens; the signal is reported as ignored', async () => {
    const p = await start('SIGUSR1');
    await assertServes(p);
    await p.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('signal ignored'), 30_000);
    assert.doesNotMatch(p.stderr, /Debugger listening/);
    await p.kill();
  });

  test('SIGTERM: stops with exit 0 and says so', async () => {
    const p = await start('SIGTERM');
    const code = await Promise.race([p.exited, new Promise((r) => setTimeout(() => r('still running after 30 s'), 30_000))]);
    assert.equal(code, 0, `stderr: ${p.stderr}; logs: ${JSON.stringify(p.logs)}`);
    // Held while loading, it is handled when the event loop first turns: before the listeners
    // open (stopping at once) or, when starting takes no turn at all, just after (a drain of nothing).
    assert.ok(p.logs.some((l) => l.msg === 'stopping before the listeners opened' || l.msg === 'draining and stopping'), JSON.stringify(p.logs));
  });
});
