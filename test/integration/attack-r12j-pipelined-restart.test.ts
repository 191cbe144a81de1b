/**
 * A bulk sender pipelining 80 RCPTs in one write into every documented Postfix setup
 * (test/helpers/r12j-setups.ts: relay socketmap, proxymap, access map, policy, milter) while
 * rcptgate is stopped (SIGTERM, drain) in the middle of the lookups; then, rcptgate started
 * again on the same ports, the same again with fresh addresses and no stop. The directory is a
 * little slow (a delaying proxy), every address uncached, so smtpd has lookups in flight and
 * many queued behind them. Every recipient must get
 * its own reply in order: a valid one 250 or a 4xx, an unknown one 550 or a 4xx — never a 5xx for
 * a valid recipient, never a 250 for an unknown one, and no session cut short; after the restart
 * no 4xx at all (Postfix's held connections, proxymap's included, reconnect). Real slapd (2,000
 * generated users), real `rcptgate serve`, real Postfix.
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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const PER_SESSION = 80;

/** EHLO, then MAIL and every RCPT written at once; the final line of each reply after EHLO's. */
async function pipelined(port: number, rcpts: string[]): Promise<string[]> {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.setEncoding('utf8');
  s.on('error', () => undefined);
  let buffered = '';
  const lines: string[] = [];
  let closed = false;
  s.on('close', () => (closed = true));
  s.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      if (line[3] !== '-') lines.push(line);
    }
  });
  const until = async (n: number) => {
    for (const end = Date.now() + 150_000; lines.length < n && !closed && Date.now() < end; ) await sleep(20);
  };
  try {
    await until(1);
    s.write('EHLO client.rcptgate.test\r\n');
    await until(2);
    s.write(`MAIL FROM:<sender@example.org>\r\n${rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join('')}`);
    await until(3 + rcpts.length);
    return lines.slice(2);
  } finally {
    s.destroy();
  }
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

test('80 pipelined RCPTs per setup across an rcptgate stop, then after its restart: no 5xx for a valid recipient, no 250 for an unknown one', { timeout: 300_000 }, async () => {
  requirePostfixTools();
  const slapd = (ldap = await startSlapd({ generatedUsers: 2_000 }));
  const delayed = (slow = await startDelayProxy(Number(new URL(ldap.url).port), 15));
  const files = await gateFiles('pipelined', (ports) => ({
    listen: frontendsOn(ports),
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [delayed.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '5s' } },
    // 40 unknown recipients a session: harvest protection would (rightly) step in.
    policy: { harvest: { maxUnknown: 0 } },
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
  const check = (plans: string[][], results: string[][], restarted: boolean) => {
    results.forEach((replies, s) => {
      const name = names[s]!;
      if (!/^250 /.test(replies[0] ?? '')) wrong.push(`${name} MAIL: ${replies[0]}`);
      const rcpt = replies.slice(1);
      if (rcpt.length !== PER_SESSION) wrong.push(`${name}: ${rcpt.length} of ${PER_SESSION} RCPT replies`);
      const count = { ok: 0, unknown: 0, temp: 0 };
      rcpt.forEach((r, i) => {
        const valid = i % 2 === 0;
        if (/^4\d\d /.test(r) && !restarted) count.temp++;
        else if (valid && /^250 /.test(r)) count.ok++;
        else if (!valid && /^550 5\.1\.1 /.test(r)) count.unknown++;
        else wrong.push(`${restarted ? 'after restart' : 'across stop'}: ${name} ${plans[s]![i]}: ${r}`);
      });
      tally.push(`${restarted ? 'after' : 'stop'} ${name} 250=${count.ok} 550=${count.unknown} 4xx=${count.temp}`);
    });
  };
  const wrong: string[] = [];
  const tally: string[] = [];
  // Distinct addresses per setup and run, valid and unknown alternating, none cached.
  const plan = (run: number) => names.map((_, s) => Array.from({ length: PER_SESSION }, (_, i) => (i % 2 === 0 ? `user${run * 1000 + s * 200 + i + 1}@example.com` : `ghost${run * 1000 + s * 200 + i}@example.com`)));
  const first = plan(0);
  const sessions = names.map((n, s) => pipelined(setups[n], first[s]!));
  await sleep(1_500);
  gate!.child.kill('SIGTERM');
  assert.equal(await gate!.exited, 0);
  gate = undefined;
  check(first, await Promise.all(sessions), false);

  await restartGate();
  const second = plan(1);
  check(second, await Promise.all(names.map((n, s) => pipelined(setups[n], second[s]!))), true);
  console.log(tally.join('\n'));
  assert.deepEqual(wrong, [], `${wrong.slice(0, 20).join('\n')}\n${tally.join('\n')}`);
});
