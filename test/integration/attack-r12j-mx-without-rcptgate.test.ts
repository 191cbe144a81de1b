/**
 * Every documented Postfix setup in front of an rcptgate that is not there at all: the process
 * stopped (connection refused on every port), then started again on the same ports. One real
 * Postfix with one smtpd listener per setup: the backup MX (relay_domains and
 * relay_recipient_maps as socketmaps), the same through proxymap (`proxy:socketmap:`), the
 * access map, policy delegation and the milter. While rcptgate is away, every recipient of a
 * served domain must be deferred (4xx): never accepted, never refused with a 5xx (a
 * `relay_domains` socketmap that fails must not turn into "Relay access denied"). Once it is
 * back, each setup must accept valid recipients again within seconds (printed as a diagnostic,
 * bounded generously). Real slapd, real `rcptgate serve` processes, real Postfix and sessions.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { requirePostfixTools } from '../helpers/postfix.js';
import { rcptReplies as rcpts, startSetupsMx, type SetupsMx, type SetupName } from '../helpers/r12j-setups.js';
import { startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('Postfix in front of an rcptgate that is down, then back (real Postfix, slapd, serve)', () => {
  let ldap: Slapd;
  let dir: string;
  let cfg: string;
  let mx: SetupsMx;
  let rcptgate: ServeProcess | undefined;
  const ports = { socketmap: 0, policy: 0, milter: 0 };
  let setups: Record<SetupName, number>;

  const startGate = async (): Promise<void> => {
    rcptgate = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    for (const fe of ['socketmap', 'policy', 'milter']) await rcptgate.waitForLog((l) => l.msg === 'listening' && l.frontend === fe);
  };
  const stopGate = async (): Promise<void> => {
    rcptgate?.child.kill('SIGTERM');
    assert.equal(await rcptgate?.exited, 0);
    rcptgate = undefined;
  };

  before(async () => {
    requirePostfixTools();
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12j-down-'));
    ports.socketmap = await freePort();
    ports.policy = await freePort();
    ports.milter = await freePort();
    cfg = path.join(dir, 'rcptgate.json');
    const config = {
      listen: { http: null, socketmap: `127.0.0.1:${ports.socketmap}`, policy: `127.0.0.1:${ports.policy}`, milter: `127.0.0.1:${ports.milter}`, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
    };
    await writeFile(cfg, JSON.stringify(config));
    mx = await startSetupsMx(ports);
    setups = mx.setups;
    await startGate();
  });
  after(async () => {
    await rcptgate?.kill();
    await mx?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('up: valid 250, unknown 550, in every setup', async () => {
    for (const [name, port] of Object.entries(setups)) {
      const [valid, unknown] = await rcpts(port, ['alice@example.com', 'nobody@example.com']);
      assert.match(valid!, /^250 /, `${name}: alice`);
      assert.match(unknown!, /^550 5\.1\.1 /, `${name}: nobody`);
    }
  });

  test('down (connection refused): every recipient of a served domain deferred with 4xx; back: valid again within seconds', { timeout: 240_000 }, async () => {
    // Sessions held open across the stop too: Postfix's socketmap, proxymap and policy clients keep connections.
    await stopGate();
    const wrong: string[] = [];
    for (const [name, port] of Object.entries(setups)) {
      const replies = await rcpts(port, ['alice@example.com', 'nobody@example.com', 'Alice+tag@example.com']);
      replies.forEach((r, i) => {
        if (!/^4\d\d /.test(r)) wrong.push(`${name} #${i}: ${r}`);
      });
    }
    assert.deepEqual(wrong, [], `rcptgate down: replies that were not 4xx:\n${wrong.join('\n')}\n${(await mx.maillog()).split('\n').filter((l) => /warning|reject/.test(l)).slice(-20).join('\n')}`);

    await startGate();
    const back = performance.now();
    const recovered: Record<string, number> = {};
    const pending = new Set(Object.keys(setups));
    while (pending.size > 0 && performance.now() - back < 120_000) {
      for (const name of [...pending]) {
        const [valid, unknown] = await rcpts(setups[name as SetupName], ['alice@example.com', 'nobody@example.com']);
        assert.doesNotMatch(valid!, /^5/, `${name}: alice refused while recovering: ${valid}`);
        assert.doesNotMatch(unknown!, /^2/, `${name}: nobody accepted while recovering: ${unknown}`);
        if (/^250 /.test(valid!) && /^550 /.test(unknown!)) {
          recovered[name] = Math.round(performance.now() - back);
          pending.delete(name);
        }
      }
      if (pending.size > 0) await sleep(250);
    }
    console.log(`recovery after rcptgate returned, ms: ${JSON.stringify(recovered)}`);
    assert.deepEqual([...pending], [], `setups still not accepting valid recipients 120 s after rcptgate returned: ${JSON.stringify(recovered)}`);
    for (const [name, ms] of Object.entries(recovered)) assert.ok(ms < 30_000, `${name} took ${ms} ms to recover`);
  });
});
