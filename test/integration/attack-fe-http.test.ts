/**
 * The HTTP batch endpoint against a client that leaves, with the real app and a real slapd: a
 * POST /v1/recipients:check whose connection is reset before its answer starts no further
 * lookups. Each abandoned batch used to run all its 1000 lookups, so a client that sends batches
 * and resets at once (freeing its connection slot each time) kept any number of them running at
 * the directory, past every connection cap, ahead of the MTAs' lookups.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { sleep } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

async function httpLookups(app: App): Promise<number> {
  const text = await app.metrics.registry.metrics();
  return [...text.matchAll(/^rcptgate_lookups_total\{[^}]*frontend="http"[^}]*\} (\S+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

function postBatch(port: number, body: string): http.ClientRequest {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/recipients:check', headers: { 'content-type': 'application/json' }, agent: false });
  req.on('error', () => undefined);
  req.end(body);
  return req;
}

describe('HTTP batches of a client that leaves (real slapd)', () => {
  let ldap: Slapd;
  let app: App;

  before(async () => {
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        cache: { maxEntries: 0 },
        log: { level: 'warn' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('a batch whose connection is reset stops starting lookups; one that stays is answered whole', async () => {
    const port = app.addresses.http!.port;
    const batch = (tag: string) => JSON.stringify({ addresses: Array.from({ length: 1000 }, (_, i) => `${tag}-${i}@example.com`) });
    for (let k = 0; k < 5; k++) {
      const req = postBatch(port, batch(`gone${k}`));
      setTimeout(() => req.destroy(), 30);
    }
    await sleep(4_000);
    const abandoned = await httpLookups(app);
    // 5,000 before; now what was under way when each client left (8 at a time per batch).
    assert.ok(abandoned < 1_000, `${abandoned} lookups ran for 5 batches whose clients left after 30 ms`);

    const answered = await new Promise<number>((resolve, reject) => {
      postBatch(port, batch('stays')).on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve((JSON.parse(text) as { results: unknown[] }).results.length));
        res.on('error', reject);
      });
    });
    assert.equal(answered, 1000);
  });
});
