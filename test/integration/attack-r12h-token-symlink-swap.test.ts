/**
 * A Kubernetes Secret volume does not rename the token file: `token` is a link to `..data/token`,
 * `..data` a link to a timestamped directory, and an update writes a new directory and swaps
 * `..data` by rename, then removes the old directory. The file's own path never changes. The
 * HTTP API follows it: the new lookup token is accepted within a few seconds and the old one
 * refused, also once the old directory is gone. The real service and HTTP listener.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

/** Writes `token` as kubelet does: a new timestamped directory, `..data` swapped to it by rename. */
async function publish(dir: string, stamp: string, token: string): Promise<void> {
  await mkdir(path.join(dir, stamp));
  await writeFile(path.join(dir, stamp, 'token'), token);
  await symlink(stamp, path.join(dir, '..data_tmp'));
  await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
}

describe('a lookup token in a Kubernetes Secret volume (real HTTP listener)', () => {
  let dir: string;
  let app: App | undefined;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12h-secret-'));
    await publish(dir, '..2026_12_01_01_00_00.1', 'first-token');
    await symlink('..data/token', path.join(dir, 'token'));
    app = await startApp({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      http: { lookupTokenFile: path.join(dir, 'token'), lookupAllowFrom: ['::1/128'] },
    });
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the token published by a swap of ..data is used, the old one refused, the old directory removed', async () => {
    const url = `http://127.0.0.1:${app!.addresses.http!.port}/v1/recipients/alice@example.com`;
    const status = async (token: string) => (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status;
    assert.equal(await status('first-token'), 200);
    await publish(dir, '..2026_12_01_02_00_00.2', 'second-token');
    await rm(path.join(dir, '..2026_12_01_01_00_00.1'), { recursive: true });
    const t0 = Date.now();
    while ((await status('second-token')) !== 200) {
      assert.ok(Date.now() - t0 < 10_000, 'the new token is not accepted within 10 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await status('first-token'), 403);
    assert.equal(await status('second-token'), 200);
  });
});
