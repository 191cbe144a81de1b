/**
 * A careless directory admin pastes something long (a certificate, a whole list) into one user's
 * mail attribute: a single value of 70,000 characters. No lookup can ask for it (an address has
 * at most 254 octets), yet the snapshot store cannot hold a value that long and refused the
 * entry, failing every full and incremental sync with it: a user added meanwhile stayed out of
 * the snapshot (and out of its file), `unknown` until `sync.maxAge` handed the answers to live
 * lookups, which found the user at once. Real slapd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const PEOPLE = 'ou=people,dc=example,dc=com';
const PASTED = `${'x'.repeat(70_000)}@example.com`;

let ldap: Slapd;
let dir: string;
let config: Config;
let directory: LdapDirectory;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13n-oversized-'));
  config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'oversized.snapshot'), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });
  directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  closers.push(() => directory.close());
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function syncer(): { sync: SnapshotSync; metrics: Metrics } {
  const metrics = new Metrics({ defaultMetrics: false });
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
  const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
  closers.push(() => sync.stop());
  return { sync, metrics };
}

const failures = async (m: Metrics) => (await m.syncFailures.get()).values.reduce((n, v) => n + v.value, 0);

describe('a mail value far longer than any address', { concurrency: false }, () => {
  test('costs no sync: a user added beside it is valid in the snapshot and its file, as live lookups say', async () => {
    const { sync, metrics } = syncer();
    await sync.full();
    // Pasted as bob's primary address (the first value), then a new hire added.
    await ldap.modify(`dn: uid=bob,${PEOPLE}\nchangetype: modify\nreplace: mail\nmail: ${PASTED}\nmail: bob@example.com\n`);
    await ldap.modify(`dn: uid=newhire,${PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: newhire\ncn: New Hire\nsn: Hire\nmail: newhire@example.com\n`);
    assert.equal((await directory.lookup('newhire@example.com')).entry?.dn, `uid=newhire,${PEOPLE}`, 'live lookups find the new hire');
    assert.equal((await directory.lookup('bob@example.com')).entry?.dn, `uid=bob,${PEOPLE}`, 'and bob');

    await sync.incremental().catch(() => undefined);
    await sync.full().catch(() => undefined);
    const failed = await failures(metrics);
    const restarted = syncer().sync;
    assert.equal(await restarted.load(), true);
    const answers = { snapshot: sync.current!.get('newhire@example.com') ?? null, file: restarted.current!.get('newhire@example.com') ?? null };
    console.log(`[r13n] syncs failed: ${failed}; new hire from the snapshot: ${answers.snapshot}, from its file: ${answers.file}`);
    assert.equal(failed, 0, 'no sync failed');
    assert.deepEqual(answers, { snapshot: 'newhire@example.com', file: 'newhire@example.com' });
    assert.equal(restarted.current!.get('bob@example.com'), 'bob@example.com', "bob's real address stays valid, and is his primary one");
    assert.equal(restarted.current!.get('alice@example.com'), 'alice@example.com');
  });

  test('a first full sync over it builds the snapshot', async () => {
    const { sync, metrics } = syncer();
    await sync.full().catch(() => undefined);
    assert.equal(await failures(metrics), 0, 'the full sync did not fail');
    assert.equal(sync.current?.get('bob@example.com'), 'bob@example.com');
    assert.equal(sync.current?.get('newhire@example.com'), 'newhire@example.com');
  });
});
