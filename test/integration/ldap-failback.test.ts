/**
 * Failback against real slapd servers. The first URL (the site's own server) goes down, the pool
 * fails over to the second (a replica elsewhere), then the first comes back. Before failback the
 * pool stayed on the replica until a connection died: for ever, in a long-running service. The
 * replica here lags: it lacks an entry just added on the first server, so which server answers
 * shows in the answers.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { closedPortUrl, startSlapd, type Slapd } from '../helpers/slapd.js';

type LdapInput = NonNullable<NonNullable<ConfigInput['directory']>['ldap']>;

const NEWHIRE = `dn: uid=newhire,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: mailRecipient
uid: newhire
cn: New Hire
sn: Hire
mail: newhire@example.com`;

function directory(urls: string[], slapd: Slapd, ldap: LdapInput, canaries: string[] = []): LdapDirectory {
  const config = configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls, baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } },
  }).directory.ldap;
  return new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), canaries });
}

/** Whether `address` has an entry, per the server that answered. */
async function found(dir: LdapDirectory, address: string): Promise<boolean> {
  return (await dir.lookup(address)).entry !== null;
}

describe('LDAP failback to the first URL', () => {
  let primary: Slapd;
  let replica: Slapd;
  before(async () => {
    primary = await startSlapd({ ldifText: [NEWHIRE] });
    replica = await startSlapd();
  });
  after(async () => {
    await primary?.close();
    await replica?.close();
  });

  test('once the first server answers again, lookups move back to it, and none fails on the way', async () => {
    const dir = directory([primary.url, replica.url], primary, { failbackAfter: '1s', timeout: '2s' });
    try {
      assert.equal(await found(dir, 'newhire@example.com'), true, 'the first server answers');
      await primary.stop();
      // The dead connection fails its search; the retry opens one on the replica.
      await dir.lookup('alice@example.com').catch(() => undefined);
      assert.equal(await found(dir, 'alice@example.com'), true);
      assert.equal(await found(dir, 'newhire@example.com'), false, 'the replica answers, without the new entry');
      await primary.start();
      const started = Date.now();
      let back = false;
      while (!back && Date.now() - started < 15_000) {
        // Every lookup is answered while the pool moves: the attempt runs beside the served connection.
        assert.equal(await found(dir, 'alice@example.com'), true);
        back = await found(dir, 'newhire@example.com');
        if (!back) await sleep(100);
      }
      assert.ok(back, 'lookups never returned to the first server');
      // About failbackAfter after the failover connection opened (it opened before the restart).
      assert.ok(Date.now() - started < 5_000, `failback took ${Date.now() - started} ms`);
      for (let i = 0; i < 20; i++) assert.equal(await found(dir, 'newhire@example.com'), true, 'every connection is back on the first server');
    } finally {
      await dir.close();
    }
  });

  test('with failbackAfter 0s the pool stays where it failed over to', async () => {
    if (!primary.pid) await primary.start();
    const dir = directory([primary.url, replica.url], primary, { failbackAfter: '0s', timeout: '2s' });
    try {
      assert.equal(await found(dir, 'newhire@example.com'), true);
      await primary.stop();
      await dir.lookup('alice@example.com').catch(() => undefined);
      assert.equal(await found(dir, 'newhire@example.com'), false);
      await primary.start();
      await sleep(1_500);
      for (let i = 0; i < 10; i++) assert.equal(await found(dir, 'newhire@example.com'), false, 'still on the replica');
    } finally {
      await dir.close();
    }
  });

  test('a first server that lost its read rights (success with no entries) is not failed back to when canaries are set', async () => {
    // The first server comes back with the service account out of its readers group: binds and
    // searches succeed, and find nothing. Moved back to it, every address would be unknown.
    const revoked = await startSlapd({ revocableReader: true });
    const dir = directory([revoked.url, replica.url], revoked, { failbackAfter: '1s', timeout: '2s' }, ['alice@example.com']);
    try {
      assert.equal(await found(dir, 'alice@example.com'), true, 'the first server answers');
      await revoked.revokeReader();
      await revoked.stop();
      await dir.lookup('alice@example.com').catch(() => undefined);
      await revoked.start();
      const end = Date.now() + 4_000;
      let n = 0;
      while (Date.now() < end) {
        assert.equal(await found(dir, 'alice@example.com'), true, `lookup ${n}: answered by the replica, every time`);
        n++;
        await sleep(50);
      }
    } finally {
      await dir.close();
      await revoked.close();
    }
  });

  test('a first URL that binds at once but answers searches late is not failed back to', async () => {
    // A server restored without its indexes: binds pass, searches answer seconds late. The
    // proxy refuses connections at first (the pool goes to the replica), then forwards binds at
    // once and holds every other answer for 3 s.
    const proxy = await startSlowSearchProxy(primary.port, 3_000);
    const dir = directory([proxy.url, replica.url], primary, { failbackAfter: '1s', timeout: '2s' });
    try {
      assert.equal(await found(dir, 'alice@example.com'), true);
      proxy.open();
      const end = Date.now() + 6_000;
      let n = 0;
      while (Date.now() < end) {
        assert.equal(await found(dir, 'newhire@example.com'), false, 'answered by the replica, every time');
        n++;
        await sleep(50);
      }
      assert.ok(proxy.connections >= 1, `failback was tried (${proxy.connections} connections through the proxy, ${n} lookups)`);
    } finally {
      await dir.close();
      await proxy.close();
    }
  });

  test('a first URL still down (refusing, or silent) is retried in the background; lookups are answered at once meanwhile', async () => {
    // A black hole: accepts and never answers, so each failback attempt waits its whole timeout.
    const held: net.Socket[] = [];
    const hole = net.createServer((s) => held.push(s));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const silent = `ldap://127.0.0.1:${(hole.address() as net.AddressInfo).port}`;
    try {
      for (const first of [await closedPortUrl(), silent]) {
        const dir = directory([first, replica.url], replica, { failbackAfter: '1s', timeout: '1s' });
        try {
          await dir.lookup('alice@example.com').catch(() => undefined); // the first connect may use up the time of the silent URL
          const end = Date.now() + 4_000;
          let slowest = 0;
          let n = 0;
          while (Date.now() < end) {
            const t = performance.now();
            assert.equal(await found(dir, 'alice@example.com'), true, first);
            slowest = Math.max(slowest, performance.now() - t);
            n++;
            await sleep(20);
          }
          assert.ok(slowest < 500, `${first}: slowest of ${n} lookups ${slowest.toFixed(0)} ms`);
        } finally {
          await dir.close();
        }
      }
    } finally {
      for (const s of held) s.destroy();
      await new Promise((resolve) => hole.close(resolve));
    }
  });
});

/**
 * A proxy to `port` that refuses connections until open(), then forwards the client's bytes at
 * once and the server's BindResponse at once, but holds every other answer `delayMs`.
 */
async function startSlowSearchProxy(port: number, delayMs: number) {
  let accepting = false;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!accepting) return void client.destroy();
    connections++;
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => (client.destroy(), upstream.destroy()));
    }
    client.on('data', (d: Buffer) => upstream.write(d));
    let buf = Buffer.alloc(0);
    upstream.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        const lenOctets = buf[1]! & 0x80 ? buf[1]! & 0x7f : 0;
        let len = lenOctets ? 0 : buf[1]!;
        for (let i = 0; i < lenOctets; i++) len = len * 256 + buf[2 + i]!;
        const body = 2 + lenOctets;
        if (buf.length < body + len) return;
        const message = buf.subarray(0, body + len);
        buf = buf.subarray(body + len);
        // SEQUENCE { messageID INTEGER, protocolOp ... }: the op's tag follows the ID.
        const op = message[body + 2 + message[body + 1]!];
        if (op === 0x61) client.write(message);
        else setTimeout(() => client.writable && client.write(message), delayMs).unref();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ldap://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    get connections() {
      return connections;
    },
    open: () => void (accepting = true),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
