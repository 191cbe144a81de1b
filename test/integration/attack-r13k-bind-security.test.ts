/**
 * A directory that refuses simple binds without TLS: slapd's `security simple_bind=N`, Samba AD's
 * default `ldap server require strong auth`, AD's LDAP signing enforcement. The bind is refused
 * with confidentialityRequired (13) or strongerAuthRequired (8) before the password is looked at,
 * so it counts towards no account lockout. Until it is fixed every lookup is tempfail, never
 * unknown; once the directory's administrator takes the requirement back, lookups must answer
 * again at once. They were held by the pause meant for refused passwords (a minute, doubling up
 * to 15): mail deferred for minutes after the directory was fixed. Real slapd, the real service.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

const SECURITY = 'security simple_bind=64';

async function requireTls(slapd: Slapd, on: boolean): Promise<void> {
  const conf = path.join(slapd.dir, 'slapd.conf');
  const text = await readFile(conf, 'utf8');
  const without = text.split('\n').filter((l) => l.trim() !== SECURITY);
  await slapd.stop();
  await writeFile(conf, (on ? [...without, SECURITY] : without).join('\n'));
  await slapd.start();
}

describe('a directory that refuses simple binds without TLS, then is fixed (real slapd, the real service)', () => {
  let slapd: Slapd;
  let app: App;
  let client: SocketmapClient;
  before(async () => {
    slapd = await startSlapd({ databaseLines: [SECURITY] });
    app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        cache: { positiveTtl: '1ms', negativeTtl: '1ms' },
        directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
    client = await SocketmapClient.connect(app.addresses.socketmap!.port);
  });
  after(async () => {
    client?.close();
    await app?.close();
    await slapd?.close();
  });

  test('tempfail while refused; answered again within seconds of the fix, not held for a minute', async () => {
    for (const address of ['bob@example.com', 'nobody@example.com']) {
      const reply = await client.query('recipients', address);
      assert.match(reply, /^TEMP /, `${address} while binds need TLS: ${reply}`);
    }
    await requireTls(slapd, false);
    const fixed = performance.now();
    let reply = '';
    while (performance.now() - fixed < 30_000) {
      reply = await client.query('recipients', 'bob@example.com');
      if (reply.startsWith('OK')) break;
      await sleep(250);
    }
    const waited = Math.round(performance.now() - fixed);
    assert.match(reply, /^OK /, `bob still ${reply} ${waited} ms after the directory accepted simple binds again`);
    assert.ok(waited < 15_000, `answered ${waited} ms after the fix`);
    assert.match(await client.query('recipients', 'nobody@example.com'), /^NOTFOUND/);
  });
});
