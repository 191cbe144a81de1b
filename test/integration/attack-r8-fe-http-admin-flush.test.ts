/**
 * DELETE /v1/cache/{address} with the address left out (`curl -X DELETE …/v1/cache/$ADDR` with
 * ADDR unset or empty) reached DELETE /v1/cache, as the router reads a trailing slash as none,
 * and flushed the whole cache: during a directory outage that throws away every stale valid
 * answer (cache.staleIfError), so the mail of every recipient not asked since is deferred. It
 * now gets a 400 saying the address is missing and flushes nothing. Real listener and engine
 * (the bundled example directory), admin token from a file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

/** rcptgate_cache_entries, as /metrics reports it. */
async function cachedAnswers(app: App): Promise<number> {
  const m = /^rcptgate_cache_entries (\S+)$/m.exec(await app.metrics.registry.metrics());
  assert.ok(m, 'rcptgate_cache_entries is exported');
  return Number(m[1]);
}

const TOKEN = 'r8-admin-token-0123456789abcdef0123456789abcdef';

describe('flushing one cached address (real listener)', () => {
  let app: App;
  let base: string;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r8-flush-'));
    const tokenFile = path.join(dir, 'admin-token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, admin: { tokenFile }, log: { level: 'warn' } });
    base = `http://127.0.0.1:${app.addresses.http!.port}`;
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const del = (p: string) => fetch(`${base}${p}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });

  async function warm(): Promise<number> {
    for (const a of ['alice@example.com', 'bob@example.com', 'nobody@example.com']) assert.equal((await fetch(`${base}/v1/recipients/${a}`)).status, 200);
    return await cachedAnswers(app);
  }

  test('DELETE /v1/cache/ without an address is refused with a reason and flushes nothing', async () => {
    const cached = await warm();
    assert.ok(cached >= 3, `${cached} answers cached`);
    const res = await del('/v1/cache/');
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const body = (await res.json()) as { type: string; detail: string };
    assert.equal(body.type, 'https://rcptgate.dev/problems/invalid-request');
    assert.match(body.detail, /no address/i, body.detail);
    assert.equal(await cachedAnswers(app), cached, 'the cache is untouched');
  });

  test('one address and the whole cache are still flushed when asked for', async () => {
    const cached = await warm();
    assert.equal((await del('/v1/cache/alice@example.com')).status, 204);
    assert.equal(await cachedAnswers(app), cached - 1, 'one answer dropped');
    assert.equal((await del('/v1/cache')).status, 204);
    assert.equal(await cachedAnswers(app), 0, 'DELETE /v1/cache empties the cache');
  });
});
