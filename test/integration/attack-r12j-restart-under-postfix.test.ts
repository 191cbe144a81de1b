/**
 * rcptgate restarted (SIGTERM, drain, start on the same ports) while Postfix holds its
 * connections: open SMTP sessions in every documented setup (test/helpers/r12j-setups.ts), each
 * with a recipient lookup in flight on a slow directory when the SIGTERM comes. The lookup in
 * flight is answered (250, or a 4xx), never a 5xx; the process exits well within its drain time
 * although Postfix (smtpd, proxymap) holds idle connections; a recipient asked in the same session
 * while rcptgate is away is deferred (4xx); and after the restart the same sessions get real
 * answers again, except the milter's, where Postfix applies milter_default_action (tempfail) for
 * the rest of a session whose milter connection closed. Real slapd behind a delaying proxy, real
 * `rcptgate serve` processes, real Postfix.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { after, test } from 'node:test';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { requirePostfixTools } from '../helpers/postfix.js';
import { frontendsOn, gateFiles, startGate, startSetupsMx, type SetupName, type SetupsMx } from '../helpers/r12j-setups.js';
import type { ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** An SMTP session kept open: `send` returns the final line of the reply to one command. */
async function openSession(port: number): Promise<{ send(command: string): Promise<string>; close(): void }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.setEncoding('utf8');
  let buffered = '';
  const waiters: Array<(line: string) => void> = [];
  socket.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      if (line[3] !== '-') waiters.shift()?.(line);
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve('000 connection closed')));
  const reply = () => Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), closed]);
  await reply();
  return {
    send(command) {
      const r = reply();
      socket.write(`${command}\r\n`);
      return r;
    },
    close: () => socket.destroy(),
  };
}

let ldap: Slapd | undefined;
let slow: DelayProxy | undefined;
let mx: SetupsMx | undefined;
let dir: string | undefined;
let gate: ServeProcess | undefined;
after(async () => {
  await gate?.kill();
  await mx?.close();
  await slow?.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('SIGTERM with lookups in flight and sessions held, then a restart: no 5xx for a valid recipient, no 2xx while away', { timeout: 240_000 }, async () => {
  requirePostfixTools();
  const slapd = (ldap = await startSlapd());
  // Each chunk held 700 ms each way: a lookup takes a few seconds, well inside the 8 s timeout.
  const delayed = (slow = await startDelayProxy(Number(new URL(ldap.url).port), 700));
  const files = await gateFiles('restart', (ports) => ({
    listen: frontendsOn(ports),
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [delayed.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '8s' } },
    server: { drainTimeout: '20s' },
  }));
  dir = files.dir;
  const { cfg, ports } = files;
  const restartGate = async () => {
    gate = await startGate(cfg, { RCPTGATE_LDAP_BIND_PASSWORD: ldap!.servicePassword });
  };
  let setups: Record<SetupName, number>;
  mx = await startSetupsMx(ports);
  setups = mx.setups;
  await restartGate();

  const names = Object.keys(setups) as SetupName[];
  const sessions = await Promise.all(names.map((n) => openSession(setups[n])));
  try {
    for (const [i, s] of sessions.entries()) {
      assert.match(await s.send('EHLO client.rcptgate.test'), /^250 /);
      assert.match(await s.send('MAIL FROM:<sender@example.org>'), /^250 /, names[i]);
      // Warm: the connection from smtpd (or proxymap) to rcptgate is open and held.
      assert.match(await s.send('RCPT TO:<alice@example.com>'), /^250 /, `${names[i]}: alice`);
    }
    // A lookup in flight in every setup (bob is not cached), then SIGTERM.
    const inFlight = sessions.map((s) => s.send('RCPT TO:<bob@example.com>'));
    await new Promise((r) => setTimeout(r, 600));
    const stopAt = performance.now();
    gate!.child.kill('SIGTERM');
    assert.equal(await gate!.exited, 0);
    const exitMs = performance.now() - stopAt;
    gate = undefined;
    const flight = await Promise.all(inFlight);
    const wrong: string[] = [];
    flight.forEach((r, i) => {
      if (!/^(250|4\d\d) /.test(r)) wrong.push(`${names[i]} in flight: ${r}`);
    });
    // Asked in the same sessions while rcptgate is away.
    for (const [i, s] of sessions.entries()) {
      const r = await s.send('RCPT TO:<Carol.Mixed@example.com>');
      if (!/^4\d\d /.test(r)) wrong.push(`${names[i]} while away: ${r}`);
    }
    await restartGate();
    const after: string[] = [];
    for (const [i, s] of sessions.entries()) {
      const valid = await s.send('RCPT TO:<user1@example.com>');
      const unknown = await s.send('RCPT TO:<nobody@example.com>');
      after.push(`${names[i]}: ${valid.slice(0, 9)} / ${unknown.slice(0, 9)}`);
      if (names[i] === 'milter') {
        if (!/^4\d\d /.test(valid) || !/^4\d\d /.test(unknown)) wrong.push(`milter after restart: ${valid} / ${unknown}`);
        continue;
      }
      if (!/^250 /.test(valid)) wrong.push(`${names[i]} valid after restart: ${valid}`);
      if (!/^550 /.test(unknown)) wrong.push(`${names[i]} unknown after restart: ${unknown}`);
    }
    console.log(`exit after SIGTERM ${Math.round(exitMs)} ms; in flight: ${flight.map((r, i) => `${names[i]} ${r.slice(0, 9)}`).join(', ')}; after restart: ${after.join(', ')}`);
    const log = (await mx.maillog()).split('\n').filter((l) => /warning|reject/.test(l));
    assert.deepEqual(wrong, [], `${wrong.join('\n')}\n${log.slice(-25).join('\n')}`);
    assert.ok(exitMs < 15_000, `exit took ${Math.round(exitMs)} ms with Postfix holding connections`);
  } finally {
    for (const s of sessions) s.close();
  }
});
