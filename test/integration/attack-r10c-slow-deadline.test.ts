/**
 * A directory answering slowly, each search just inside `directory.ldap.timeout`. One lookup may
 * need several searches in turn (the address, then without its sub-address, then `@domain`), and
 * with `directory.canaries` a "no such entry" waits for a canary check: each search alone kept to
 * the timeout, the lookup did not (measured: 4.2 s with a 2 s timeout, 8.5 s with a canary). The
 * timeout is what an MTA's milter or policy timeout is set against; past it, Postfix gives up on
 * the milter for the rest of the session. Real slapd behind a delaying proxy, the real service.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { until } from '../helpers/wait.js';

const TIMEOUT_MS = 2_000;
/** Each way: a search takes 1.4 s, within the timeout, so two in turn do not fit. */
const DELAY_MS = 700;
/** The engine's backstop margin past the timeout, and room for a loaded machine. */
const BOUND_MS = TIMEOUT_MS + 500 + 700;

describe('a directory answering each search just inside the timeout (real slapd, the real service)', () => {
  let slapd: Slapd;
  let proxy: DelayProxy;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startDelayProxy(slapd.port, DELAY_MS);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  for (const canaries of [[], ['alice@example.com']]) {
    test(`a lookup of several keys answers within the timeout${canaries.length ? ', a canary check included' : ''}; asked again it is answered right`, async () => {
      const app: App = await startApp(
        {
          listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', canaries, ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms` } },
        },
        { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
      );
      const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
      try {
        // The pool's first bind crosses the proxy too: wait until the directory answers at all.
        await until('the directory answers through the slow proxy', async () => (await client.query('recipients', 'bob@example.com')) === 'OK bob@example.com', 30_000, 200);
        const truth: Record<string, string> = { 'bob+tag@example.com': 'OK bob@example.com', 'ghost+x@example.com': 'NOTFOUND ', 'nobody@example.com': 'NOTFOUND ' };
        for (const [address, right] of Object.entries(truth)) {
          const started = performance.now();
          const reply = await client.query('recipients', address);
          const took = performance.now() - started;
          assert.ok(took < BOUND_MS, `${address}: answered after ${Math.round(took)} ms, past the ${TIMEOUT_MS} ms timeout (${reply})`);
          assert.ok(reply === right || reply.startsWith('TEMP '), `${address}: ${reply}`);
          // The searches went on: their answers are cached, so a retry (as the MTA's) gets the right one.
          await until(`${address} is answered right when asked again`, async () => {
            const t = performance.now();
            const again = await client.query('recipients', address);
            assert.ok(performance.now() - t < BOUND_MS, `${address} asked again: ${Math.round(performance.now() - t)} ms`);
            assert.ok(again === right || again.startsWith('TEMP '), `${address} asked again: ${again}`);
            return again === right;
          }, 30_000, 300);
        }
      } finally {
        client.close();
        await app.close();
      }
    });
  }
});
