/**
 * Rollout rules as a sender sees them through a real Postfix, with rcptgate asked by each of its
 * three front ends (policy delegation, milter, socketmap relay_recipient_maps) and backed by a
 * real slapd:
 * - shadow mode means "behave as before": a Postfix without rcptgate takes `a..b@`, `user.@` or
 *   a 65-octet local part in a relayed domain with 250, so a shadow domain must too (counted
 *   and logged as a would-be refusal), while an enforced domain still refuses them;
 * - the deny list stops a mailbox, not one spelling of it: the mailbox's other addresses
 *   (a second `mail` value, a `mailAlternateAddress`) reach it no more, until the address
 *   leaves the list and the service reloads.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/raw-smtp.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

type Frontend = 'policy' | 'milter' | 'socketmap';
const FRONTENDS: Frontend[] = ['policy', 'milter', 'socketmap'];

/** main.cf of an MX relaying example.com and example.org that asks rcptgate through `frontend`. */
function hook(frontend: Frontend, port: number): Record<string, string> {
  const base = { smtpd_error_sleep_time: '0', smtpd_soft_error_limit: '100', smtpd_hard_error_limit: '100' };
  if (frontend === 'socketmap') {
    return { ...base, relay_domains: `socketmap:inet:127.0.0.1:${port}:domains`, relay_recipient_maps: `socketmap:inet:127.0.0.1:${port}:recipients` };
  }
  const relay = { ...base, relay_domains: 'example.com, example.org' };
  if (frontend === 'policy') return { ...relay, smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit` };
  return { ...relay, smtpd_milters: `inet:127.0.0.1:${port}`, milter_default_action: 'tempfail' };
}

describe('rollout rules through real Postfix MXs asking each front end (real slapd)', () => {
  let dir: string;
  let ldap: Slapd;
  let app: App;
  let denyFile: string;
  const mx = new Map<Frontend, PostfixInstance>();
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    requirePostfixTools();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12e-rollout-'));
    ldap = await startSlapd();
    denyFile = path.join(dir, 'deny.txt');
    await writeFile(denyFile, '# left the company today\nalice@example.com\n');
    const file = path.join(dir, 'rcptgate.yaml');
    const raw = {
      listen: { http: null, socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
      domains: { 'example.com': {}, 'example.org': { mode: 'shadow' } },
      overrides: { denyFile },
      policy: { harvest: { maxUnknown: 0 } },
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, timeout: '2s' } },
    };
    await writeFile(file, JSON.stringify(raw));
    const logger = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } as never);
    app = await createApp({ loaded: { config: validateConfig(raw), file }, logger });
    await app.start();
    const started = await Promise.all(FRONTENDS.map((f) => startPostfix({ mainCf: hook(f, app.addresses[f]!.port) })));
    FRONTENDS.forEach((f, i) => mx.set(f, started[i]!));
  });
  after(async () => {
    await Promise.all([...mx.values()].map((m) => m.close()));
    await app?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The RCPT reply lines of one session through `frontend`'s MX, in order. */
  const rcpts = async (frontend: Frontend, to: string[]): Promise<string[]> => {
    const commands = ['EHLO client.rcptgate.test', 'MAIL FROM:<sender@remote.example>', ...to.map((r) => `RCPT TO:<${r}>`), 'QUIT'];
    return (await smtpSession(mx.get(frontend)!.port, commands)).slice(2, 2 + to.length);
  };
  const shadowCount = async () => (await app.metrics.shadowRejections.get()).values.find((v) => v.labels.domain === 'example.org')?.value ?? 0;
  const code = (line: string) => line.slice(0, 3);

  test('a shadow domain takes a recipient of bad syntax as Postfix alone would (250), counting and logging the would-be 501', async () => {
    const bad = ['a..b@example.org', 'user.@example.org', `${'x'.repeat(65)}@example.org`];
    for (const frontend of FRONTENDS) {
      const before = await shadowCount();
      const replies = await rcpts(frontend, [...bad, 'dave@example.org']);
      assert.deepEqual(replies.map(code), ['250', '250', '250', '250'], `${frontend}: ${replies.join(' | ')}`);
      assert.equal((await shadowCount()) - before, bad.length, `${frontend}: every would-be refusal counted`);
    }
    const line = logs.find((l) => l.msg === 'shadow mode: would have refused' && l.address === 'a..b@example.org');
    assert.ok(line, 'no shadow log line for a..b@example.org');
    assert.equal(line.enforcedVerdict, 'invalid');
    // The enforced domain still refuses bad syntax (501 5.1.3; the recipients map can only say NOTFOUND: 550).
    for (const frontend of FRONTENDS) {
      const [reply] = await rcpts(frontend, ['a..b@example.com']);
      assert.equal(code(reply!), frontend === 'socketmap' ? '550' : '501', `${frontend}: ${reply}`);
    }
  });

  test("a denied mailbox gets none of its addresses' mail, through every front end, until it leaves the list", async () => {
    // alice@example.com is denied; alice.smith@ (second mail value) and ally@ (mailAlternateAddress) are the same mailbox.
    const to = ['alice@example.com', 'alice.smith@example.com', 'ally@example.com', 'Ally+news@example.com', 'bob@example.com'];
    for (const frontend of FRONTENDS) {
      const replies = await rcpts(frontend, to);
      assert.deepEqual(replies.map(code), ['550', '550', '550', '550', '250'], `${frontend}: ${replies.join(' | ')}`);
      if (frontend !== 'socketmap') assert.match(replies[2]!, /5\.1\.1/);
    }
    // Off the list: the cached answers of the directory are good again at once.
    await writeFile(denyFile, '# nobody\n');
    assert.equal(await app.reload(), true);
    for (const frontend of FRONTENDS) {
      const replies = await rcpts(frontend, to);
      assert.deepEqual(replies.map(code), ['250', '250', '250', '250', '250'], `${frontend}: ${replies.join(' | ')}`);
    }
  });
});
