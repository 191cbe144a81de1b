import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startPostfix, swaks, type PostfixInstance } from '../helpers/postfix.js';

/**
 * Safe rollout through a real Postfix backup MX: shadow mode, always-valid local parts while the
 * directory is down, and the deny list — each seen as the SMTP reply a sender gets.
 */
describe('rollout rules through a real Postfix backup MX', () => {
  let dir: string;
  let ldap: Slapd;
  let app: App;
  let mx: PostfixInstance;
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-rollout-'));
    ldap = await startSlapd();
    const deny = path.join(dir, 'deny.txt');
    await writeFile(deny, '# leaves today\nbob@example.com\n');
    const config = validateConfig({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: { 'example.com': {}, 'example.org': { mode: 'shadow' } },
      overrides: { denyFile: deny },
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, timeout: '2s' } },
    });
    const logger = createLogger('info', {
      write(line: string) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    } as never);
    app = await createApp({ loaded: { config, file: null }, logger });
    await app.start();
    const port = app.addresses.socketmap!.port;
    mx = await startPostfix({
      mainCf: {
        relay_domains: `socketmap:inet:127.0.0.1:${port}:domains`,
        relay_recipient_maps: `socketmap:inet:127.0.0.1:${port}:recipients`,
      },
    });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
    await ldap?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('shadow mode accepts an unknown recipient with 250, logging and counting the would-be 550', async () => {
    const before = (await app.metrics.shadowRejections.get()).values.find((v) => v.labels.domain === 'example.org')?.value ?? 0;
    const r = await swaks({ port: mx.port, from: 'sender@remote.example', to: ['nobody@example.org', 'dave@example.org'] });
    assert.equal(r.rcpt[0]!.reply?.code, 250, r.transcript);
    assert.equal(r.rcpt[1]!.reply?.code, 250, r.transcript);
    const after = (await app.metrics.shadowRejections.get()).values.find((v) => v.labels.domain === 'example.org')?.value ?? 0;
    assert.equal(after - before, 1, 'exactly the unknown recipient is counted');
    const line = logs.find((l) => l.msg === 'shadow mode: would have refused' && l.address === 'nobody@example.org');
    assert.ok(line, 'no shadow log line for nobody@example.org');
    assert.equal(line.enforcedVerdict, 'unknown');
    assert.ok(!logs.some((l) => l.msg === 'shadow mode: would have refused' && l.address === 'dave@example.org'));
    // The enforced domain still rejects.
    const enforced = await swaks({ port: mx.port, from: 'sender@remote.example', to: ['nobody@example.com'] });
    assert.equal(enforced.rcpt[0]!.reply?.code, 550, enforced.transcript);
    assert.match(enforced.rcpt[0]!.reply!.text, /5\.1\.1/);
  });

  test('a denied address is rejected with 550 although the directory has it', async () => {
    const r = await swaks({ port: mx.port, from: 'sender@remote.example', to: ['bob@example.com', 'alice@example.com'] });
    assert.equal(r.rcpt[0]!.reply?.code, 550, r.transcript);
    assert.match(r.rcpt[0]!.reply!.text, /5\.1\.1/);
    assert.equal(r.rcpt[1]!.reply?.code, 250, r.transcript);
  });

  test('postmaster@ is accepted while slapd is stopped; an uncached user is deferred with 451', async () => {
    await ldap.stop();
    try {
      const r = await swaks({ port: mx.port, from: 'sender@remote.example', to: ['postmaster@example.com', 'abuse@example.com', 'user3@example.com'] });
      assert.equal(r.rcpt[0]!.reply?.code, 250, r.transcript);
      assert.equal(r.rcpt[1]!.reply?.code, 250, r.transcript);
      assert.equal(r.rcpt[2]!.reply?.code, 451, r.transcript);
      assert.match(r.rcpt[2]!.reply!.text, /4\.3\.0/);
      const queued = await mx.queuedRecipients();
      assert.ok(queued.includes('postmaster@example.com'), `postmaster not queued: ${queued.join(', ')}`);
    } finally {
      await ldap.start();
    }
  });
});
