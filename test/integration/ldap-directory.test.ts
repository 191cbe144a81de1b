import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import path from 'node:path';
import { Client, SizeLimitExceededError } from 'ldapts';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { DISABLED_EXCLUDING_FILTER, closedPortUrl, createCertificateAuthority, startSlapd, type Slapd } from '../helpers/slapd.js';

type LdapInput = NonNullable<NonNullable<ConfigInput['directory']>['ldap']>;

/** A directory on `slapd` as the service account; `ldap` overrides any key. */
function directoryFor(slapd: Slapd, ldap: LdapInput = {}, metrics = new Metrics({ defaultMetrics: false })): LdapDirectory {
  const config = configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } },
  }).directory.ldap;
  const bindPassword = config.bindDN === null ? null : config.bindDN === slapd.serviceDN ? slapd.servicePassword : 'unused';
  return new LdapDirectory({ config, bindPassword, metrics, logger: silentLogger() });
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<DirectoryError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DirectoryError, `expected a DirectoryError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected ${code}, got an answer`);
}

async function collect(iterable: AsyncIterable<DirectoryRecord>): Promise<DirectoryRecord[]> {
  const out: DirectoryRecord[] = [];
  for await (const record of iterable) out.push(record);
  return out;
}

describe('LdapDirectory against the fixture directory', () => {
  let slapd: Slapd;
  let dir: LdapDirectory;
  before(async () => {
    slapd = await startSlapd();
    dir = directoryFor(slapd);
  });
  after(async () => {
    await dir?.close();
    await slapd?.close();
  });

  test('finds a user by mail with the first mail value as canonical', async () => {
    const answer = await dir.lookup('alice@example.com');
    assert.deepEqual(answer.entry, { dn: 'uid=alice,ou=people,dc=example,dc=com', canonical: 'alice@example.com' });
    assert.equal(answer.filter, '(|(mail=alice@example.com)(mailAlternateAddress=alice@example.com))');
  });

  test('finds a user by a second mail value and by mailAlternateAddress', async () => {
    for (const address of ['alice.smith@example.com', 'ally@example.com']) {
      const answer = await dir.lookup(address);
      assert.equal(answer.entry?.dn, 'uid=alice,ou=people,dc=example,dc=com', address);
      assert.equal(answer.entry?.canonical, 'alice@example.com');
    }
  });

  test('finds a mail-enabled group', async () => {
    const answer = await dir.lookup('staff@example.com');
    assert.deepEqual(answer.entry, { dn: 'cn=staff,ou=groups,dc=example,dc=com', canonical: 'staff@example.com' });
  });

  test('answers null for an address nobody has', async () => {
    assert.equal((await dir.lookup('nobody@example.com')).entry, null);
    assert.equal((await dir.lookup('alice@example.net')).entry, null);
  });

  test('a configured filter excludes the disabled user that the preset filter finds', async () => {
    assert.equal((await dir.lookup('mallory@example.com')).entry?.dn, 'uid=mallory,ou=people,dc=example,dc=com');
    const strict = directoryFor(slapd, { filter: DISABLED_EXCLUDING_FILTER });
    try {
      assert.equal((await strict.lookup('mallory@example.com')).entry, null);
      assert.equal((await strict.lookup('bob@example.com')).entry?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    } finally {
      await strict.close();
    }
  });

  test('compares local parts case-insensitively and keeps the directory spelling as canonical', async () => {
    for (const address of ['carol.mixed@example.com', 'CAROL.MIXED@example.com', 'Carol.Mixed@example.com']) {
      assert.deepEqual((await dir.lookup(address)).entry, { dn: 'uid=carol,ou=people,dc=example,dc=com', canonical: 'Carol.Mixed@example.com' });
    }
  });

  test('finds an address on an IDN domain by its A-label', async () => {
    assert.equal((await dir.lookup('info@xn--bcher-kva.example')).entry?.dn, 'uid=info-buecher,ou=people,dc=example,dc=com');
  });

  test('filter metacharacters in the address never match anything', async () => {
    // Unescaped, this filter matches alice: proof that escaping is what stops it.
    const raw = new Client({ url: slapd.url });
    try {
      const { searchEntries } = await raw.search(slapd.baseDN, { filter: '(mail=al*@example.com)' });
      assert.equal(searchEntries.length, 1);
    } finally {
      await raw.unbind();
    }
    for (const address of ['*@example.com', 'al*@example.com', '*', 'alice)(mail=*@example.com', 'alice@example.com)(|(mail=*)', '\\', 'alice\\@example.com', 'alice\0@example.com', '\0', '(mail=*)@example.com']) {
      const answer = await dir.lookup(address);
      assert.equal(answer.entry, null, `${JSON.stringify(address)} matched ${answer.entry?.dn}`);
    }
  });

  test('picks the entry whose primary address was asked for when several match, else the lowest DN', async () => {
    await slapd.modify(
      [
        'dn: uid=aaa-alias,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: aaa-alias\ncn: a\nsn: a\nmail: aaa@example.com\nmailAlternateAddress: shared@example.com\n',
        'dn: uid=zzz-owner,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: zzz-owner\ncn: z\nsn: z\nmail: shared@example.com\n',
        'dn: uid=twin-b,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: twin-b\ncn: b\nsn: b\nmail: b@example.com\nmailAlternateAddress: twin@example.com\n',
        'dn: uid=twin-a,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: twin-a\ncn: a\nsn: a\nmail: a@example.com\nmailAlternateAddress: twin@example.com\n',
      ].join('\n'),
    );
    assert.equal((await dir.lookup('shared@example.com')).entry?.dn, 'uid=zzz-owner,ou=people,dc=example,dc=com');
    assert.equal((await dir.lookup('twin@example.com')).entry?.dn, 'uid=twin-a,ou=people,dc=example,dc=com');
  });

  test('a fault of ours while reading an answer fails that lookup with a directory error, and the next one is answered', { timeout: 15_000 }, async () => {
    // Answers are settled inside ldapts' message parser: a throw there must not escape from the
    // socket's data event (the process would stop). A real server cannot make our code throw, so
    // the search plan's value reader is made to, on this one lookup.
    const local = directoryFor(slapd);
    try {
      const plan = (local as unknown as { plan: { matchValues: ((e: unknown) => (string | null)[]) | null } }).plan;
      const real = plan.matchValues;
      plan.matchValues = () => {
        throw new Error('injected fault');
      };
      await rejectsWith(local.lookup('alice@example.com'), ErrorCodes.DIRECTORY_PROTOCOL, /internal error/);
      plan.matchValues = real;
      assert.equal((await local.lookup('alice@example.com')).entry?.canonical, 'alice@example.com');
    } finally {
      await local.close();
    }
  });

  test('a fault of ours while a search is sent fails that lookup with a directory error, and the next one is answered', { timeout: 15_000 }, async () => {
    // Searches are sent from a timer callback, where a throw would stop the process. A real server
    // cannot make our encoder throw, so it is made to, on this one lookup.
    const local = directoryFor(slapd);
    try {
      const encoder = (local as unknown as { scheduler: { encoder: { encode: (...args: unknown[]) => Buffer } } }).scheduler.encoder;
      const real = encoder.encode;
      encoder.encode = () => {
        throw new Error('injected fault');
      };
      await rejectsWith(local.lookup('alice@example.com'), ErrorCodes.DIRECTORY_UNAVAILABLE, /search .* failed: injected fault/);
      encoder.encode = real;
      assert.equal((await local.lookup('alice@example.com')).entry?.canonical, 'alice@example.com');
    } finally {
      await local.close();
    }
  });

  test('counts found and not_found requests and searches, and leaves the up/down state to the engine', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const d = directoryFor(slapd, {}, metrics);
    try {
      await d.lookup('bob@example.com');
      await d.lookup('nobody@example.com');
      await d.probe();
      const counts = Object.fromEntries((await metrics.directoryRequests.get()).values.map((v) => [v.labels.outcome, v.value]));
      assert.deepEqual(counts, { found: 1, not_found: 1 });
      const searches = Object.fromEntries((await metrics.directorySearches.get()).values.map((v) => [v.labels.kind, v.value]));
      assert.deepEqual(searches, { single: 2 });
      // rcptgate_directory_up belongs to the engine's health module: the directory never sets it.
      assert.equal((await metrics.directoryUp.get()).values[0]?.value, 0);
    } finally {
      await d.close();
    }
  });

  test('works with an anonymous bind', async () => {
    const anon = directoryFor(slapd, { bindDN: null });
    try {
      assert.equal((await anon.lookup('bob@example.com')).entry?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    } finally {
      await anon.close();
    }
  });

  test('probe and lookups fail with a clear message when the base DN does not exist (never "no such entry")', async () => {
    const wrong = directoryFor(slapd, { baseDN: 'ou=missing,dc=example,dc=com' });
    try {
      await rejectsWith(wrong.probe(), ErrorCodes.DIRECTORY_PROTOCOL, /base DN .* does not exist/);
      await rejectsWith(wrong.lookup('bob@example.com'), ErrorCodes.DIRECTORY_PROTOCOL, /base DN .* does not exist/);
    } finally {
      await wrong.close();
    }
    await dir.probe();
  });

  test('refuses a wrong bind password with AUTH and says it is a configuration error', async () => {
    const config = configSchema.parse({ directory: { ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } } }).directory.ldap;
    const wrong = new LdapDirectory({ config, bindPassword: 'not-the-password', metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    try {
      const err = await rejectsWith(wrong.lookup('bob@example.com'), ErrorCodes.DIRECTORY_AUTH, /bind .* was refused/);
      assert.match(err.message, /configuration error/);
      await rejectsWith(wrong.probe(), ErrorCodes.DIRECTORY_AUTH);
    } finally {
      await wrong.close();
    }
  });

  test('fails over to the second URL when the first port is closed', async () => {
    const d = directoryFor(slapd, { urls: [await closedPortUrl(), slapd.url] });
    try {
      assert.equal((await d.lookup('bob@example.com')).entry?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    } finally {
      await d.close();
    }
  });
});

describe('LdapDirectory when slapd fails', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd();
  });
  after(async () => {
    await slapd?.close();
  });

  test('throws UNAVAILABLE (not null) while slapd is stopped and recovers after a restart', async () => {
    const dir = directoryFor(slapd);
    try {
      assert.ok((await dir.lookup('bob@example.com')).entry);
      await slapd.stop();
      await rejectsWith(dir.lookup('bob@example.com'), ErrorCodes.DIRECTORY_UNAVAILABLE);
      await rejectsWith(dir.probe(), ErrorCodes.DIRECTORY_UNAVAILABLE);
      await slapd.start();
      assert.equal((await dir.lookup('bob@example.com')).entry?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    } finally {
      await dir.close();
    }
  });

  test('a connection killed with slapd is replaced by the next request', async () => {
    const dir = directoryFor(slapd, { poolSize: 1 });
    try {
      assert.ok((await dir.lookup('bob@example.com')).entry);
      await slapd.kill();
      await slapd.start();
      assert.equal((await dir.lookup('alice@example.com')).entry?.dn, 'uid=alice,ou=people,dc=example,dc=com');
    } finally {
      await dir.close();
    }
  });

  test('throws UNAVAILABLE when every URL is dead, naming each', async () => {
    const first = await closedPortUrl();
    const second = await closedPortUrl();
    const dir = directoryFor(slapd, { urls: [first, second] });
    try {
      const err = await rejectsWith(dir.lookup('bob@example.com'), ErrorCodes.DIRECTORY_UNAVAILABLE);
      assert.ok(err.message.includes(first) && err.message.includes(second), err.message);
    } finally {
      await dir.close();
    }
  });

  test('times out with TIMEOUT while slapd is paused, on a pooled and on a new connection', async () => {
    const timeoutMs = 400;
    const pooled = directoryFor(slapd, { timeout: `${timeoutMs}ms`, poolSize: 1 });
    const fresh = directoryFor(slapd, { timeout: `${timeoutMs}ms` });
    try {
      assert.ok((await pooled.lookup('bob@example.com')).entry);
      await slapd.pause();
      for (const dir of [pooled, fresh]) {
        const started = Date.now();
        await rejectsWith(dir.lookup('bob@example.com'), ErrorCodes.DIRECTORY_TIMEOUT);
        // The bound is enforced at all (not a speed check): generous slack for a loaded machine.
        assert.ok(Date.now() - started < timeoutMs + 2_000, `took ${Date.now() - started} ms`);
      }
    } finally {
      slapd.resume();
      await pooled.close();
      await fresh.close();
    }
    const after = directoryFor(slapd, { timeout: `${timeoutMs}ms` });
    try {
      assert.ok((await after.lookup('bob@example.com')).entry, 'answers again once resumed');
    } finally {
      await after.close();
    }
  });

  test('waiting behind a hung search counts against the timeout', async () => {
    const timeoutMs = 1_000;
    const dir = directoryFor(slapd, { timeout: `${timeoutMs}ms`, poolSize: 1 });
    try {
      assert.ok((await dir.lookup('bob@example.com')).entry);
      await slapd.pause();
      // Watched from the start: it may fail a moment before the waiter (its deadline is earlier).
      const holder = rejectsWith(dir.lookup('bob@example.com'), ErrorCodes.DIRECTORY_TIMEOUT);
      const started = Date.now();
      await rejectsWith(dir.lookup('alice@example.com'), ErrorCodes.DIRECTORY_TIMEOUT);
      // Had the wait not counted, the waiter would need a second full timeout of its own.
      assert.ok(Date.now() - started < 2 * timeoutMs - 100, `took ${Date.now() - started} ms`);
      await holder;
    } finally {
      slapd.resume();
      await dir.close();
    }
  });

  test('refuses requests beyond maxInFlight with OVERLOADED instead of queueing them', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const dir = directoryFor(slapd, { timeout: '5s', poolSize: 1, maxInFlight: 2 }, metrics);
    try {
      assert.ok((await dir.lookup('bob@example.com')).entry);
      await slapd.pause();
      const waiting = [dir.lookup('bob@example.com'), dir.lookup('alice@example.com')];
      await rejectsWith(dir.lookup('carol.mixed@example.com'), ErrorCodes.DIRECTORY_OVERLOADED);
      slapd.resume();
      const settled = await Promise.allSettled(waiting);
      assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled']);
      const overloaded = (await metrics.directoryRequests.get()).values.find((v) => v.labels.outcome === 'overloaded');
      assert.equal(overloaded?.value, 1);
    } finally {
      slapd.resume();
      await dir.close();
    }
  });
});

describe('LdapDirectory.listAll', () => {
  let slapd: Slapd;
  const users = 1200;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: users, serviceSizeLimit: 100 });
  });
  after(async () => {
    await slapd?.close();
  });

  test('pages through more entries than the server size limit allows in one search', async () => {
    const raw = new Client({ url: slapd.url });
    try {
      await raw.bind(slapd.serviceDN, slapd.servicePassword);
      await assert.rejects(raw.search(slapd.baseDN, { filter: '(mail=*)' }), SizeLimitExceededError, 'the size limit is in force');
    } finally {
      await raw.unbind();
    }
    const dir = directoryFor(slapd, { pageSize: 50 });
    try {
      const records = await collect(dir.listAll());
      // user1..user1200 plus alice, bob, carol, mallory, dave, info, first-last and the staff group.
      assert.equal(records.length, users + 8);
      assert.equal(new Set(records.map((r) => r.dn)).size, records.length);
      const alice = records.find((r) => r.dn === 'uid=alice,ou=people,dc=example,dc=com');
      assert.deepEqual(alice, { dn: 'uid=alice,ou=people,dc=example,dc=com', canonical: 'alice@example.com', addresses: ['alice@example.com', 'alice.smith@example.com', 'ally@example.com'] });
      const carol = records.find((r) => r.dn === 'uid=carol,ou=people,dc=example,dc=com');
      assert.deepEqual(carol?.addresses, ['carol.mixed@example.com']);
      assert.ok(records.some((r) => r.canonical === `user${users}@example.com`));
    } finally {
      await dir.close();
    }
  });

  test('changedSince lists only entries modified since then', async () => {
    const dir = directoryFor(slapd, { pageSize: 500, filter: DISABLED_EXCLUDING_FILTER });
    try {
      assert.equal((await collect(dir.listAll({ changedSince: new Date(Date.now() + 3_600_000) }))).length, 0);
      const all = await collect(dir.listAll({ changedSince: new Date(Date.now() - 86_400_000) }));
      assert.equal(all.length, users + 7, 'mallory is excluded by the configured filter');
    } finally {
      await dir.close();
    }
  });

  test('fails instead of listing nothing when the base DN does not exist', async () => {
    const dir = directoryFor(slapd, { baseDN: 'ou=missing,dc=example,dc=com' });
    try {
      await rejectsWith(collect(dir.listAll()), ErrorCodes.DIRECTORY_PROTOCOL);
    } finally {
      await dir.close();
    }
  });
});

describe('LdapDirectory over TLS', () => {
  let slapd: Slapd;
  let otherCa: string;
  before(async () => {
    slapd = await startSlapd({ tls: true });
    otherCa = (await createCertificateAuthority(slapd.dir, 'other')).caFile;
  });
  after(async () => {
    await slapd?.close();
  });

  test('LDAPS works with the generated CA', async () => {
    const dir = directoryFor(slapd, { urls: [slapd.ldapsUrl!], tls: { caFile: slapd.caFile! } });
    try {
      assert.equal((await dir.lookup('bob@example.com')).entry?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    } finally {
      await dir.close();
    }
  });

  test('StartTLS works with the generated CA', async () => {
    const dir = directoryFor(slapd, { startTLS: true, tls: { caFile: slapd.caFile! } });
    try {
      assert.equal((await dir.lookup('bob@example.com')).entry?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    } finally {
      await dir.close();
    }
  });

  test('LDAPS and StartTLS fail with a TLS message when the CA is wrong', async () => {
    for (const ldap of [{ urls: [slapd.ldapsUrl!] }, { startTLS: true }]) {
      const dir = directoryFor(slapd, { ...ldap, tls: { caFile: otherCa } });
      try {
        await rejectsWith(dir.lookup('bob@example.com'), ErrorCodes.DIRECTORY_UNAVAILABLE, /TLS .*caFile/);
      } finally {
        await dir.close();
      }
    }
  });

  test('a missing CA file is a configuration error', () => {
    assert.throws(() => directoryFor(slapd, { urls: [slapd.ldapsUrl!], tls: { caFile: path.join(slapd.dir, 'nope.pem') } }), /directory\.ldap\.tls\.caFile/);
  });
});
