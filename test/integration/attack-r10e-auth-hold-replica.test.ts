/**
 * Two replicas; the first refuses the bind account (restored from an old backup without it, or a
 * rotated password not yet replicated there: the servers need not agree). The second, which
 * serves every lookup, restarts for a moment. A new connection then found the second down and
 * the first refusing, which paused every bind for a minute (doubling to 15) although only the
 * first had refused: every lookup needing a connection was deferred for a minute after the second
 * was back within a second. A pause now holds the servers that refused the bind; the others are
 * still tried. Failback made the same pause with no outage at all: its attempt at the first URL
 * was refused, and every connection the second replica later closed for idleness (idletimeout)
 * could not be replaced for a minute, then 2, 4... Real slapd servers, the service as `rcptgate serve` builds it, lookups through its
 * socketmap listener.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, TEST_SCHEMA, type Slapd } from '../helpers/slapd.js';

describe('a replica refusing the bind account while the other restarts', () => {
  let refusing: Slapd;
  let healthy: Slapd;
  let dir: string;
  let app: App | undefined;
  let client: SocketmapClient | undefined;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-hold-replica-'));
    // The replica that accepts the bind closes connections idle for 2 s (set through the included schema file).
    const schema = path.join(dir, 'idle.schema');
    await writeFile(schema, `${await readFile(TEST_SCHEMA, 'utf8')}\nidletimeout 2\n`);
    [refusing, healthy] = await Promise.all([startSlapd(), startSlapd({ schemaFile: schema })]);
    // The service account's password on the first replica is not the one rcptgate has.
    await refusing.modify(`dn: ${refusing.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: an-older-password\n`);
  });
  after(async () => {
    client?.close();
    await app?.close();
    await Promise.all([refusing?.close(), healthy?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(extra: object): Promise<void> {
    client?.close();
    await app?.close();
    const secret = path.join(dir, 'bind-password');
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(secret, `${healthy.servicePassword}\n`);
    await writeFile(file, JSON.stringify({
      listen: { socketmap: '127.0.0.1:0', http: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [refusing.url, healthy.url], baseDN: healthy.baseDN, bindDN: healthy.serviceDN, bindPasswordFile: secret, timeout: '2s', ...extra } },
      log: { level: 'silent' },
    }));
    app = await createApp({ loaded: loadConfig(file, {}), logger: silentLogger() });
    await app.start();
    client = await SocketmapClient.connect(app.addresses.socketmap!.port);
  }

  test('lookups are answered again as soon as the server that accepts the bind is back', async () => {
    await serve({});
    assert.equal(await client!.query('recipients', 'alice@example.com'), 'OK alice@example.com', 'served by the second replica');

    // The second replica restarts: its connections drop, and for a moment only the refusing one answers.
    await healthy.stop();
    assert.match(await client!.query('recipients', 'bob@example.com'), /^TEMP/, 'deferred while no server accepts the bind');
    await healthy.start();

    const started = Date.now();
    let reply = '';
    while (Date.now() - started < 15_000) {
      reply = await client!.query('recipients', 'bob@example.com');
      if (reply.startsWith('OK')) break;
      await sleep(250);
    }
    const waited = Date.now() - started;
    assert.equal(reply, 'OK bob@example.com', `answered again after the restart (last reply after ${waited} ms: ${reply})`);
    assert.ok(waited < 10_000, `answered within 10 s of the restart: ${waited} ms`);
  });

  test('a refused failback to the first URL does not stop connections to the second', async () => {
    await serve({ failbackAfter: '1s' });
    // Lookups for 36 s: the first URL rests 30 s after refusing at start, then failback tries it and is refused.
    const started = Date.now();
    for (let i = 0; Date.now() - started < 36_000; i++) {
      // Addresses never asked before, so each is a search (no answer cache hit) and the connection stays busy.
      assert.match(await client!.query('recipients', `nobody${i}@example.com`), /^NOTFOUND/);
      await sleep(500);
    }
    // Quiet for 4 s: the second replica closes the idle connections, and the next lookup needs a new one.
    await sleep(4_000);
    const replies: string[] = [];
    for (const user of ['bob', 'alice.smith', 'alice']) replies.push(await client!.query('recipients', `${user}@example.com`));
    assert.deepEqual(replies, ['OK bob@example.com', 'OK alice@example.com', 'OK alice@example.com'], 'answered on a new connection to the second replica');
  });
});
