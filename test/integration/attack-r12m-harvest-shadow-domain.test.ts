/**
 * Shadow mode means "answer as the MTA did before rcptgate": valid, counted as a would-be
 * refusal, never refused. But a client flagged by harvest protection (reject mode) got 421 for
 * every recipient, those of a shadow domain too, postmaster included: a domain being rolled out
 * refused mail it had always taken. A recipient in a shadow domain is now neither refused nor
 * held back for its client's record; enforced domains still are. Through a real Postfix asking
 * the real serve's policy listener (LDIF example directory).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { XCLIENT_CF, xclientRcpts } from '../helpers/frontend-mx.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';

const codes = (replies: string[]) => replies.map((r) => r.slice(0, 9));

describe('harvest protection and shadow domains (real Postfix, real serve)', () => {
  let dir: string;
  let serve: ServeProcess | undefined;
  let mx: PostfixInstance | undefined;
  before(async () => {
    requirePostfixTools();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12m-shadow-'));
    const config = path.join(dir, 'rcptgate.json');
    await writeFile(
      config,
      JSON.stringify({
        listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
        domains: { 'example.com': {}, 'example.org': { mode: 'shadow' } },
        policy: { harvest: { maxUnknown: 2, action: 'reject' } },
        log: { level: 'info' },
      }),
    );
    serve = startServe(['--config', config]);
    const port = await listenerPort(serve, 'policy');
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com, example.org',
        smtpd_error_sleep_time: '0',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit`,
        ...XCLIENT_CF,
      },
    });
  });
  after(async () => {
    await mx?.close();
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a flagged client is refused in the enforced domain and answered as before in the shadow domain', async () => {
    const harvester = '192.0.2.90';
    const probe = await xclientRcpts(mx!, harvester, null, ['ghost1@example.com', 'ghost2@example.com', 'ghost3@example.com']);
    assert.deepEqual(codes(probe), ['550 5.1.1', '550 5.1.1', '421 4.7.0'], probe.join('\n'));
    const after = await xclientRcpts(mx!, harvester, null, ['carol@example.org', 'nobody@example.org', 'postmaster@example.org']);
    assert.deepEqual(codes(after), ['250 2.1.5', '250 2.1.5', '250 2.1.5'], `shadow domain: ${after.join('\n')}`);
    const enforced = await xclientRcpts(mx!, harvester, null, ['alice@example.com']);
    assert.deepEqual(codes(enforced), ['421 4.7.0'], 'the enforced domain still refuses the flagged client');
  });
});
