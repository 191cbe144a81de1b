/**
 * `relay_domains = socketmap:…:domains` (the README's backup MX) while rcptgate is down, against
 * the same MX with relay_domains listed in main.cf and only relay_recipient_maps on rcptgate.
 * Postfix asks relay_domains not only in smtpd's reject_unauth_destination but in
 * trivial-rewrite for every address it resolves, so the table failing costs more than deferring
 * inbound recipients: no message in the queue is delivered ("address resolver failure"), a
 * trusted client's outbound mail (which smtpd still takes), mail submitted locally and mail to
 * recipients accepted before alike, until the next queue run after rcptgate is back. With
 * relay_domains in main.cf only the recipient check needs rcptgate: inbound recipients are
 * deferred (451) and everything else flows. Real Postfix (two
 * instances; accepted mail goes to the discard transport so delivery is visible in the log),
 * real slapd, real `rcptgate serve`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startServe, type ServeProcess } from '../helpers/process.js';
import { rcptReplies } from '../helpers/r12j-setups.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let ldap: Slapd | undefined;
let dir: string | undefined;
let gate: ServeProcess | undefined;
const mxs: PostfixInstance[] = [];
after(async () => {
  await gate?.kill();
  for (const mx of mxs) await mx.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Submits one message with Postfix's sendmail(1) into `mx` (local submission: pickup, cleanup, qmgr). */
function submit(mx: PostfixInstance, to: string, subject: string): void {
  const r = spawnSync('/usr/sbin/sendmail', ['-C', mx.configDir, '-f', 'local-sender@rcptgate.test', to], {
    input: `Subject: ${subject}\n\nbody\n`,
    env: { ...process.env, MAIL_CONFIG: mx.configDir },
  });
  assert.equal(r.status, 0, `sendmail: ${r.stderr}`);
}

/** Log lines of `mx` about a recipient's delivery status (sent / deferred). */
async function statusOf(mx: PostfixInstance, to: string): Promise<string[]> {
  return (await mx.maillog()).split('\n').filter((l) => l.includes(`to=<${to}>`) && /status=/.test(l));
}

test('relay_domains as a socketmap stops outbound and queued mail while rcptgate is down; relay_domains in main.cf does not', { timeout: 240_000 }, async () => {
  requirePostfixTools();
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12j-domains-'));
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
  const common = {
    relay_recipient_maps: `${sm}:recipients`,
    // The test client on 127.0.0.1 is a trusted host sending out, as an office or an application server is.
    mynetworks: '127.0.0.0/8',
    relay_transport: 'discard:',
    default_transport: 'discard:',
    queue_run_delay: '2s',
    minimal_backoff_time: '2s',
    maximal_backoff_time: '4s',
    smtpd_error_sleep_time: '0',
  };
  const viaMap = await startPostfix({ mainCf: { ...common, relay_domains: `${sm}:domains` } });
  mxs.push(viaMap);
  const listed = await startPostfix({ mainCf: { ...common, relay_domains: 'example.com' } });
  mxs.push(listed);

  for (const mx of mxs) assert.deepEqual((await rcptReplies(mx.port, ['alice@example.com', 'out@foreign.example'])).map((r) => r.slice(0, 3)), ['250', '250']);

  gate.child.kill('SIGTERM');
  assert.equal(await gate.exited, 0);
  gate = undefined;

  const smtp = { viaMap: await rcptReplies(viaMap.port, ['alice@example.com', 'out@foreign.example']), listed: await rcptReplies(listed.port, ['alice@example.com', 'out@foreign.example']) };
  for (const mx of mxs) {
    submit(mx, 'alice@example.com', 'local to a served domain');
    submit(mx, 'local-out@foreign.example', 'local outbound');
  }
  await sleep(8_000);
  const status = async (mx: PostfixInstance) => ({
    served: (await statusOf(mx, 'alice@example.com')).map((l) => /status=(\w+)/.exec(l)![1]),
    outbound: (await statusOf(mx, 'local-out@foreign.example')).map((l) => /status=(\w+)/.exec(l)![1]),
  });
  const seen = { smtp, viaMap: await status(viaMap), listed: await status(listed) };
  console.log(JSON.stringify(seen, null, 1));
  console.log((await viaMap.maillog()).split('\n').filter((l) => /status=deferred|lookup failure/.test(l)).slice(0, 4).join('\n'));

  // Inbound recipients of the served domain: deferred either way, never refused or accepted.
  assert.match(smtp.viaMap[0]!, /^451 /);
  assert.match(smtp.listed[0]!, /^451 /);
  // With relay_domains in main.cf, nothing else needs rcptgate.
  assert.match(smtp.listed[1]!, /^250 /, 'a trusted client sends out');
  assert.ok(seen.listed.served.includes('sent') && seen.listed.outbound.includes('sent'), `listed: ${JSON.stringify(seen.listed)}`);
  // With relay_domains on rcptgate, the outage stops queued mail as well, outbound included:
  // smtpd still takes the trusted client's RCPT, but nothing is delivered (deferred, not lost:
  // "address resolver failure").
  assert.match(smtp.viaMap[1]!, /^250 /);
  assert.ok(!seen.viaMap.served.includes('sent') && !seen.viaMap.outbound.includes('sent'), `viaMap: ${JSON.stringify(seen.viaMap)}`);
  assert.ok(seen.viaMap.served.includes('deferred') && seen.viaMap.outbound.includes('deferred'), `viaMap: ${JSON.stringify(seen.viaMap)}`);

  // Back: the deferred mail leaves on the next queue run.
  gate = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  await gate.waitForLog((l) => l.msg === 'listening' && l.frontend === 'socketmap', 30_000);
  const back = performance.now();
  let delivered = await status(viaMap);
  while (!(delivered.served.includes('sent') && delivered.outbound.includes('sent')) && performance.now() - back < 60_000) {
    await sleep(500);
    delivered = await status(viaMap);
  }
  console.log(`queued mail delivered ${Math.round(performance.now() - back)} ms after rcptgate returned (queue_run_delay 2s, backoff 2-4s)`);
  assert.ok(delivered.served.includes('sent') && delivered.outbound.includes('sent'), `after rcptgate returned: ${JSON.stringify(delivered)}`);
});
