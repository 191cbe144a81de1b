import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startCutProxy, type CutProxy } from '../helpers/cut-proxy.js';

type LdapInput = NonNullable<NonNullable<ConfigInput['directory']>['ldap']>;

function directoryFor(slapd: Slapd, ldap: LdapInput = {}, metrics = new Metrics({ defaultMetrics: false })): LdapDirectory {
  const config = configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } },
  }).directory.ldap;
  return new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
}

async function searchCounts(metrics: Metrics): Promise<Record<string, number>> {
  return Object.fromEntries((await metrics.directorySearches.get()).values.map((v) => [v.labels.kind, v.value]));
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Waits until the pool's `n` connections through `proxy` are bound. Binds run one at a time while
 * no connection is open, so the last can still be binding when a test pauses slapd: every search
 * would then go to the others, and a retry would wait on that bind.
 */
async function untilBound(proxy: CutProxy, n: number): Promise<void> {
  await until(`${n} pooled connections, all bound`, () => proxy.connections.length === n && proxy.connections.every((c) => c.answered > 0));
  await sleep(50); // the bind answers are read, and the connections pooled
}

/** Addresses whose answers batching must not change: aliases, second mail values, a disabled user, case, odd keys. */
const ADDRESSES = [
  'alice@example.com',
  'alice.smith@example.com',
  'ally@example.com',
  'ALLY@example.com',
  'Alice@example.com',
  'bob@example.com',
  'BOB@EXAMPLE.COM',
  'carol.mixed@example.com',
  'CAROL.MIXED@example.com',
  'mallory@example.com',
  'staff@example.com',
  'first-last@example.com',
  'first@example.com',
  'bob+tag@example.com',
  'info@xn--bcher-kva.example',
  'nobody@example.com',
  'alice@example.net',
  'user1@example.com',
  'user3@example.com',
  'user3@example.comx',
  '*@example.com',
  'a(b)c@example.com',
  'ålice@example.com',
  'bøb@example.com',
  '"bob smith"@example.com',
  '\u212Aate@example.com',
];

describe('multiplexed, batched LDAP lookups against a real slapd', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd();
  });
  after(async () => {
    await slapd?.close();
  });

  test('batched searches give exactly the answers of single searches', async () => {
    const singleMetrics = new Metrics({ defaultMetrics: false });
    const batchMetrics = new Metrics({ defaultMetrics: false });
    const singles = directoryFor(slapd, { batchSize: 1 }, singleMetrics);
    const batched = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 }, batchMetrics);
    try {
      const expected = await Promise.all(ADDRESSES.map(async (a) => (await singles.lookup(a)).entry));
      assert.ok(expected.filter(Boolean).length >= 12, 'the fixture answers most of these');
      // Several rounds, so batches form with different neighbours each time.
      for (let round = 0; round < 3; round++) {
        const order = round === 1 ? [...ADDRESSES].reverse() : ADDRESSES;
        const got = await Promise.all(order.map(async (a) => [a, (await batched.lookup(a)).entry] as const));
        for (const [address, entry] of got) assert.deepEqual(entry, expected[ADDRESSES.indexOf(address)], address);
      }
      const counts = await searchCounts(batchMetrics);
      assert.ok((counts.batch ?? 0) > 0, `batches were sent: ${JSON.stringify(counts)}`);
      assert.ok((counts.batch ?? 0) + (counts.single ?? 0) < 3 * ADDRESSES.length / 2, `fewer searches than lookups: ${JSON.stringify(counts)}`);
      assert.deepEqual(await searchCounts(singleMetrics), { single: ADDRESSES.length });
    } finally {
      await singles.close();
      await batched.close();
    }
  });

  test('a connection that dies mid-flight fails only its own searches, each retried once on another connection', async () => {
    const proxy: CutProxy = await startCutProxy(slapd.port);
    const metrics = new Metrics({ defaultMetrics: false });
    const dir = directoryFor(slapd, { urls: [proxy.url], poolSize: 2, batchSize: 1, maxInFlightPerConnection: 64, timeout: '20s' }, metrics);
    try {
      await Promise.all(['alice@example.com', 'bob@example.com', 'staff@example.com', 'nobody@example.com'].map((a) => dir.lookup(a)));
      await untilBound(proxy, 2);
      const [a, b] = proxy.connections as [NonNullable<(typeof proxy.connections)[0]>, NonNullable<(typeof proxy.connections)[0]>];
      const before = { a: a.searches, b: b.searches };
      const keys = Array.from({ length: 40 }, (_, i) => (i % 2 ? `user${(i % 5) + 1}@example.com` : `ghost${i}@example.com`));
      await slapd.pause();
      let pending: Array<Promise<unknown>> = [];
      try {
        pending = keys.map((k) => dir.lookup(k).then((answer) => answer.entry?.dn ?? null));
        await until('every search on the wire', () => a.searches + b.searches - before.a - before.b === keys.length);
        a.cut();
      } finally {
        slapd.resume();
      }
      const results = await Promise.all(pending);
      keys.forEach((k, i) => assert.equal(results[i], k.startsWith('user') ? `uid=${k.split('@')[0]},ou=people,dc=example,dc=com` : null, k));
      const lost = a.searches - before.a;
      assert.ok(lost > 0 && lost < keys.length, `the cut connection carried some, not all, searches (${lost})`);
      assert.equal(b.closed, false, 'the other connection stayed open');
      const retriedOn = proxy.connections.slice(1).reduce((n, c) => n + c.searches, 0) - before.b - (b.searches - before.b - (keys.length - lost));
      assert.equal(retriedOn, lost, 'each lost search was sent again once, on another connection');
      assert.equal((await searchCounts(metrics)).single, 4 + keys.length + lost, 'one retry per lost search, none for the others');
    } finally {
      await dir.close();
      await proxy.close();
    }
  });

  test('a search whose retry dies too is tempfail, never "no such entry"', async () => {
    const proxy = await startCutProxy(slapd.port);
    const dir = directoryFor(slapd, { urls: [proxy.url], poolSize: 2, batchSize: 1, timeout: '20s' });
    try {
      await Promise.all(['bob@example.com', 'alice@example.com', 'staff@example.com'].map((a) => dir.lookup(a)));
      await untilBound(proxy, 2);
      const warm = proxy.connections.map((c) => c.searches);
      await slapd.pause();
      let lookup: Promise<unknown> | undefined;
      try {
        lookup = dir.lookup('ghost@example.com').then(
          () => 'answered',
          (err: unknown) => err,
        );
        for (let i = 0; i < 2; i++) {
          await until(`attempt ${i + 1} on the wire`, () => proxy.connections.some((c, n) => !c.closed && c.searches > warm[n]!));
          proxy.connections.find((c, n) => !c.closed && c.searches > warm[n]!)!.cut();
        }
      } finally {
        slapd.resume();
      }
      const err = await lookup;
      assert.ok(err instanceof DirectoryError, `expected a DirectoryError, got ${String(err)}`);
      assert.equal(err.code, ErrorCodes.DIRECTORY_UNAVAILABLE);
    } finally {
      await dir.close();
      await proxy.close();
    }
  });

  test('a lookup still queued at its deadline fails as OVERLOADED (our own refusal), the hung search as TIMEOUT', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const dir = directoryFor(slapd, { poolSize: 1, maxInFlightPerConnection: 1, batchSize: 1, timeout: '800ms' }, metrics);
    try {
      await dir.lookup('bob@example.com');
      await slapd.pause();
      try {
        const hung = dir.lookup('alice@example.com').catch((err: unknown) => err);
        await sleep(100);
        const queued = dir.lookup('staff@example.com').catch((err: unknown) => err);
        const [h, q] = await Promise.all([hung, queued]);
        assert.ok(h instanceof DirectoryError && q instanceof DirectoryError, `${String(h)} / ${String(q)}`);
        assert.equal(h.code, ErrorCodes.DIRECTORY_TIMEOUT, h.message);
        assert.equal(q.code, ErrorCodes.DIRECTORY_OVERLOADED, q.message);
      } finally {
        slapd.resume();
      }
      const outcomes = Object.fromEntries((await metrics.directoryRequests.get()).values.map((v) => [v.labels.outcome, v.value]));
      assert.deepEqual(outcomes, { found: 1, timeout: 1, overloaded: 1 });
    } finally {
      await dir.close();
    }
  });

  test('closing the directory fails the lookups on the wire at once, instead of leaving them to a backstop', async () => {
    const dir = directoryFor(slapd, { timeout: '20s' });
    await dir.lookup('bob@example.com');
    await slapd.pause(); // the searches stay on the wire
    try {
      const started = performance.now();
      const lookups = ['alice@example.com', 'staff@example.com', 'nobody@example.com'].map((a) => dir.lookup(a).catch((err: unknown) => err));
      await sleep(50);
      await dir.close();
      const errors = await Promise.race([Promise.all(lookups), sleep(5_000, 'still waiting after 5 s')]);
      assert.ok(Array.isArray(errors), String(errors));
      for (const err of errors) assert.ok(err instanceof DirectoryError && err.code === ErrorCodes.DIRECTORY_UNAVAILABLE, String(err));
      assert.ok(performance.now() - started < 2_000);
    } finally {
      slapd.resume();
    }
  });

  test('lookups queue for a free search slot instead of being refused', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const dir = directoryFor(slapd, { poolSize: 1, maxInFlightPerConnection: 1, batchSize: 1, timeout: '20s' }, metrics);
    try {
      const keys = Array.from({ length: 300 }, (_, i) => (i % 3 ? `user${(i % 5) + 1}@example.com` : `ghost${i}@example.com`));
      const results = await Promise.all(keys.map((k) => dir.lookup(k)));
      keys.forEach((k, i) => assert.equal(results[i]!.entry !== null, k.startsWith('user'), k));
      assert.equal((await metrics.directoryRequests.get()).values.find((v) => v.labels.outcome === 'overloaded'), undefined);
    } finally {
      await dir.close();
    }
  });
});

describe('size limits never turn into "no such entry"', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ serviceSizeLimit: 2 });
  });
  after(async () => {
    await slapd?.close();
  });

  test('a batch cut off by the server size limit is asked again key by key', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const dir = directoryFor(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 }, metrics);
    try {
      const keys = ['alice@example.com', 'bob@example.com', 'staff@example.com', 'user1@example.com', 'user2@example.com', 'user3@example.com', 'user4@example.com', 'ghost@example.com'];
      for (let round = 0; round < 2; round++) {
        const results = await Promise.all(keys.map((k) => dir.lookup(k)));
        keys.forEach((k, i) => assert.equal(results[i]!.entry !== null, k !== 'ghost@example.com', k));
      }
      const counts = await searchCounts(metrics);
      assert.ok((counts.batch ?? 0) > 0 && (counts.single ?? 0) >= keys.length, JSON.stringify(counts));
    } finally {
      await dir.close();
    }
  });

  test('a limit error with no entry is tempfail, single or batched', async () => {
    // With the client size limit a lookup sends, slapd's size limits always let the first entries through
    // (sizeLimitExceeded with no entry is covered against a fake server in test/unit/ldap-fake-server.test.ts);
    // `size.unchecked=0` makes slapd refuse every search with adminLimitExceeded and no entry.
    const refusing = await startSlapd({ serviceLimits: 'size.unchecked=0' });
    const single = directoryFor(refusing, { batchSize: 1 });
    const batched = directoryFor(refusing, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 });
    try {
      for (const dir of [single, batched]) {
        const keys = ['bob@example.com', 'alice@example.com', 'user1@example.com', 'nobody@example.com'];
        const settled = await Promise.allSettled(keys.map((k) => dir.lookup(k)));
        for (const [i, s] of settled.entries()) {
          assert.equal(s.status, 'rejected', `${keys[i]}: ${JSON.stringify(s)}`);
          const err = (s as PromiseRejectedResult).reason as unknown;
          assert.ok(err instanceof DirectoryError, String(err));
          assert.match(err.message, /adminLimitExceeded/);
        }
      }
    } finally {
      await single.close();
      await batched.close();
      await refusing.close();
    }
  });
});
