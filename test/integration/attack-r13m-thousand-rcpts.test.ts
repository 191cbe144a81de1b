/**
 * One SMTP session naming 1,000 recipients, pipelined, through a real Postfix asking rcptgate's
 * milter (and, separately, its policy service) with a real slapd behind it: valid users, unknown
 * users of the enforced domain, unknown users of a shadow domain and foreign addresses
 * interleaved, with an RSET (the milter's SMFIC_ABORT) and a new transaction half-way. The client
 * passes the harvest limit early and is tarpitted from then on; every reply must still be the
 * recipient's own: 250 for valid and shadow, 550 for unknown, Postfix's own refusal for foreign ones.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const VALID = ['alice@example.com', 'bob@example.com', 'alice.smith@example.com', 'dave@example.org'];

/** The i-th recipient and the reply code it must get. */
function recipient(i: number): { to: string; code: string } {
  switch (i % 4) {
    case 0:
      return { to: VALID[(i / 4) % VALID.length]!, code: '250' };
    case 1:
      return { to: `ghost${i}@example.com`, code: '550' };
    case 2:
      return { to: `ghost${i}@example.org`, code: '250' }; // shadow domain: answered as before
    default:
      // Not relayed: Postfix refuses it before asking rcptgate (454 here: the test MX defers unauthorized relaying).
      return { to: `someone${i}@foreign.example`, code: '454' };
  }
}

/** Sends `commands` in one write (PIPELINING) after the greeting and EHLO; the final line of each reply. */
async function pipelined(port: number, commands: string[]): Promise<string[]> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
  socket.setEncoding('utf8');
  const lines: string[] = [];
  let buffered = '';
  const want = 2 + commands.length; // greeting, EHLO
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`timed out after ${lines.length} replies`))), 240_000);
    socket.on('data', (d: string) => {
      buffered += d;
      for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        if (line[3] === '-') continue;
        lines.push(line);
        if (lines.length === 1) socket.write('EHLO list.partner.example\r\n');
        if (lines.length === 2) socket.write(commands.map((c) => `${c}\r\n`).join(''));
        if (lines.length === want) (clearTimeout(timer), socket.destroy(), resolve(lines.slice(2)));
      }
    });
    socket.on('error', (err) => (clearTimeout(timer), reject(err)));
    socket.on('close', () => (clearTimeout(timer), reject(new Error(`closed after ${lines.length} replies: ${lines.slice(-3).join(' | ')}`))));
  });
}

function checkSession(replies: string[], half: number): void {
  // MAIL, half RCPTs, RSET, MAIL, half RCPTs, QUIT.
  assert.match(replies[0]!, /^250 /);
  assert.match(replies[1 + half]!, /^250 /, `RSET: ${replies[1 + half]}`);
  assert.match(replies[2 + half]!, /^250 /, `second MAIL: ${replies[2 + half]}`);
  const rcpts = [...replies.slice(1, 1 + half), ...replies.slice(3 + half, 3 + 2 * half)];
  const wrong: string[] = [];
  rcpts.forEach((reply, i) => {
    const { to, code } = recipient(i);
    if (!reply.startsWith(`${code} `)) wrong.push(`${to} -> ${reply}`);
  });
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${rcpts.length} recipients got the wrong reply`);
}

for (const frontend of ['milter', 'policy'] as const) {
  describe(`1,000 pipelined recipients in one session through the ${frontend} (real Postfix, slapd)`, () => {
    let ldap: Slapd;
    let app: App;
    let mx: PostfixInstance;

    before(async () => {
      requirePostfixTools();
      ldap = await startSlapd();
      app = await startApp(
        {
          listen: { http: null, socketmap: null, policy: frontend === 'policy' ? '127.0.0.1:0' : null, milter: frontend === 'milter' ? '127.0.0.1:0' : null, metrics: null },
          domains: { 'example.com': {}, 'example.org': { mode: 'shadow' } },
          directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
          policy: { harvest: { maxUnknown: 20, window: '10m', action: 'tarpit', delayStep: '10ms', maxDelay: '30ms' } },
          log: { level: 'error' },
        },
        { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
      );
      const port = app.addresses[frontend]!.port;
      const hook: Record<string, string> =
        frontend === 'policy'
          ? { smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit` }
          : { smtpd_milters: `inet:127.0.0.1:${port}`, milter_default_action: 'tempfail' };
      mx = await startPostfix({
        mainCf: {
          relay_domains: 'example.com, example.org',
          smtpd_recipient_limit: '1000',
          smtpd_error_sleep_time: '0',
          smtpd_soft_error_limit: '2000',
          smtpd_hard_error_limit: '2000',
          ...hook,
        },
      });
    });
    after(async () => {
      await mx?.close();
      await app?.close();
      await ldap?.close();
    });

    test('every recipient gets its own reply, across RSET and the tarpit', async () => {
      const half = 500;
      const rcpt = (i: number) => `RCPT TO:<${recipient(i).to}>`;
      const commands = [
        'MAIL FROM:<list@partner.example>',
        ...Array.from({ length: half }, (_, i) => rcpt(i)),
        'RSET',
        'MAIL FROM:<list@partner.example>',
        ...Array.from({ length: half }, (_, i) => rcpt(half + i)),
        'QUIT',
      ];
      const began = performance.now();
      const replies = await pipelined(mx.port, commands);
      console.log(`${frontend}: ${replies.length} replies in ${Math.round(performance.now() - began)} ms`);
      checkSession(replies, half);
      const delayed = (await app.metrics.registry.getSingleMetric('rcptgate_harvest_delayed_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
      console.log(`${frontend}: answers held back by the tarpit: ${delayed}`);
      assert.ok(delayed > 0, 'the client was tarpitted');
    });
  });
}
