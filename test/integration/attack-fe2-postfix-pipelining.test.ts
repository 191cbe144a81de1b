/**
 * The policy and milter front ends behind a real Postfix smtpd, driven by a raw SMTP client that
 * uses PIPELINING the way bulk senders do: 300 RCPTs written at once in one message, RSET between
 * transactions, RCPT before MAIL, two messages in one session, and a client that hangs up in the
 * middle of DATA. Every RCPT must get its own right answer in order, Postfix must log no milter
 * or policy warning, and rcptgate must hold no milter connection once the sessions are over.
 * (The other Postfix tests send one RCPT at a time.)
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { sleep } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

/** One SMTP session: EHLO, then `script` written at once; the replies after EHLO's. */
async function session(port: number, script: string, replies: number, hangUp = false): Promise<string[]> {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.setEncoding('utf8');
  s.on('error', () => undefined);
  let buffered = '';
  const lines: string[] = [];
  s.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      if (line[3] !== '-') lines.push(line);
    }
  });
  const until = async (n: number) => {
    for (const end = Date.now() + 30_000; lines.length < n && Date.now() < end; ) await sleep(10);
  };
  try {
    await until(1);
    s.write('EHLO client.rcptgate.test\r\n');
    await until(2);
    s.write(script);
    await until(2 + replies);
    if (!hangUp) {
      s.write('QUIT\r\n');
      await until(3 + replies);
    }
    return lines.slice(2, 2 + replies);
  } finally {
    s.destroy();
  }
}

const FROM = 'MAIL FROM:<sender@client.example>\r\n';
const N = 300;
const RCPTS = Array.from({ length: N }, (_, i) => (i % 3 === 1 ? `nobody${i}@example.com` : i % 3 === 0 ? 'alice@example.com' : 'bob@example.com'));

for (const frontend of ['milter', 'policy'] as const) {
  describe(`${frontend} behind a real Postfix, pipelined clients`, () => {
    let app: App;
    let mx: PostfixInstance;

    before(async () => {
      requirePostfixTools();
      app = await startApp({
        listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
        // 100 unknown recipients per session: harvest protection would (rightly) step in.
        policy: { harvest: { maxUnknown: 0 } },
        log: { level: 'warn' },
      });
      const hook: Record<string, string> =
        frontend === 'milter'
          ? { smtpd_milters: `inet:127.0.0.1:${app.addresses.milter!.port}`, milter_default_action: 'tempfail' }
          : { smtpd_recipient_restrictions: `check_policy_service inet:127.0.0.1:${app.addresses.policy!.port}, reject_unauth_destination` };
      mx = await startPostfix({
        mainCf: { relay_domains: 'example.com', smtpd_error_sleep_time: '0', smtpd_soft_error_limit: '1000', smtpd_hard_error_limit: '1000', ...hook },
      });
    });
    after(async () => {
      await mx?.close();
      await app?.close();
    });

    test(`${N} RCPTs pipelined in one message each get their own answer, in order`, async () => {
      const got = await session(mx.port, FROM + RCPTS.map((r) => `RCPT TO:<${r}>\r\n`).join(''), 1 + N);
      assert.equal(got.length, 1 + N);
      const wrong = RCPTS.map((r, i) => [r, got[1 + i]!] as const).filter(([r, reply]) => !reply.startsWith(r.startsWith('nobody') ? '550 5.1.1 ' : '250 '));
      assert.deepEqual(wrong, []);
    });

    test('RSET, RCPT before MAIL, two messages in a session, and a hang-up in DATA', async () => {
      const rset = await session(mx.port, `${FROM}RCPT TO:<nobody@example.com>\r\nRSET\r\n${FROM}RCPT TO:<alice@example.com>\r\nRCPT TO:<ghost@example.com>\r\n`, 6);
      assert.deepEqual(rset.map((l) => l.slice(0, 3)), ['250', '550', '250', '250', '250', '550']);
      const early = await session(mx.port, `RCPT TO:<alice@example.com>\r\n${FROM}RCPT TO:<nobody@example.com>\r\n`, 3);
      assert.deepEqual(early.map((l) => l.slice(0, 3)), ['503', '250', '550']);
      const cut = await session(mx.port, `${FROM}RCPT TO:<alice@example.com>\r\nDATA\r\n`, 3, true);
      assert.deepEqual(cut.map((l) => l.slice(0, 3)), ['250', '250', '354']);
      const two = await session(mx.port, `${FROM}RCPT TO:<alice@example.com>\r\nDATA\r\nSubject: x\r\n\r\nhello\r\n.\r\n${FROM}RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\n`, 7);
      assert.deepEqual(two.map((l) => l.slice(0, 3)), ['250', '250', '354', '250', '250', '550', '250']);
      await sleep(500);
      assert.doesNotMatch(await mx.maillog(), /warning: .*(milter|policy)|fatal|panic/);
      // Postfix opens a milter connection per SMTP session (policy connections it keeps for reuse).
      if (frontend === 'milter') assert.match(await app.metrics.registry.metrics(), /^rcptgate_connections\{frontend="milter"\} 0$/m, 'no milter connection is left open');
    });
  });
}
