/**
 * The snapshot and answer files name the directory they were written for, and a file written for
 * another one is refused. The base DN was compared as written (lowercased only), so the same tree
 * spelled with spaces after the commas, `dc=example, dc=com` (as Postfix's own ldap_table(5)
 * examples write it, and as a config carried over from them does), counted as another directory.
 * Restarted with that spelling during a directory outage, the service refused both files and
 * deferred every recipient; and its shutdown saved its empty cache over the answer file, so
 * putting the old spelling back did not bring the answers back either. Real slapd (paused for the
 * outage), the real service stopped and started on the same files.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const PEOPLE = 'ou=people,dc=example,dc=com';

describe('the base DN spelled with spaces after its commas', () => {
  let ldap: Slapd;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const env = () => ({ RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
  const config = (baseDN: string, withSnapshot: boolean) => ({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN, bindDN: ldap.serviceDN, timeout: '1s' } },
    cache: { persistPath: path.join(dir, 'answers') },
    sync: withSnapshot ? { enabled: true, snapshotPath: path.join(dir, 'snapshot'), interval: '1h', incrementalInterval: '30m' } : { enabled: false },
    log: { level: 'silent' },
  });
  const ask = (address: string): Promise<string> => verdictOf(app!.addresses.http!.port, address);
  const stop = async () => {
    await app?.close(); // saves the answers
    app = undefined;
  };
  const restart = async (c: object) => {
    await stop();
    app = await startApp(c, env());
  };

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-base-dn-'));
  });
  after(async () => {
    await app?.close();
    ldap?.resume();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the snapshot taken with one spelling serves after a restart with the other, the directory down', async () => {
    app = await startApp(config('dc=example,dc=com', true), env());
    await app.syncOnce();
    assert.equal(await ask('bob@example.com'), 'valid/snapshot');
    await stop();
    await ldap.pause();
    try {
      await restart(config('dc=example, dc=com', true));
      assert.equal(await ask('bob@example.com'), 'valid/snapshot', 'the same tree: its snapshot is loaded');
      assert.equal(await ask('nobody-here@example.com'), 'tempfail/directory', 'a miss while the directory is down defers');
      await restart(config('DC=Example , DC=Com', true));
      assert.equal(await ask('bob@example.com'), 'valid/snapshot');
    } finally {
      await stop();
      ldap.resume();
    }
  });

  test('the answer file saved with one spelling is loaded with the other, and survives a round trip', async () => {
    await restart(config('dc=example,dc=com', false));
    assert.equal(await ask('alice@example.com'), 'valid/directory');
    await stop();
    await ldap.pause();
    try {
      await restart(config('dc=example, dc=com', false));
      assert.equal(await ask('alice@example.com'), 'valid/cache', 'the same tree: its answers are loaded');
      await restart(config('dc=example,dc=com', false));
      assert.equal(await ask('alice@example.com'), 'valid/cache', 'the answers are still in the file');
    } finally {
      await stop();
      ldap.resume();
    }
  });
});
