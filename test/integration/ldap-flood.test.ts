import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

/**
 * Cold lookups at the load a real MX brings, with the default directory settings: nothing may be
 * refused or deferred while slapd is healthy, and nothing may report the directory as failing.
 */

const USERS = 800;

function expected(key: string): string {
  return key.startsWith('user') ? `OK ${key}` : 'NOTFOUND ';
}

describe('cold lookups under load with default directory settings (real slapd)', { timeout: 120_000 }, () => {
  let slapd: Slapd;
  let app: App;
  const logLines: string[] = [];
  before(async () => {
    slapd = await startSlapd({ generatedUsers: USERS });
    const config = validateConfig({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
      log: { level: 'info' },
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    app = await createApp({
      loaded: { config, file: null },
      logger: createLogger('info', sink),
      env: { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    });
    await app.start();
  });
  after(async () => {
    await app?.close();
    await slapd?.close();
  });

  test('100 pipelined cold lookups on one socketmap connection are all answered correctly', async () => {
    const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    try {
      const keys = Array.from({ length: 100 }, (_, i) => (i % 2 ? `user${i + 1}@example.com` : `ghost-a${i}@example.com`));
      const replies = await Promise.all(keys.map((k) => client.query('recipients', k)));
      keys.forEach((k, i) => assert.equal(replies[i], expected(k), k));
    } finally {
      client.close();
    }
  });

  test('500 concurrent cold lookups from 100 connections: no TEMP, every answer right, no "failing" log line', async () => {
    const clients = await Promise.all(Array.from({ length: 100 }, () => SocketmapClient.connect(app.addresses.socketmap!.port)));
    try {
      const replies = await Promise.all(
        clients.map(async (client, c) => {
          const keys = Array.from({ length: 5 }, (_, j) => {
            const n = 200 + c * 5 + j;
            return n % 2 ? `user${n}@example.com` : `ghost-b${n}@example.com`;
          });
          const got = await Promise.all(keys.map((k) => client.query('recipients', k)));
          return keys.map((k, j) => ({ key: k, reply: got[j]! }));
        }),
      );
      const all = replies.flat();
      assert.equal(all.length, 500);
      assert.deepEqual(all.filter((r) => r.reply.startsWith('TEMP')).slice(0, 3), [], 'no TEMP while slapd is healthy');
      for (const r of all) assert.equal(r.reply, expected(r.key), r.key);
      const failing = logLines.filter((l) => /failing|circuit open|overload/i.test(l));
      assert.deepEqual(failing, [], 'nothing reports the directory as failing');
      assert.equal((await app.metrics.directoryUp.get()).values[0]?.value, 1);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
