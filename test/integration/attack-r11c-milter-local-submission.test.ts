/**
 * The milter as a non_smtpd_milter (`non_smtpd_milters = $smtpd_milters`, as DKIM set-ups
 * advise), behind a real Postfix: mail submitted with sendmail(1) is passed to the milter by
 * cleanup, which pretends a client "localhost [127.0.0.1]", port 0. Postfix cannot refuse one
 * recipient of such a message: a reject or tempfail for any RCPT keeps the whole message in the
 * maildrop ("can't reject recipient in non-smtpd(8) submission", "message not accepted, try
 * again later") and pickup retries it for ever, its valid recipients included. Engine: LDIF for
 * example.com/example.org, a stopped real slapd for example.net (split engine).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { PostfixInstance } from '../helpers/postfix.js';
import { rawRcpts } from '../helpers/raw-smtp.js';
import { findTool } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';
import { startFrontendMx, type FrontendMx } from '../helpers/frontend-mx.js';

/** Postfix's sendmail(1) for this instance: the message on stdin, the recipients as arguments. */
function sendmail(mx: PostfixInstance, from: string, to: string[], subject: string): Promise<void> {
  const bin = findTool('sendmail');
  if (!bin) throw new Error('sendmail not found: install Postfix (it provides /usr/sbin/sendmail)');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['-f', from, ...to], { env: { ...process.env, MAIL_CONFIG: mx.configDir }, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`sendmail exit ${code}: ${stderr}`))));
    child.stdin.end(`Subject: ${subject}\n\nlocal mail\n`);
  });
}

describe('milter as a non_smtpd_milter behind a real Postfix: mail submitted with sendmail(1)', () => {
  let fx: FrontendMx | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    fx = await startFrontendMx('milter', { mainCf: () => ({ non_smtpd_milters: '$smtpd_milters' }) });
    mx = fx.mx;
  });

  after(async () => {
    await fx?.close();
  });

  test('a local message with unknown and undecidable recipients leaves the maildrop for every recipient; SMTP from 127.0.0.1 is still checked', async () => {
    const to = ['alice@example.com', 'nobody@example.com', 'ghost@example.com', 'ghost2@example.org', 'someone@example.net'];
    await sendmail(mx!, 'root@client.example', to, 'first');
    await sendmail(mx!, 'root@client.example', ['dave@example.org', 'ghost3@example.com'], 'second');
    // Either cleanup takes both messages (qmgr logs them), or it refuses one (cleanup warns).
    const taken = /qmgr\[\d+\]: \w+: from=<root@client\.example>/g;
    await until('cleanup took or refused both local messages', async () => {
      const log = await mx!.maillog();
      return (log.match(taken)?.length ?? 0) >= 2 || /can't reject recipient/.test(log);
    }, 60_000);
    const log = await mx!.maillog();
    assert.doesNotMatch(log, /can't reject recipient|message not accepted/, log);
    const queue = await mx!.queue();
    assert.equal(queue.filter((m) => m.queueName === 'maildrop').length, 0, JSON.stringify(queue));
    const queued = await mx!.queuedRecipients();
    for (const r of [...to, 'dave@example.org', 'ghost3@example.com']) assert.ok(queued.includes(r), `${r} not queued: ${queued.join(', ')}`);
    // Local mail counted against nobody: a client on 127.0.0.1 still gets its verdicts, not 421.
    const got = await rawRcpts(mx!.port, '127.0.0.1', 'sender@client.example', ['<nobody@example.com>', '<alice@example.com>', '<someone@example.net>']);
    assert.match(got[0]!, /^550 5\.1\.1 /, got.join('\n'));
    assert.match(got[1]!, /^250 /, got.join('\n'));
    assert.match(got[2]!, /^451 4\.3\.0 /, got.join('\n'));
  });
});
