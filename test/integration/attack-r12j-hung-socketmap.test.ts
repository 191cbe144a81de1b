/**
 * rcptgate hung (SIGSTOP: the kernel still accepts connections and takes requests, nothing is
 * answered) behind the socketmap setups of a real Postfix: the backup MX's relay_recipient_maps
 * (and relay_domains), the same through proxymap, and the access map. Postfix's socketmap client
 * gives up after its fixed 100 s timeout (not configurable in 3.7), and smtpd must then defer the
 * recipient (4xx): never accept it, never refuse it. After SIGCONT the same setups answer right
 * at once: the requests rcptgate took while stopped must not leave late answers on connections
 * Postfix reuses (a stale reply read as the answer to the next question). Real slapd, real
 * `rcptgate serve`, real Postfix; slow by nature. With relay_domains on rcptgate, Postfix's one
 * trivial-rewrite process waits out each 100 s lookup for every smtpd in turn (measured: the
 * second session's RCPT answered after 200 s, a third's after 300 s), so a hung rcptgate stalls
 * all address resolution of the MX, not only the sessions asking it.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { requirePostfixTools } from '../helpers/postfix.js';
import { frontendsOn, gateFiles, rcptReplies, startGate, startSetupsMx, type SetupsMx } from '../helpers/r12j-setups.js';
import type { ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd | undefined;
let mx: SetupsMx | undefined;
let dir: string | undefined;
let gate: ServeProcess | undefined;
after(async () => {
  gate?.child.kill('SIGCONT');
  await gate?.kill();
  await mx?.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('socketmap setups in front of a hung rcptgate: 4xx after Postfix’s 100 s timeout, right answers after it resumes', { timeout: 400_000 }, async () => {
  requirePostfixTools();
  const slapd = (ldap = await startSlapd());
  const files = await gateFiles('hung', (ports) => ({
    listen: frontendsOn(ports),
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
  }));
  dir = files.dir;
  const { cfg, ports } = files;
  gate = await startGate(cfg, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  let setups;
  mx = await startSetupsMx(ports);
  setups = mx.setups;
  const names = ['relay', 'proxy', 'access'] as const;
  // Warm: Postfix holds connections to rcptgate, alice is cached.
  for (const n of names) assert.deepEqual((await rcptReplies(setups[n], ['alice@example.com'])).map((r) => r.slice(0, 3)), ['250'], n);

  gate.child.kill('SIGSTOP');
  const started = performance.now();
  const hung = await Promise.all(names.map(async (n) => ({ n, replies: await rcptReplies(setups[n], ['nobody@example.com']), ms: Math.round(performance.now() - started) })));
  gate.child.kill('SIGCONT');
  console.log(hung.map((h) => `${h.n}: ${h.replies.map((r) => r.slice(0, 9)).join(' | ')} after ${h.ms} ms`).join('\n'));
  const wrong: string[] = [];
  for (const h of hung) h.replies.forEach((r) => /^4\d\d /.test(r) || wrong.push(`hung ${h.n}: ${r}`));

  // Resumed: every answer right, in order, over connections that may carry the late replies.
  for (let round = 0; round < 3; round++) {
    for (const n of names) {
      const replies = await rcptReplies(setups[n], ['bob@example.com', 'ghost@example.com', 'alice@example.com', 'nobody2@example.com']);
      const expect = [/^250 /, /^550 5\.1\.1 /, /^250 /, /^550 5\.1\.1 /];
      replies.forEach((r, i) => expect[i]!.test(r) || wrong.push(`resumed round ${round} ${n} #${i}: ${r}`));
    }
  }
  const log = (await mx.maillog()).split('\n').filter((l) => /warning/.test(l));
  assert.deepEqual(wrong, [], `${wrong.join('\n')}\n${log.slice(-20).join('\n')}`);
});
