/**
 * The backup MX (relay_domains and relay_recipient_maps on rcptgate) with the recipient settings
 * sites change, through a real Postfix in front of a real `rcptgate serve` over a real slapd:
 *  - `smtpd_reject_unlisted_recipient = no` alone: Postfix no longer applies relay_recipient_maps,
 *    so every recipient of a relay domain is taken, unknown ones included, with rcptgate up or
 *    down (an accept-all backup MX: backscatter). Pinned here as the hazard the README must name;
 *  - the same with `reject_unlisted_recipient` listed in smtpd_recipient_restrictions: enforced
 *    again (550 unknown, 451 while rcptgate is down);
 *  - `reject_unverified_recipient` alone: Postfix probes the primary for every recipient before the
 *    implicit unlisted check, unknown ones included (450 "verification in progress", a probe each);
 *  - `reject_unlisted_recipient` before `reject_unverified_recipient`: unknown recipients are
 *    refused (550) without a probe; while rcptgate is down, 451 without a probe.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startServe, type ServeProcess } from '../helpers/process.js';
import { rcptReplies } from '../helpers/r12j-setups.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd | undefined;
let mx: PostfixInstance | undefined;
let dir: string | undefined;
let gate: ServeProcess | undefined;
after(async () => {
  await gate?.kill();
  await mx?.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const TO = ['alice@example.com', 'nobody@example.com'];

test('smtpd_reject_unlisted_recipient and reject_unverified_recipient with rcptgate, up and down', { timeout: 240_000 }, async () => {
  requirePostfixTools();
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12j-unlisted-'));
  const smPort = await freePort();
  const cfg = path.join(dir, 'rcptgate.json');
  const config = {
    listen: { http: null, socketmap: `127.0.0.1:${smPort}`, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
  };
  await writeFile(cfg, JSON.stringify(config));
  gate = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  await gate.waitForLog((l) => l.msg === 'listening' && l.frontend === 'socketmap', 30_000);

  const sm = `socketmap:inet:127.0.0.1:${smPort}`;
  const names = ['unlistedOff', 'unlistedOffExplicit', 'verifyOnly', 'unlistedThenVerify'] as const;
  const at = {} as Record<(typeof names)[number], number>;
  for (const n of names) at[n] = await freePort();
  const smtpd = (port: number, opts: Record<string, string>) =>
    [`127.0.0.1:${port} inet n - n - - smtpd`, ...Object.entries(opts).map(([k, v]) => `  -o { ${k} = ${v} }`)].join('\n');
  mx = await startPostfix({
    mainCf: { relay_domains: `${sm}:domains`, relay_recipient_maps: `${sm}:recipients`, smtpd_error_sleep_time: '0', address_verify_poll_count: '1' },
    masterCfExtra: [
      smtpd(at.unlistedOff, { smtpd_reject_unlisted_recipient: 'no' }),
      smtpd(at.unlistedOffExplicit, { smtpd_reject_unlisted_recipient: 'no', smtpd_recipient_restrictions: 'reject_unauth_destination, reject_unlisted_recipient' }),
      smtpd(at.verifyOnly, { smtpd_recipient_restrictions: 'reject_unauth_destination, reject_unverified_recipient' }),
      smtpd(at.unlistedThenVerify, { smtpd_recipient_restrictions: 'reject_unauth_destination, reject_unlisted_recipient, reject_unverified_recipient' }),
    ].join('\n'),
  });

  const ask = async () => {
    const out = {} as Record<(typeof names)[number], string[]>;
    for (const n of names) out[n] = await rcptReplies(at[n], TO);
    return out;
  };
  const up = await ask();
  gate.child.kill('SIGTERM');
  assert.equal(await gate.exited, 0);
  gate = undefined;
  const down = await ask();
  console.log(JSON.stringify({ up, down }, null, 1));
  const probes = (await mx.maillog()).split('\n').filter((l) => /unverified address: Address verification in progress/.test(l) && l.includes('to=<nobody@example.com>'));

  // The hazard: unknown taken, up and down.
  assert.match(up.unlistedOff[1]!, /^250 /);
  assert.match(down.unlistedOff[1]!, /^250 /);
  // Listed explicitly, enforced again.
  assert.deepEqual([up.unlistedOffExplicit[0]!.slice(0, 3), up.unlistedOffExplicit[1]!.slice(0, 9)], ['250', '550 5.1.1']);
  assert.deepEqual(down.unlistedOffExplicit.map((r) => r.slice(0, 3)), ['451', '451']);
  // Verification alone probes the unknown recipient too (450), before rcptgate is asked.
  assert.match(up.verifyOnly[1]!, /^450 4\.1\.1 .*verification in progress/);
  assert.equal(probes.length, 1, 'one probe for nobody, from the verify-only listener');
  // rcptgate first: unknown refused without a probe; down: 451 without a probe.
  assert.match(up.unlistedThenVerify[1]!, /^550 5\.1\.1 /);
  assert.match(up.unlistedThenVerify[0]!, /^450 4\.1\.1 /, 'a valid recipient goes on to verification');
  assert.deepEqual(down.unlistedThenVerify.map((r) => r.slice(0, 3)), ['451', '451']);
  for (const n of names) for (const r of down[n]) if (/^5/.test(r)) assert.fail(`${n} refused while rcptgate was down: ${r}`);
});
