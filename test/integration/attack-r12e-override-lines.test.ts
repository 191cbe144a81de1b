/**
 * Override lists with `#` in an address. `#` is an ordinary character of a local part (RFC 5322
 * atext), and Postfix relays `ops#oncall@example.com` like any other address; a role address
 * like that, kept out of the directory, is what `overrides.allowFile` is for. The list's
 * comments (`# ...` at the start of a line or after white space, `#...` after the address)
 * keep working. The real service (bundled example directory) behind a real Postfix asking it
 * by policy delegation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';

describe('override lists holding addresses with "#" (real service, real Postfix)', () => {
  let dir: string;
  let app: App | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    requirePostfixTools();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12e-lists-'));
    const allowFile = path.join(dir, 'allow.txt');
    const denyFile = path.join(dir, 'deny.txt');
    await writeFile(allowFile, '# role addresses not in the directory\nops#oncall@example.com   # the pager\n#team@example.com\n');
    await writeFile(denyFile, 'bob@example.com#left in May\n');
    app = await startApp({
      listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
      overrides: { allowFile, denyFile },
      policy: { harvest: { maxUnknown: 0 } },
    });
    const port = app.addresses.policy!.port;
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com',
        smtpd_error_sleep_time: '0',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit`,
      },
    });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an allowed address with "#" is accepted; comments, inline ones included, are not addresses', async () => {
    const to = ['ops#oncall@example.com', 'team@example.com', 'bob@example.com', 'alice@example.com', 'nobody@example.com'];
    const commands = ['EHLO client.rcptgate.test', 'MAIL FROM:<sender@remote.example>', ...to.map((r) => `RCPT TO:<${r}>`), 'QUIT'];
    const replies = (await smtpSession(mx!.port, commands)).slice(2, 2 + to.length);
    assert.deepEqual(
      replies.map((r) => r.slice(0, 3)),
      ['250', '550', '550', '250', '550'],
      replies.join(' | '),
    );
  });
});
