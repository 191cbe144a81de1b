/**
 * The first URL accepts TCP but never answers the bind (a wedged server, a load balancer in front
 * of a dead one); the second answers. Each new connection gave the first half the timeout before
 * trying the second, and pooled connections are replaced all day (the server's idle timeout, a
 * firewall's): every lookup that needed a new connection waited 1.5 s of a 3 s timeout, and a
 * lookup of several keys then ran out of time. Such a server now rests like one whose searches
 * hang: new connections try the others first for a while. A real slapd closing idle connections
 * (idletimeout 2), a proxy that takes TCP and never forwards, the real service.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp } from '../helpers/app.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

describe('a first URL that takes TCP and never answers the bind (real slapd, the real service)', () => {
  let slapd: Slapd;
  let wedged: FaultProxy;
  before(async () => {
    slapd = await startSlapd();
    const conf = path.join(slapd.dir, 'slapd.conf');
    await slapd.stop();
    await writeFile(conf, `idletimeout 2\n${await readFile(conf, 'utf8')}`);
    await slapd.start();
    wedged = await startFaultProxy(slapd.port);
    wedged.mode = 'blackhole';
  });
  after(async () => {
    await wedged?.close();
    await slapd?.close();
  });

  test('after the first connection, lookups on new connections do not wait on it again', async () => {
    const app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        cache: { maxEntries: 0 },
        directory: { kind: 'ldap', ldap: { urls: [wedged.url, slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '3s' } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
    const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    try {
      assert.equal(await client.query('recipients', 'bob@example.com'), 'OK bob@example.com');
      const took: number[] = [];
      for (let i = 0; i < 4; i++) {
        // Past slapd's idle timeout: the pooled connections are gone, the next lookup needs a new one.
        await sleep(3_000);
        const started = performance.now();
        assert.equal(await client.query('recipients', 'bob@example.com'), 'OK bob@example.com');
        took.push(Math.round(performance.now() - started));
      }
      // Half the timeout (1.5 s) on the wedged server for each new connection before; a loaded machine leaves room.
      assert.ok(took.every((ms) => ms < 700), `lookups on new connections took ${took.join(', ')} ms`);
      assert.equal(wedged.connections.length, 1, 'the wedged server was not tried again for each new connection');
    } finally {
      client.close();
      await app.close();
    }
  });
});
