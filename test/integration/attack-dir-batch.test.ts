import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { FIXTURE_DIR, startSlapd, type Slapd } from '../helpers/slapd.js';
import path from 'node:path';

type LdapInput = NonNullable<NonNullable<ConfigInput['directory']>['ldap']>;

function directoryFor(slapd: Slapd, ldap: LdapInput = {}, metrics = new Metrics({ defaultMetrics: false })): LdapDirectory {
  const config = configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } },
  }).directory.ldap;
  return new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
}

/**
 * Entries a careless directory administrator writes: values under attribute options (RFC 4512
 * §2.5, `mail;lang-de`). The server's filter `(mailAlternateAddress=x)` matches such values and
 * returns them under the option's name; a batch that missed them read the key as "no such entry".
 */
const TAGGED = `dn: uid=tagged,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: mailRecipient
uid: tagged
cn: Tagged
sn: Tagged
mail: tagged@example.com
mail;lang-en: tagged.en@example.com
mailAlternateAddress;lang-de: tagged.de@example.com`;

describe('batched lookups against entries a careless administrator wrote', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ ldifText: [TAGGED] });
  });
  after(async () => {
    await slapd?.close();
  });

  test('a value under an attribute option is found whether the key goes alone or in a batch', async () => {
    const keys = ['tagged@example.com', 'tagged.en@example.com', 'tagged.de@example.com', 'TAGGED.DE@example.com', 'bob@example.com', 'nobody@example.com'];
    const singles = directoryFor(slapd, { batchSize: 1 });
    // One connection, one search at a time: the lookups queue and leave as one batch.
    const batched = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 });
    try {
      const expected = await Promise.all(keys.map(async (k) => (await singles.lookup(k)).entry?.dn ?? null));
      assert.deepEqual(expected, [...Array(4).fill('uid=tagged,ou=people,dc=example,dc=com'), 'uid=bob,ou=people,dc=example,dc=com', null], 'single searches find every tagged value');
      for (let round = 0; round < 3; round++) {
        const got = await Promise.all(keys.map(async (k) => (await batched.lookup(k)).entry?.dn ?? null));
        assert.deepEqual(got, expected, `round ${round}: batching changed an answer`);
      }
    } finally {
      await singles.close();
      await batched.close();
    }
  });
});

/**
 * A schema whose mailAlternateAddress is a UTF-8 string compared with caseIgnoreMatch: slapd
 * folds compatibility characters onto ASCII, so `ｆｕｌｌ@`, `ſales@` and `\u212Aate@` (Kelvin
 * sign) are found by the ASCII keys `full@`, `sales@`, `kate@`. We cannot fold as the server
 * does, so an entry holding such a value must not vouch for the keys it seems not to answer.
 */
const FOLDED = `dn: uid=folded,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: mailRecipient
uid: folded
cn: Folded
sn: Folded
mail: plain@example.com
mailAlternateAddress: ｆｕｌｌ@example.com
mailAlternateAddress: ſales@example.com
mailAlternateAddress: \u212Aate@example.com`;

describe('batched lookups against a directory that folds Unicode onto ASCII', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ fixture: false, schemaFile: path.join(FIXTURE_DIR, 'unicode-alternate.schema'), ldifText: [FOLDED] });
  });
  after(async () => {
    await slapd?.close();
  });

  test('a key the server matched through a value we cannot fold is never "no such entry"', async () => {
    const keys = ['plain@example.com', 'full@example.com', 'sales@example.com', 'kate@example.com', 'nobody@example.com'];
    const singles = directoryFor(slapd, { batchSize: 1 });
    const batched = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 });
    try {
      const expected = await Promise.all(keys.map(async (k) => (await singles.lookup(k)).entry?.dn ?? null));
      assert.deepEqual(expected, [...Array(4).fill('uid=folded,ou=people,dc=example,dc=com'), null], 'the server folds these values onto the ASCII keys');
      for (let round = 0; round < 3; round++) {
        const got = await Promise.all(keys.map(async (k) => (await batched.lookup(k)).entry?.dn ?? null));
        assert.deepEqual(got, expected, `round ${round}: batching changed an answer`);
      }
    } finally {
      await singles.close();
      await batched.close();
    }
  });
});

/**
 * An ACL that lets the reader search on mailAlternateAddress but not read it (aliases kept out
 * of the address book): the server finds alice's entry by `ally@`, and returns it without the
 * value that matched. In a batch where alice@ found the same entry, ally@ seemed unanswered.
 */
describe('batched lookups when an entry comes back without the value that matched', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ searchOnly: ['mailAlternateAddress'] });
  });
  after(async () => {
    await slapd?.close();
  });

  test('a key answered by no visible value of the entries that came back is confirmed before it is "no such entry"', async () => {
    const keys = ['alice@example.com', 'ally@example.com', 'bob@example.com', 'nobody@example.com', 'ghost@example.com'];
    const singles = directoryFor(slapd, { batchSize: 1 });
    const metrics = new Metrics({ defaultMetrics: false });
    const batched = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 }, metrics);
    try {
      const alice = 'uid=alice,ou=people,dc=example,dc=com';
      const expected = await Promise.all(keys.map(async (k) => (await singles.lookup(k)).entry?.dn ?? null));
      assert.deepEqual(expected, [alice, alice, 'uid=bob,ou=people,dc=example,dc=com', null, null], 'alone, ally@ finds alice by the hidden value');
      const searches = async () => Object.fromEntries((await metrics.directorySearches.get()).values.map((v) => [v.labels.kind, v.value]));
      // The directory shows that it hides values the first time an entry comes back matching its
      // key by no value (here ally@ asked on its own); only from then on are mixed batches
      // confirmed, so normal directories pay no extra search (checked in the next test).
      assert.equal((await batched.lookup('ally@example.com')).entry?.dn, alice);
      for (let round = 0; round < 3; round++) {
        const before = await searches();
        const got = await Promise.all(keys.map(async (k) => (await batched.lookup(k)).entry?.dn ?? null));
        assert.deepEqual(got, expected, `round ${round}: batching changed an answer`);
        const after = await searches();
        // One batch, then one confirming batch of its unanswered keys; only keys that batch
        // cannot settle (it found alice again) go on their own.
        assert.ok((after.batch ?? 0) - (before.batch ?? 0) <= 2, `batches: ${JSON.stringify(before)} → ${JSON.stringify(after)}`);
      }
      // No entry at all for a whole batch needs no confirmation.
      const before = await searches();
      const ghosts = await Promise.all(['ghost1@example.com', 'ghost2@example.com', 'ghost3@example.com'].map((k) => batched.lookup(k)));
      assert.ok(ghosts.every((a) => a.entry === null));
      const after = await searches();
      assert.ok((after.batch ?? 0) + (after.single ?? 0) - (before.batch ?? 0) - (before.single ?? 0) <= 2, 'unknown keys of a batch that found nothing are not asked again');
    } finally {
      await singles.close();
      await batched.close();
    }
  });
});

describe('batched lookups against a directory that shows every value it matched', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd();
  });
  after(async () => {
    await slapd?.close();
  });

  test('a batch that mixes found and unknown keys answers both in one search', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const batched = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 }, metrics);
    try {
      const searches = async () => (await metrics.directorySearches.get()).values.reduce((n, v) => n + v.value, 0);
      const before = await searches();
      // Asked in the same turn, the keys leave together in one batch.
      const keys = ['alice@example.com', 'ghost@example.com', 'bob@example.com', 'nobody@example.com'];
      const got = (await Promise.all(keys.map((k) => batched.lookup(k)))).map((a) => a.entry?.dn ?? null);
      assert.deepEqual(got, ['uid=alice,ou=people,dc=example,dc=com', null, 'uid=bob,ou=people,dc=example,dc=com', null]);
      assert.equal((await searches()) - before, 1, 'one batch: the unknown keys of a mixed batch are not asked again');
    } finally {
      await batched.close();
    }
  });
});
