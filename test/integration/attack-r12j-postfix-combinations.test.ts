/**
 * Documented Postfix setups as sites combine them, through a real Postfix in front of a real
 * `rcptgate serve` over a real slapd:
 *  - relay_recipient_maps listing a local table together with rcptgate (either order): an address
 *    in the local table passes in either order (rcptgate's NOTFOUND lets Postfix go on); while rcptgate is down everything else is
 *    deferred (4xx), never refused, and with rcptgate first even the local address is deferred;
 *  - soft_bounce = yes: an unknown recipient becomes 4xx (Postfix's doing), valid still 250;
 *  - smtpd_delay_reject = no and unknown_relay_recipient_reject_code = 450: the documented replies
 *    follow Postfix's settings, valid recipients unaffected;
 *  - rcptgate hung (SIGSTOP: connections accepted by the kernel, never answered) behind policy
 *    delegation and the milter with short Postfix timeouts: deferred (4xx) when Postfix gives up.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import type { ServeProcess } from '../helpers/process.js';
import { frontendsOn, gateFiles, rcptReplies, startGate } from '../helpers/r12j-setups.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd | undefined;
let mx: PostfixInstance | undefined;
let dir: string | undefined;
let gate: ServeProcess | undefined;
after(async () => {
  if (gate) gate.child.kill('SIGCONT');
  await gate?.kill();
  await mx?.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const TO = ['alice@example.com', 'nobody@example.com', 'local@example.com'];

test('local table with rcptgate, soft_bounce, delay_reject, reject code, hung rcptgate: the right 2xx/4xx/5xx each', { timeout: 240_000 }, async () => {
  requirePostfixTools();
  const slapd = (ldap = await startSlapd());
  const files = await gateFiles('combo', (ports) => ({
    listen: frontendsOn(ports),
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
  }));
  dir = files.dir;
  const { cfg, ports } = files;
  gate = await startGate(cfg, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });

  const sm = `socketmap:inet:127.0.0.1:${ports.socketmap}:recipients`;
  const local = 'inline:{ local@example.com=ok }';
  const names = ['localFirst', 'gateFirst', 'softBounce', 'noDelay', 'code450', 'policy', 'milter'] as const;
  const at = {} as Record<(typeof names)[number], number>;
  for (const n of names) at[n] = await freePort();
  const o = (opts: Record<string, string>) => Object.entries(opts).map(([k, v]) => `  -o { ${k} = ${v} }`).join('\n');
  const smtpd = (port: number, opts: Record<string, string>) => `127.0.0.1:${port} inet n - n - - smtpd\n${o(opts)}`;
  const viaLocal = { relay_domains: 'example.com' };
  mx = await startPostfix({
    mainCf: { relay_domains: 'example.com', relay_recipient_maps: sm, smtpd_error_sleep_time: '0', smtpd_soft_error_limit: '100', smtpd_hard_error_limit: '100' },
    masterCfExtra: [
      smtpd(at.localFirst, { relay_recipient_maps: `${local}, ${sm}` }),
      smtpd(at.gateFirst, { relay_recipient_maps: `${sm}, ${local}` }),
      smtpd(at.softBounce, { soft_bounce: 'yes', relay_recipient_maps: `${local}, ${sm}` }),
      smtpd(at.noDelay, { smtpd_delay_reject: 'no', relay_recipient_maps: `${local}, ${sm}` }),
      smtpd(at.code450, { unknown_relay_recipient_reject_code: '450', relay_recipient_maps: `${local}, ${sm}` }),
      smtpd(at.policy, {
        ...viaLocal,
        relay_recipient_maps: '',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_recipient_access ${local}, check_policy_service inet:127.0.0.1:${ports.policy}`,
        smtpd_policy_service_timeout: '3s',
      }),
      smtpd(at.milter, { ...viaLocal, relay_recipient_maps: '', smtpd_milters: `inet:127.0.0.1:${ports.milter}`, milter_default_action: 'tempfail', milter_command_timeout: '3s', milter_connect_timeout: '3s' }),
    ].join('\n'),
  });

  const expectUp: Record<(typeof names)[number], RegExp[]> = {
    localFirst: [/^250 /, /^550 5\.1\.1 /, /^250 /],
    gateFirst: [/^250 /, /^550 5\.1\.1 /, /^250 /], // NOTFOUND lets Postfix go on to the next table
    softBounce: [/^250 /, /^450 4\.1\.1 /, /^250 /],
    noDelay: [/^250 /, /^550 5\.1\.1 /, /^250 /],
    code450: [/^250 /, /^450 4\.1\.1 /, /^250 /],
    policy: [/^250 /, /^550 5\.1\.1 /, /^250 /],
    milter: [/^250 /, /^550 5\.1\.1 /, /^550 5\.1\.1 /],
  };
  const seen: string[] = [];
  const wrong: string[] = [];
  for (const n of names) {
    const replies = await rcptReplies(at[n], TO);
    seen.push(`${n}: ${replies.map((r) => r.slice(0, 9)).join(' | ')}`);
    replies.forEach((r, i) => {
      if (!expectUp[n][i]!.test(r)) wrong.push(`up ${n} ${TO[i]}: ${r}`);
    });
  }
  console.log(`rcptgate up:\n${seen.join('\n')}`);

  // Hung: policy and milter give up after their 3 s timeouts and defer.
  gate.child.kill('SIGSTOP');
  for (const n of ['policy', 'milter'] as const) {
    const started = performance.now();
    const replies = await rcptReplies(at[n], TO.slice(0, 2));
    console.log(`hung ${n}: ${replies.map((r) => r.slice(0, 9)).join(' | ')} in ${Math.round(performance.now() - started)} ms`);
    replies.forEach((r, i) => {
      if (!/^4\d\d /.test(r)) wrong.push(`hung ${n} ${TO[i]}: ${r}`);
    });
  }
  gate.child.kill('SIGCONT');

  // Down: nothing but the local table's own address, listed first, may pass.
  gate.child.kill('SIGTERM');
  assert.equal(await gate.exited, 0);
  gate = undefined;
  seen.length = 0;
  for (const n of names) {
    const replies = await rcptReplies(at[n], TO);
    seen.push(`${n}: ${replies.map((r) => r.slice(0, 9)).join(' | ')}`);
    replies.forEach((r, i) => {
      const localPasses = TO[i] === 'local@example.com' && n !== 'gateFirst' && n !== 'milter';
      if (!(localPasses ? /^250 / : /^4\d\d /).test(r)) wrong.push(`down ${n} ${TO[i]}: ${r}`);
    });
  }
  console.log(`rcptgate down:\n${seen.join('\n')}`);
  assert.deepEqual(wrong, []);
});
