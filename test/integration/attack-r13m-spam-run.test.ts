/**
 * A spam run on a backup MX, as a busy ISP sees it: a real Postfix asking rcptgate's policy
 * service (as the README sets it up) with the real service and a real slapd behind it.
 * smtp-source opens 40 concurrent sessions from 127.0.0.1 naming only unknown recipients
 * (1@example.com, 2@example.com, ...) while a legitimate sender on 127.0.0.2 sends message after
 * message to valid users and one mistyped address. Checked:
 *  - the legitimate sender's valid recipients get 250 and its typo 550, with RCPT latency
 *    (p50 / p99) measured without and with the flood and the flood's p99 bounded;
 *  - no recipient of the flood is accepted: every one gets 550, or 421 once the flagged
 *    spammer has used its places in the tarpit;
 *  - harvest protection flags the spammer (tarpit) and never the legitimate sender.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, requireTool, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { r13mTimedRcpts, percentile } from '../helpers/r13m-timed-smtp.js';

const VALID = ['alice@example.com', 'bob@example.com'];
const TYPO = 'alcie@example.com';

/** smtp-source: SESSIONS concurrent sessions, MESSAGES messages of RCPTS numbered (unknown) recipients each. */
function smtpSource(port: number, sessions: number, messages: number, rcpts: number): Promise<string> {
  const bin = requireTool('postfix').replace(/postfix$/, 'smtp-source');
  const args = ['-A', '-N', '-s', String(sessions), '-m', String(messages), '-r', String(rcpts), '-f', 'spam@spammer.example', '-t', '@example.com', `127.0.0.1:${port}`];
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 240_000, maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
      // -A: smtp-source warns on each refused RCPT and goes on; only a timeout is a failure.
      if (err && err.killed) reject(new Error(`smtp-source timed out: ${stderr.slice(-500)}`));
      else resolve(stderr);
    });
  });
}

/** One legitimate message after another from 127.0.0.2 until `stop()`; every RCPT's latency and reply. */
async function legitimateSender(port: number, until: () => boolean, minMessages: number) {
  const latencies: number[] = [];
  const replies: { to: string; reply: string }[] = [];
  for (let n = 0; n < minMessages || !until(); n++) {
    const to = [...VALID, TYPO];
    const got = await r13mTimedRcpts(port, '127.0.0.2', 'friend@partner.example', to);
    got.forEach((g, i) => {
      latencies.push(g.ms);
      replies.push({ to: to[i]!, reply: g.reply });
    });
  }
  return { latencies, replies };
}

function assertLegitimateAnswers(replies: { to: string; reply: string }[]): void {
  for (const { to, reply } of replies) {
    if (to === TYPO) assert.match(reply, /^550 5\.1\.1 /, `${to}: ${reply}`);
    else assert.match(reply, /^250 /, `${to}: ${reply}`);
  }
}

describe('a spam run on a backup MX beside a legitimate sender (real Postfix, policy, slapd)', () => {
  let ldap: Slapd;
  let app: App;
  let mx: PostfixInstance;

  before(async () => {
    requirePostfixTools();
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        // Tarpit as by default, with a shorter delay so the run stays short.
        policy: { harvest: { maxUnknown: 20, window: '10m', action: 'tarpit', delayStep: '300ms', maxDelay: '300ms' } },
        log: { level: 'error' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    const policyPort = app.addresses.policy!.port;
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${policyPort}, permit`,
        // Postfix's own error throttles off: rcptgate alone must keep the flood off the directory.
        smtpd_error_sleep_time: '0',
        smtpd_soft_error_limit: '1000',
        smtpd_hard_error_limit: '1000',
        smtpd_client_connection_count_limit: '0',
        default_process_limit: '60',
      },
    });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
    await ldap?.close();
  });

  test('the legitimate sender keeps its 250s, quickly; the flood gets no 250', async () => {
    const quiet = await legitimateSender(mx.port, () => true, 10);
    assertLegitimateAnswers(quiet.replies);

    let done = false;
    const flood = smtpSource(mx.port, 40, 200, 5).finally(() => (done = true));
    const busy = await legitimateSender(mx.port, () => done, 10);
    await flood;
    assertLegitimateAnswers(busy.replies);

    const q = { p50: percentile(quiet.latencies, 50), p99: percentile(quiet.latencies, 99) };
    const b = { p50: percentile(busy.latencies, 50), p99: percentile(busy.latencies, 99) };
    console.log(`legitimate RCPT latency ms: quiet p50 ${q.p50.toFixed(1)} p99 ${q.p99.toFixed(1)} (${quiet.latencies.length}); flood p50 ${b.p50.toFixed(1)} p99 ${b.p99.toFixed(1)} (${busy.latencies.length})`);
    // Never tarpitted (that would hold every RCPT >= 300 ms); generous for a loaded machine. The
    // p99 may include Postfix's own wait for a free cleanup process at a session's first valid
    // RCPT (about 1 s while 40 tarpitted sessions held its processes; its log then shows "connect
    // to subsystem public/cleanup" a second before the answer, the policy reply in the same second).
    assert.ok(b.p50 < 250, `flood p50 ${b.p50} ms`);
    assert.ok(b.p99 < 3000, `flood p99 ${b.p99} ms`);

    // Every flood recipient Postfix logged: refused, never accepted.
    const log = await mx.maillog();
    const spam = log.split('\n').filter((l) => l.includes('from=<spam@spammer.example>') && / RCPT from /.test(l));
    const codes: Record<string, number> = {};
    for (const line of spam) {
      const code = / RCPT from [^:]*: (\d{3}) /.exec(line)?.[1] ?? 'other';
      codes[code] = (codes[code] ?? 0) + 1;
    }
    console.log(`flood RCPT replies: ${JSON.stringify(codes)}`);
    // 550 until the spammer is flagged, then the tarpit (550, held back) for a few sessions at a
    // time and 421 for the others, on which Postfix hangs up (smtp-source moves on to its next message).
    assert.ok(spam.length > 21, `flood RCPTs logged: ${JSON.stringify(codes)}`);
    assert.deepEqual(Object.keys(codes).filter((c) => c !== '550' && c !== '421'), [], JSON.stringify(codes));
    assert.ok((codes['421'] ?? 0) > 0, JSON.stringify(codes));

    // The spammer was tarpitted, the legitimate sender never: held back at most the spammer's
    // recipients past its first 21 (20 tolerated, the 21st flags it).
    const delayed = (await app.metrics.registry.getSingleMetric('rcptgate_harvest_delayed_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
    assert.ok(delayed > 0 && delayed <= spam.length - 21, `answers held back: ${delayed} of ${spam.length}`);
  });
});
