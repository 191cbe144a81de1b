/**
 * What strangers get from the HTTP listener of a real rcptgate in front of a real slapd:
 * no DN, filter, bind DN, URL or directory error text in any unauthenticated response, also
 * while the bind fails (wrong password); the admin token still sees them. And the lookup API
 * wiring from the config: a client outside http.lookupAllowFrom needs http.lookupTokenFile's
 * token. (The "stranger" is 127.0.0.1 with an allow list of ::1 only: no other interface is used.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const ADMIN = 'adm1n-token-for-exposure-test';
const LOOKUP = 'l00kup-token-for-exposure-test';
const WRONG_PASSWORD = 'Wr0ng-bind-pw-exposure';

let ldap: Slapd;
let dir: string;
const apps: App[] = [];

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-exposure-'));
  await writeFile(path.join(dir, 'admin'), `${ADMIN}\n`);
  await writeFile(path.join(dir, 'lookup'), `${LOOKUP}\n`);
});
after(async () => {
  for (const app of apps) await app.close();
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function serve(password: string, http: Record<string, unknown> = {}): Promise<{ base: string; metricsBase: string }> {
  const config = validateConfig({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: '127.0.0.1:0' },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
    cache: { maxEntries: 0 },
    admin: { tokenFile: path.join(dir, 'admin') },
    http,
    log: { level: 'silent' },
  });
  const app = await createApp({ loaded: { config, file: null }, logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: password } });
  apps.push(app);
  await app.start();
  const deadline = Date.now() + 20_000;
  // Readiness settles either way: the probe either answers or records the bind failure.
  while (!app.health().ready && app.health().directory.lastError === null) {
    assert.ok(Date.now() < deadline, 'the directory probe never finished');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base: `http://127.0.0.1:${app.addresses.http!.port}`, metricsBase: `http://127.0.0.1:${app.addresses.metrics!.port}` };
}

describe('HTTP exposure against a real slapd', () => {
  test('no DN, filter, bind DN, URL or error text reaches an unauthenticated client, under a wrong bind password', async () => {
    const { base, metricsBase } = await serve(WRONG_PASSWORD);
    const forbidden = [
      ldap.url, `127.0.0.1:${ldap.port}`, ldap.serviceDN, 'ou=services', 'ou=people', ldap.baseDN, '(mail=', 'mailAlternateAddress',
      'nvalid credentials', 'invalidCredentials', WRONG_PASSWORD, 'bind',
    ];
    const json = { 'content-type': 'application/json' };
    const batch = JSON.stringify({ addresses: ['alice@example.com', 'nobody@example.com'] });
    const requests: Array<[string, RequestInit?]> = [
      ['/'], ['/?address=alice@example.com'], ['/?address=alice@example.com&explain=1'],
      ['/readyz'], ['/healthz'], ['/metrics'],
      ['/v1/recipients/alice@example.com'], ['/v1/recipients/nobody@example.com'],
      ['/v1/recipients/alice@example.com?explain=1'], ['/v1/recipients/alice@example.com?explain=1', { headers: { authorization: 'Bearer wrong' } }],
      ['/v1/recipients:check', { method: 'POST', headers: json, body: batch }],
      ['/v1/recipients:check?explain=1', { method: 'POST', headers: json, body: batch }],
      ['/v1/cache', { method: 'DELETE' }], ['/nope'],
      // /openapi.yaml is left out: a static document whose examples show made-up DNs and filters.
    ];
    // The same paths on listen.metrics (what Prometheus and the probes reach) come last.
    const onMetrics = ['/readyz', '/healthz', '/metrics', '/', '/v1/recipients/alice@example.com'];
    const statuses: number[] = [];
    for (const [p, init] of [...requests, ...onMetrics.map((m): [string] => [`metrics:${m}`])]) {
      const url = p.startsWith('metrics:') ? metricsBase + p.slice('metrics:'.length) : base + p;
      const res = await fetch(url, init);
      const text = `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${await res.text()}`;
      statuses.push(res.status);
      for (const s of forbidden) assert.ok(!text.includes(s), `${init?.method ?? 'GET'} ${p} (${res.status}) shows ${JSON.stringify(s)}:\n${text.slice(0, 2000)}`);
    }
    // The lookups really ran into the failing directory (tempfail), and explain was refused.
    assert.deepEqual(statuses, [200, 200, 200, 503, 200, 200, 503, 503, 401, 403, 200, 401, 401, 404, 503, 200, 200, 404, 404]);
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { reasonCode?: string; directory: { up: boolean } };
    assert.equal(ready.reasonCode, 'waiting_for_directory');
    assert.equal(ready.directory.up, false);

    // Positive control: the admin token sees the details the public views hide.
    const auth = { headers: { authorization: `Bearer ${ADMIN}` } };
    const adminReady = await (await fetch(`${base}/readyz`, auth)).text();
    assert.ok(adminReady.includes(ldap.serviceDN) || adminReady.includes(`127.0.0.1:${ldap.port}`), adminReady);
    const explained = (await (await fetch(`${base}/v1/recipients/alice@example.com?explain=1`, auth)).json()) as { explain?: { detail?: string } };
    assert.match(explained.explain?.detail ?? '', /bind|credentials/i);
  });

  test('a client outside http.lookupAllowFrom gets 401 without the token and answers with it', async () => {
    const { base } = await serve(ldap.servicePassword, { lookupAllowFrom: ['::1/128'], lookupTokenFile: path.join(dir, 'lookup') });
    const url = `${base}/v1/recipients/alice@example.com`;
    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="rcptgate"');
    assert.doesNotMatch(await none.text(), /valid|alice/);
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${LOOKUP}x` } })).status, 403);
    for (const token of [LOOKUP, ADMIN]) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { verdict: string }).verdict, 'valid');
    }
    // Probes and metrics stay open: they carry no directory data.
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });
});
