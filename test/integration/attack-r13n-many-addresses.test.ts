/**
 * One entry with very many addresses, as an admin's alias import makes it. 10,000 are answered
 * alike live, from the snapshot and from its file. Over 65,535 the snapshot store cannot hold
 * the entry and every sync fails; the failure must name the entry, or the admin cannot find
 * what to fix (it said only "snapshot entry too large"). Real slapd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const PEOPLE = 'ou=people,dc=example,dc=com';
const aliases = (uid: string, n: number) => Array.from({ length: n }, (_, i) => `mailAlternateAddress: ${uid}.${i}@example.com`).join('\n');
const person = (uid: string, n: number) => `dn: uid=${uid},${PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@example.com\n${aliases(uid, n)}\n`;

let ldap: Slapd;
let dir: string;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  ldap = await startSlapd({ ldifText: [person('many', 10_000)] });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13n-many-'));
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function setup() {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '30s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'many.snapshot'), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
  closers.push(() => directory.close());
  const syncer = () => {
    const s = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes: null });
    closers.push(() => s.stop());
    return s;
  };
  return { directory, syncer };
}

describe('an entry with very many addresses', { concurrency: false }, () => {
  test('10,000 addresses answer alike live, from the snapshot and from its file', async () => {
    const { directory, syncer } = setup();
    const sync = syncer();
    await sync.full();
    const restarted = syncer();
    assert.equal(await restarted.load(), true);
    const wrong: string[] = [];
    for (const i of [0, 1, 4_999, 9_998, 9_999]) {
      const a = `many.${i}@example.com`;
      const live = (await directory.lookup(a)).entry?.canonical ?? null;
      const answers = [live, sync.current!.get(a) ?? null, restarted.current!.get(a) ?? null];
      if (!answers.every((x) => x === 'many@example.com')) wrong.push(`${a}: ${answers.join(' / ')}`);
    }
    assert.equal(sync.current!.get('many.10000@example.com'), undefined);
    assert.deepEqual(wrong, []);
  });

  test('an entry over what the store holds fails the sync naming its DN', async () => {
    await ldap.modify(person('huge', 70_000).replace(/^(dn: [^\n]*\n)/, '$1changetype: add\n'));
    const { syncer } = setup();
    const error = await syncer().full().then(() => null, (err: Error) => err);
    console.log(`[r13n] full sync over 70,001 addresses on one entry: ${error?.message.slice(0, 160) ?? 'succeeded'}`);
    assert.ok(error, 'the sync fails (the store takes at most 65,535 addresses per entry)');
    assert.match(error.message, /uid=huge,ou=people,dc=example,dc=com/);
  });
});
