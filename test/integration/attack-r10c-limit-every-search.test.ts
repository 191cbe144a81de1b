/**
 * A server restored without the index of the filter's attributes (or whose index was dropped),
 * behind a limit on unindexed searches for the service account (slapd `size.unchecked`, a common
 * hardening): every lookup search examines every entry, and the server refuses each with
 * adminLimitExceeded. Such a refusal was read as a limit on that one address (an address held by
 * more entries than the account may examine: a partial answer, the directory up), so every
 * recipient was deferred with rcptgate_directory_up 1, and a healthy second URL was never asked.
 * A search for an address no entry holds, refused the same way, now tells that the server refuses
 * every search: it counts as failing and its lookups go to the next URL; the readiness probe, which
 * searched the base entry alone, asks what a lookup asks. Real slapd servers, the real service.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient, countUserReplies } from '../helpers/socketmap-client.js';
import { until } from '../helpers/wait.js';

const USERS = 40;

async function metric(app: App, name: string): Promise<number> {
  const line = (await app.metrics.registry.metrics()).split('\n').find((l) => l.startsWith(name));
  return Number(line?.split(' ')[1] ?? 0);
}

function serviceOn(urls: string[], slapd: Slapd): Promise<App> {
  return startApp(
    {
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls, baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
    },
    { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
  );
}

/** Socketmap replies to user1..userN, asked one after another, counted by kind (OK, TEMP, NOTFOUND). */
const askUsers = (app: App) => countUserReplies(app.addresses.socketmap!.port, USERS);

describe('a server without its mail index behind a limit on unindexed searches (real slapd, the real service)', () => {
  let unindexed: Slapd;
  let healthy: Slapd;
  before(async () => {
    unindexed = await startSlapd({ generatedUsers: USERS, serviceLimits: 'size=unlimited size.unchecked=5' });
    healthy = await startSlapd({ generatedUsers: USERS });
    // The same server restarted with its mail index gone from the configuration.
    const conf = path.join(unindexed.dir, 'slapd.conf');
    await unindexed.stop();
    const text = await readFile(conf, 'utf8');
    assert.match(text, /index mail,mailAlternateAddress eq,sub/);
    await writeFile(conf, text.replace('index mail,mailAlternateAddress eq,sub', ''));
    await unindexed.start();
  });
  after(async () => {
    await unindexed?.close();
    await healthy?.close();
  });

  test('with a healthy second URL, valid users are answered by it', async () => {
    const app = await serviceOn([unindexed.url, healthy.url], unindexed);
    try {
      const counts = await askUsers(app);
      assert.equal(counts.NOTFOUND ?? 0, 0, JSON.stringify(counts));
      // The first refusal is taken for one address's limit while the server is checked.
      assert.ok((counts.OK ?? 0) >= USERS - 3, `valid users answered by the second server: ${JSON.stringify(counts)}`);
      assert.equal(await metric(app, 'rcptgate_directory_up'), 1);
    } finally {
      await app.close();
    }
  });

  test('alone, it is counted as down, every lookup tempfail', async () => {
    const app = await serviceOn([unindexed.url], unindexed);
    try {
      const counts = await askUsers(app);
      assert.deepEqual(counts, { TEMP: USERS });
      assert.equal(await metric(app, 'rcptgate_directory_up'), 0, 'a server that refuses every lookup is not up');
      assert.ok((await metric(app, 'rcptgate_directory_requests_total{outcome="error"}')) >= 1);
    } finally {
      await app.close();
    }
  });

  test('the readiness probe asks what a lookup asks: alone, the server is not ready and not up', async () => {
    // The probe searched the base entry only, which needs no index: ready and up at start.
    const app = await serviceOn([unindexed.url], unindexed);
    try {
      await until('the first probe is done', () => app.health().ready || app.health().directory.lastError !== null, 10_000, 50);
      const report = app.health();
      assert.equal(report.ready, false, JSON.stringify(report));
      assert.equal(report.reasonCode, 'waiting_for_directory');
      assert.equal(await metric(app, 'rcptgate_directory_up'), 0);
    } finally {
      await app.close();
    }
  });

  test('with its index, a limit on one shared address stays that address alone', async () => {
    // 30 entries hold one address: its search is refused, the others are answered, the directory up.
    const shared = Array.from({ length: 30 }, (_, i) => `dn: uid=share${i},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: share${i}\ncn: S\nsn: S\nmail: shared@example.com`);
    const limited = await startSlapd({ generatedUsers: USERS, serviceLimits: 'size=unlimited size.unchecked=5', ldifText: shared });
    const app = await serviceOn([limited.url, healthy.url], limited);
    try {
      const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
      try {
        for (let i = 0; i < 10; i++) assert.match(await client.query('recipients', 'shared@example.com'), /^TEMP /);
      } finally {
        client.close();
      }
      assert.deepEqual(await askUsers(app), { OK: USERS });
      assert.equal(await metric(app, 'rcptgate_directory_up'), 1);
      assert.equal(await metric(app, 'rcptgate_directory_requests_total{outcome="partial"}'), 10);
    } finally {
      await app.close();
      await limited.close();
    }
  });
});
