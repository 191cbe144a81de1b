/**
 * Batched OR searches against values a careless directory administrator stores: white space
 * around or inside an address. A batch must answer each key exactly as that key's own search.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const person = (uid: string, ...lines: string[]): string =>
  `dn: uid=${uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\n${lines.join('\n')}`;

const SPACES = [
  // slapd's caseIgnoreIA5Match ignores leading and trailing spaces, but not a tab: `tab@…` alone
  // finds nothing. The entry comes back in a batch for `other@…`, and must not vouch for `tab@…`.
  person('tabbed', `mail:: ${b64('tab@example.com\t')}`, 'mail: other@example.com'),
  person('spaced', `mail:: ${b64('  spaced@example.com ')}`, 'mail: spaced2@example.com'),
  person('inner', `mailAlternateAddress:: ${b64('in  ner@example.com')}`, 'mail: inner2@example.com'),
  person('crlf', `mail:: ${b64('crlf@example.com\r\n')}`, 'mail: crlf2@example.com'),
  // Addresses stored in a form no search for the plain address finds.
  person('quoted', 'mail: "quoted"@example.com'),
  person('angle', 'mail: <angle@example.com>'),
];

function directoryFor(slapd: Slapd, ldap: Record<string, unknown>): LdapDirectory {
  const config = configSchema.parse({ directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } } });
  return new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
}

describe('batched lookups against addresses stored with white space', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ ldifText: SPACES });
  });
  after(async () => {
    await slapd?.close();
  });

  test('a batch answers each key as its own search does, whatever white space the stored values carry', async () => {
    const keys = ['tab@example.com', 'other@example.com', 'spaced@example.com', 'spaced2@example.com', 'inner2@example.com', 'crlf@example.com', 'crlf2@example.com', 'nobody@example.com'];
    const singles = directoryFor(slapd, { batchSize: 1 });
    // One connection, one search at a time: the lookups queue and leave as one batch.
    const batched = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 });
    try {
      const expected: (string | null)[] = [];
      for (const k of keys) expected.push((await singles.lookup(k)).entry?.dn ?? null);
      assert.equal(expected[0], null, "slapd's own search does not find tab@ (a tab is not an insignificant space to it)");
      assert.equal(expected[2], 'uid=spaced,ou=people,dc=example,dc=com', 'leading and trailing spaces are insignificant');
      for (let round = 0; round < 3; round++) {
        const got = await Promise.all(keys.map(async (k) => (await batched.lookup(k)).entry?.dn ?? null));
        assert.deepEqual(got, expected, `round ${round}: batching changed an answer`);
      }
    } finally {
      await singles.close();
      await batched.close();
    }
  });

  test('a full listing keys a value stored with spaces by its address, so the snapshot answers it as the directory does', async () => {
    const directory = directoryFor(slapd, {});
    try {
      const records: DirectoryRecord[] = [];
      for await (const r of directory.listAll()) records.push(r);
      const config = validateConfig({ domains: ['example.com'], sync: { confirmMisses: false }, directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN } } });
      const metrics = new Metrics({ defaultMetrics: false });
      const snapshot = SnapshotStore.from(records, Date.now(), 3_600_000);
      const v = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger(), snapshot });
      assert.equal((await directory.lookup('spaced@example.com')).entry?.dn, 'uid=spaced,ou=people,dc=example,dc=com', 'the directory finds it');
      v.health.answered(); // the directory answers: a snapshot miss would be a plain `unknown`
      const spaced = await v.lookup('spaced@example.com', { frontend: 'http' });
      // With sync.confirmMisses off a snapshot miss is final: it must not be a miss.
      assert.deepEqual([spaced.verdict, spaced.source, spaced.canonical], ['valid', 'snapshot', 'spaced@example.com']);
    } finally {
      await directory.close();
    }
  });

  test('the snapshot answers a value stored as "quoted"@ or <angle@> as the directory does: unknown for the plain address', async () => {
    const directory = directoryFor(slapd, {});
    try {
      const records: DirectoryRecord[] = [];
      for await (const r of directory.listAll()) records.push(r);
      const config = validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN } } });
      const v = new RecipientValidatorImpl({ config, directory, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), snapshot: SnapshotStore.from(records, Date.now(), 3_600_000) });
      for (const address of ['quoted@example.com', 'angle@example.com']) {
        assert.equal((await directory.lookup(address)).entry, null, `the directory's own search does not find ${address}`);
        const r = await v.lookup(address, { frontend: 'http' });
        assert.deepEqual([r.verdict, r.source], ['unknown', 'directory'], address);
      }
    } finally {
      await directory.close();
    }
  });
});
