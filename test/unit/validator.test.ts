import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { Writable } from 'node:stream';
import { createLogger, silentLogger } from '../../src/log.js';
import { SHADOW_LINES_PER_MINUTE } from '../../src/recipient/rules.js';
import { Metrics } from '../../src/metrics.js';
import type { Overrides } from '../../src/recipient/overrides.js';
import type { Frontend } from '../../src/recipient/types.js';
import { RecipientValidatorImpl, type SnapshotView } from '../../src/recipient/engine.js';
import { FakeClock, FakeDirectory } from '../helpers/fake-directory.js';

const HOUR = 3_600_000;
const MIN = 60_000;

interface Setup {
  v: RecipientValidatorImpl;
  dir: FakeDirectory;
  clock: FakeClock;
  metrics: Metrics;
}

/** An engine over a FakeDirectory holding alice, bob and first-last at example.com. */
function setup(
  raw: Record<string, unknown> = {},
  opts: { overrides?: { allow?: string[]; deny?: string[] }; snapshot?: SnapshotView; directory?: FakeDirectory } = {},
): Setup {
  const config = validateConfig({ domains: ['example.com'], ...raw });
  const dir =
    opts.directory ??
    new FakeDirectory({
      'alice@example.com': 'Alice@Example.com',
      'bob@example.com': 'bob@example.com',
      'first-last@example.com': 'first-last@example.com',
    });
  const clock = new FakeClock();
  const metrics = new Metrics({ defaultMetrics: false });
  const overrides: Overrides = { allow: new Set(opts.overrides?.allow ?? []), deny: new Set(opts.overrides?.deny ?? []) };
  const v = new RecipientValidatorImpl({
    config,
    directory: dir,
    metrics,
    logger: silentLogger(),
    overrides,
    now: clock.now,
    ...(opts.snapshot ? { snapshot: opts.snapshot } : {}),
  });
  return { v, dir, clock, metrics };
}

const ask = (v: RecipientValidatorImpl, address: string, frontend: Frontend = 'http', explain = false) => v.lookup(address, { frontend, explain });

/** Current value of one metric series (0 when the series does not exist yet). */
async function metric(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} is registered`);
  const { values } = await m.get();
  const hit = values.find((val) => Object.entries(labels).every(([k, l]) => String(val.labels[k]) === l));
  return hit?.value ?? 0;
}

const down = () => new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'connection refused');

describe('directory answers and the cache', () => {
  it('answers valid with the canonical address from the directory, then from the cache', async () => {
    const { v, dir } = setup();
    const first = await ask(v, 'Alice@EXAMPLE.com');
    assert.equal(first.verdict, 'valid');
    assert.equal(first.canonical, 'Alice@Example.com');
    assert.equal(first.source, 'directory');
    assert.equal(first.address, 'Alice@EXAMPLE.com');
    assert.equal(first.ttlSeconds, 3600);
    const second = await ask(v, 'alice@example.com.');
    assert.equal(second.verdict, 'valid');
    assert.equal(second.source, 'cache');
    assert.equal(dir.callsFor('alice@example.com'), 1);
  });

  it('answers unknown for a served domain without such recipient', async () => {
    const { v } = setup();
    const r = await ask(v, 'nobody@example.com');
    assert.equal(r.verdict, 'unknown');
    assert.equal(r.source, 'directory');
    assert.equal(r.ttlSeconds, 300);
    assert.equal(r.canonical, undefined);
  });

  it('asks the directory again once the positive TTL has passed', async () => {
    const { v, dir, clock } = setup({ cache: { positiveTtl: '1h' } });
    await ask(v, 'alice@example.com');
    clock.advance(HOUR - 1);
    assert.equal((await ask(v, 'alice@example.com')).source, 'cache');
    clock.advance(2);
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.source, 'directory');
    assert.equal(dir.callsFor('alice@example.com'), 2);
  });

  it('keeps a negative answer only for the negative TTL', async () => {
    const { v, dir, clock } = setup({ cache: { negativeTtl: '5m' } });
    await ask(v, 'nobody@example.com');
    clock.advance(5 * MIN - 1);
    assert.equal((await ask(v, 'nobody@example.com')).source, 'cache');
    clock.advance(2);
    // The recipient was created meanwhile: the next lookup must see it.
    dir.entries.set('nobody@example.com', 'nobody@example.com');
    const r = await ask(v, 'nobody@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.source, 'directory');
    assert.equal(dir.callsFor('nobody@example.com'), 2);
  });

  it('reports the remaining freshness as ttlSeconds on a cache hit', async () => {
    const { v, clock } = setup();
    await ask(v, 'alice@example.com');
    clock.advance(HOUR / 2);
    assert.equal((await ask(v, 'alice@example.com')).ttlSeconds, 1800);
  });

  it('does not cache negative answers with negativeTtl 0s', async () => {
    const { v, dir } = setup({ cache: { negativeTtl: '0s' } });
    await ask(v, 'nobody@example.com');
    await ask(v, 'nobody@example.com');
    assert.equal(dir.callsFor('nobody@example.com'), 2);
  });

  it('asks the directory every time with maxEntries 0 (no cache)', async () => {
    const { v, dir } = setup({ cache: { maxEntries: 0 } });
    await ask(v, 'alice@example.com');
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.source, 'directory');
    assert.equal(dir.callsFor('alice@example.com'), 2);
  });
});

describe('stale-if-error', () => {
  it('serves an expired valid answer while the directory fails', async () => {
    const { v, dir, clock, metrics } = setup();
    await ask(v, 'alice@example.com');
    clock.advance(HOUR + 1);
    dir.down();
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.source, 'stale');
    assert.equal(r.canonical, 'Alice@Example.com');
    assert.equal(r.ttlSeconds, 0);
    assert.equal(dir.callsFor('alice@example.com'), 2, 'the directory was asked first');
    assert.equal(await metric(metrics, 'rcptgate_cache_events_total', { event: 'stale' }), 1);
  });

  it('never serves an expired unknown answer: it defers while the directory fails', async () => {
    const { v, dir, clock } = setup();
    await ask(v, 'nobody@example.com');
    clock.advance(5 * MIN - 1);
    dir.down();
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'unknown', 'fresh for negativeTtl');
    clock.advance(2);
    const r = await ask(v, 'nobody@example.com');
    assert.equal(r.verdict, 'tempfail');
    assert.equal(r.ttlSeconds, 0);
  });

  it('defers an address created after its negative answer expired, when the directory is down', async () => {
    const { v, dir, clock } = setup();
    assert.equal((await ask(v, 'newbie@example.com')).verdict, 'unknown');
    dir.entries.set('newbie@example.com', 'newbie@example.com');
    clock.advance(5 * MIN + 1);
    dir.down();
    assert.equal((await ask(v, 'newbie@example.com')).verdict, 'tempfail');
  });

  it('defers once the staleIfError window has passed', async () => {
    const { v, dir, clock } = setup({ cache: { positiveTtl: '1h', staleIfError: '24h' } });
    await ask(v, 'alice@example.com');
    dir.down();
    clock.advance(HOUR + 24 * HOUR - 1);
    assert.equal((await ask(v, 'alice@example.com')).source, 'stale');
    clock.advance(2);
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.verdict, 'tempfail');
    assert.equal(r.ttlSeconds, 0);
    assert.ok(r.reason);
  });

  it('defers an expired negative answer after its window too', async () => {
    const { v, dir, clock } = setup({ cache: { negativeTtl: '5m', staleIfError: '1h' } });
    await ask(v, 'nobody@example.com');
    dir.down();
    clock.advance(5 * MIN + HOUR + 1);
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'tempfail');
  });

  it('prefers a fresh directory answer over the stale one once the directory is back', async () => {
    const { v, dir, clock } = setup();
    await ask(v, 'alice@example.com');
    clock.advance(HOUR + 1);
    dir.down();
    await ask(v, 'alice@example.com');
    dir.up();
    dir.entries.delete('alice@example.com');
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.verdict, 'unknown');
    assert.equal(r.source, 'directory');
  });
});

describe('request coalescing', () => {
  it('sends exactly one directory request for 50 concurrent lookups of one key', async () => {
    const { v, dir } = setup();
    dir.hold = true;
    const answers = Array.from({ length: 50 }, () => ask(v, 'Alice@Example.com'));
    await new Promise((r) => setImmediate(r));
    dir.release();
    const results = await Promise.all(answers);
    assert.equal(dir.callsFor('alice@example.com'), 1);
    assert.equal(dir.calls.length, 1);
    for (const r of results) assert.equal(r.verdict, 'valid');
  });

  it('shares a failure too: one request, 50 tempfails', async () => {
    const { v, dir } = setup();
    dir.down();
    dir.hold = true;
    const answers = Array.from({ length: 50 }, () => ask(v, 'alice@example.com'));
    await new Promise((r) => setImmediate(r));
    dir.release();
    const results = await Promise.all(answers);
    assert.equal(dir.calls.length, 1);
    for (const r of results) assert.equal(r.verdict, 'tempfail');
  });

  it('sends one request per distinct key', async () => {
    const { v, dir } = setup();
    dir.delayMs = 5;
    await Promise.all(['alice', 'bob', 'nobody'].flatMap((u) => Array.from({ length: 10 }, () => ask(v, `${u}@example.com`))));
    // nobody@ is unknown, so its `@domain` (a catch-all entry) is asked too: once.
    assert.deepEqual([...dir.calls].sort(), ['@example.com', 'alice@example.com', 'bob@example.com', 'nobody@example.com']);
  });

  it('asks again after a shared request has finished', async () => {
    const { v, dir } = setup({ cache: { maxEntries: 0 } });
    await Promise.all([ask(v, 'alice@example.com'), ask(v, 'alice@example.com')]);
    await ask(v, 'alice@example.com');
    assert.equal(dir.calls.length, 2);
  });
});

describe('directory failures', () => {
  it('returns tempfail when the directory is down (onDirectoryError: tempfail)', async () => {
    const { v, dir } = setup();
    dir.down();
    const r = await ask(v, 'alice@example.com', 'socketmap', true);
    assert.equal(r.verdict, 'tempfail');
    assert.equal(r.source, 'directory');
    assert.equal(r.ttlSeconds, 0);
    assert.equal(r.explain?.rule, 'directory_error');
    assert.match(r.explain?.detail ?? '', /connection refused/);
  });

  it('answers valid when the directory is down with onDirectoryError: accept', async () => {
    const { v, dir } = setup({ onDirectoryError: 'accept' });
    dir.down();
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'valid');
  });

  it('answers unknown when the directory is down with onDirectoryError: reject', async () => {
    const { v, dir } = setup({ onDirectoryError: 'reject' });
    dir.down();
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'unknown');
  });

  it('applies a per-domain onDirectoryError', async () => {
    const { v, dir } = setup({ domains: { 'example.com': {}, 'open.example': { onDirectoryError: 'accept' } } });
    dir.down();
    assert.equal((await ask(v, 'x@open.example')).verdict, 'valid');
    assert.equal((await ask(v, 'x@example.com')).verdict, 'tempfail');
  });

  it('defers each request to a directory that never answers at its own backstop (timeout + 500 ms); late answers change nothing', async () => {
    const { v, dir } = setup({ directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=x', timeout: '200ms' } } });
    dir.hold = true;
    const t0 = performance.now();
    const first = ask(v, 'alice@example.com').then((r) => ({ r, ms: performance.now() - t0 }));
    await new Promise((r) => setTimeout(r, 300));
    const second = ask(v, 'bob@example.com').then((r) => ({ r, ms: performance.now() - t0 }));
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.r.verdict, 'tempfail');
    assert.equal(b.r.verdict, 'tempfail');
    // Never early; late only by what a loaded machine adds.
    assert.ok(a.ms >= 700 && a.ms < 3_000, `first after ${a.ms} ms`);
    assert.ok(b.ms >= 1_000 && b.ms < 3_300, `second after ${b.ms} ms`);
    assert.ok(b.ms - a.ms >= 250, 'the second request has its own deadline, not the first one’s');
    dir.release();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'valid', 'the directory is asked again, and answers');
  });

  it('defers when the exact address is unknown and the base address lookup fails', async () => {
    const { v, dir } = setup();
    dir.queue('not_found', 'error');
    const r = await ask(v, 'alice+tag@example.com');
    assert.equal(r.verdict, 'tempfail');
    assert.deepEqual(dir.calls, ['alice+tag@example.com', 'alice@example.com']);
  });

  it('never answers unknown for a directory failure in tempfail mode, whatever the failure', async () => {
    const failures: Array<() => unknown> = [
      () => down(),
      () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'timeout'),
      () => new DirectoryError(ErrorCodes.DIRECTORY_OVERLOADED, 'overloaded'),
      () => new TypeError('bug in the directory'),
      () => 'a thrown string',
      () => undefined,
      () => null,
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...failures.keys()),
        fc.constantFrom('alice', 'nobody', 'alice+tag', 'nobody+x', 'Bob', 'first-last'),
        fc.boolean(),
        async (which, local, failFirstOnly) => {
          const dir = new FakeDirectory(['alice@example.com', 'bob@example.com']);
          const { v } = setup({}, { directory: dir });
          const failure = failures[which]!;
          dir.lookup = async (address: string) => {
            dir.calls.push(address);
            // Either every request fails, or the exact one says "not found" and the base one fails.
            if (failFirstOnly && dir.calls.length === 1 && address.includes('+')) return { entry: null };
            throw failure();
          };
          const r = await ask(v, `${local}@example.com`);
          assert.equal(r.verdict, 'tempfail', `${local}: ${JSON.stringify(r)}`);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('defers when the directory resolves something that is not an answer', async () => {
    const { v, dir } = setup();
    dir.lookup = async () => undefined as never;
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'tempfail');
  });

  it('tracks the directory state and the directory_up gauge', async () => {
    const { v, dir, metrics } = setup();
    assert.equal(v.state.answeredOnce, false);
    await ask(v, 'alice@example.com');
    assert.equal(v.state.up, true);
    assert.equal(v.state.answeredOnce, true);
    assert.equal(await metric(metrics, 'rcptgate_directory_up'), 1);
    dir.down();
    await ask(v, 'bob@example.com');
    assert.equal(v.state.up, false);
    assert.match(v.state.lastError ?? '', /connection refused/);
    assert.equal(await metric(metrics, 'rcptgate_directory_up'), 0);
  });
});

describe('sub-addresses', () => {
  it('tries the exact address, then the base address', async () => {
    const { v, dir } = setup();
    const r = await ask(v, 'Alice+Newsletter@example.com', 'http', true);
    assert.equal(r.verdict, 'valid');
    assert.equal(r.canonical, 'Alice@Example.com');
    assert.deepEqual(dir.calls, ['alice+newsletter@example.com', 'alice@example.com']);
    assert.deepEqual(r.explain?.tried, ['alice+newsletter@example.com', 'alice@example.com']);
  });

  it('keeps first-last valid with delimiter "-" (exact first, no base request)', async () => {
    const { v, dir } = setup({ recipientDelimiter: '-' });
    const r = await ask(v, 'first-last@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.canonical, 'first-last@example.com');
    assert.deepEqual(dir.calls, ['first-last@example.com']);
  });

  it('strips at the first of several delimiters', async () => {
    const { v, dir } = setup({ recipientDelimiter: '+-' });
    assert.equal((await ask(v, 'bob-sales+x@example.com')).verdict, 'valid');
    assert.deepEqual(dir.calls, ['bob-sales+x@example.com', 'bob@example.com']);
  });

  it('answers unknown when neither the exact nor the base address exists', async () => {
    const { v } = setup();
    assert.equal((await ask(v, 'nobody+tag@example.com')).verdict, 'unknown');
  });

  it('does not strip with an empty delimiter', async () => {
    const { v, dir } = setup({ recipientDelimiter: '' });
    assert.equal((await ask(v, 'alice+tag@example.com')).verdict, 'unknown');
    assert.deepEqual(dir.calls, ['alice+tag@example.com', '@example.com']);
  });
});

describe('catch-all entries (`@domain`)', () => {
  // Postfix's own tables try `@domain` after `user@domain` and `user`: an entry holding
  // `@example.com` accepts every address of the domain (seen against Postfix 3.7's ldap: table).
  const catchAll = () => new FakeDirectory({ 'alice@example.com': 'alice@example.com', '@example.com': '@example.com' });

  it('answers valid through an entry holding @domain, after the exact and the base address', async () => {
    const { v, dir } = setup({}, { directory: catchAll() });
    const r = await ask(v, 'anyone+tag@example.com', 'http', true);
    assert.equal(r.verdict, 'valid');
    assert.equal(r.canonical, '@example.com');
    assert.deepEqual(r.explain?.tried, ['anyone+tag@example.com', 'anyone@example.com', '@example.com']);
    assert.deepEqual(dir.calls, ['anyone+tag@example.com', 'anyone@example.com', '@example.com']);
    assert.equal((await ask(v, 'alice@example.com')).canonical, 'alice@example.com', 'an address of its own still answers for itself');
  });

  it('asks @domain once for many unknown addresses, then answers them from the cache', async () => {
    const { v, dir } = setup();
    for (const u of ['x', 'y', 'z']) assert.equal((await ask(v, `${u}@example.com`)).verdict, 'unknown');
    assert.equal(dir.callsFor('@example.com'), 1);
  });

  it('asks for a quoted local part unquoted too, as Postfix asks its tables for both forms', async () => {
    const { v, dir } = setup({}, { directory: new FakeDirectory({ 'p(x)@example.com': 'p(x)@example.com', 'john doe@example.com': 'john doe@example.com' }) });
    assert.equal((await ask(v, '"p(x)"@example.com')).verdict, 'valid');
    assert.equal((await ask(v, '"john doe"@example.com')).verdict, 'valid');
    assert.equal((await ask(v, '"a\\"b"@example.com')).verdict, 'unknown');
    assert.deepEqual(dir.calls.slice(-2), ['a"b@example.com', '@example.com']);
  });

  it('asks for an address at an IDN domain with the U-label too, as a directory may hold either form', async () => {
    const dir = new FakeDirectory({ 'info@bücher.example': 'info@bücher.example' });
    const { v } = setup({ domains: ['bücher.example'] }, { directory: dir });
    for (const a of ['info@bücher.example', 'INFO@XN--BCHER-KVA.example', 'info+x@xn--bcher-kva.example']) assert.equal((await ask(v, a)).verdict, 'valid', a);
    assert.equal((await ask(v, 'nobody@bücher.example')).verdict, 'unknown');
    assert.deepEqual(dir.calls.slice(-4), ['nobody@xn--bcher-kva.example', 'nobody@bücher.example', '@xn--bcher-kva.example', '@bücher.example']);
  });

  it("reports an unknown as the directory's answer when only @domain came from the cache", async () => {
    const { v } = setup();
    await ask(v, 'x@example.com');
    const r = await ask(v, 'y@example.com');
    assert.deepEqual([r.verdict, r.source], ['unknown', 'directory']);
    assert.equal((await ask(v, 'y@example.com')).source, 'cache');
  });

  it('does not ask @domain under a filter that needs the local part (Postfix suppresses such a query)', async () => {
    const { v, dir } = setup({ directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com', filter: '(&(uid=%u)(mail=%s))' } } }, { directory: catchAll() });
    assert.equal((await ask(v, 'anyone@example.com')).verdict, 'unknown');
    assert.deepEqual(dir.calls, ['anyone@example.com']);
  });
});

describe('static rules', () => {
  it('answers not_ours for a domain it does not serve, without a directory request', async () => {
    const { v, dir } = setup();
    const r = await ask(v, 'alice@elsewhere.example');
    assert.equal(r.verdict, 'not_ours');
    assert.equal(r.source, 'static');
    assert.equal(dir.calls.length, 0);
  });

  it('answers invalid for a malformed address, with the reason', async () => {
    const { v, dir } = setup();
    for (const bad of ['no-at-sign', 'a..b@example.com', 'x'.repeat(65) + '@example.com', 'a\r\n@example.com']) {
      const r = await ask(v, bad);
      assert.equal(r.verdict, 'invalid', bad);
      assert.ok(r.reason, bad);
      assert.equal(r.address, bad);
    }
    assert.equal(dir.calls.length, 0);
  });

  it('serves domains case-insensitively, with trailing dot and IDN', async () => {
    const { v } = setup({ domains: ['Example.COM', 'bücher.example'] });
    assert.equal(v.isServedDomain('EXAMPLE.com.'), true);
    assert.equal(v.servedDomain('@example.com'), 'example.com');
    assert.equal(v.servedDomain('BÜCHER.example'), 'xn--bcher-kva.example');
    assert.equal(v.isServedDomain('example.net'), false);
    assert.equal(v.servedDomain('not a domain'), null);
  });

  it('answers valid for an always-valid local part with the directory down and no request', async () => {
    const { v, dir } = setup();
    dir.down();
    for (const a of ['postmaster@example.com', 'Abuse@Example.COM', 'postmaster+bounce@example.com']) {
      const r = await ask(v, a);
      assert.equal(r.verdict, 'valid', a);
      assert.equal(r.source, 'static', a);
    }
    assert.equal(dir.calls.length, 0);
  });

  it('uses per-domain alwaysValid instead of the global list', async () => {
    const { v, dir } = setup({ domains: { 'example.com': {}, 'new.example': { alwaysValid: ['hostmaster'] } } });
    dir.down();
    assert.equal((await ask(v, 'hostmaster@new.example')).verdict, 'valid');
    assert.equal((await ask(v, 'postmaster@new.example')).verdict, 'tempfail');
    assert.equal((await ask(v, 'hostmaster@example.com')).verdict, 'tempfail');
    assert.equal((await ask(v, 'postmaster@example.com')).verdict, 'valid');
  });

  it('answers valid for any local part of a catch-all domain, without a directory request', async () => {
    const { v, dir } = setup({ domains: { 'example.com': {}, 'legacy.example': { catchAll: true } }, catchAllDomains: ['Catch.Example'] });
    dir.down();
    for (const a of ['anyone@legacy.example', 'whoever+x@catch.example', 'x@CATCH.example.']) {
      const r = await ask(v, a);
      assert.equal(r.verdict, 'valid', a);
      assert.equal(r.source, 'static', a);
    }
    assert.equal(dir.calls.length, 0);
    assert.equal(v.isServedDomain('catch.example'), true);
  });

  it('serves every domain the directory knows when domains is empty', async () => {
    const dir = new FakeDirectory(['carol@example.org'], { knownDomains: ['example.org'] });
    const { v } = setup({ domains: [] }, { directory: dir });
    assert.deepEqual(v.servedDomains(), ['example.org']);
    assert.equal((await ask(v, 'carol@example.org')).verdict, 'valid');
    assert.equal((await ask(v, 'carol@example.com')).verdict, 'not_ours');
  });
});

describe('overrides and precedence (deny > allow > alwaysValid > catch-all > directory)', () => {
  const cfg = { domains: { 'example.com': {}, 'legacy.example': { catchAll: true } } };

  it('deny makes a directory recipient unknown without a directory request', async () => {
    const { v, dir } = setup(cfg, { overrides: { deny: ['alice@example.com'] } });
    const r = await ask(v, 'Alice@Example.com', 'http', true);
    assert.equal(r.verdict, 'unknown');
    assert.equal(r.explain?.rule, 'deny');
    assert.equal(dir.calls.length, 0);
  });

  it('deny of a base address covers its sub-addresses', async () => {
    const { v } = setup(cfg, { overrides: { deny: ['alice@example.com'] } });
    assert.equal((await ask(v, 'alice+tag@example.com')).verdict, 'unknown');
  });

  it('allow makes an unknown recipient valid, also with the directory down', async () => {
    const { v, dir } = setup(cfg, { overrides: { allow: ['ghost@example.com'] } });
    dir.down();
    const r = await ask(v, 'ghost@example.com', 'http', true);
    assert.equal(r.verdict, 'valid');
    assert.equal(r.explain?.rule, 'allow');
    assert.equal(dir.calls.length, 0);
  });

  it('deny beats allow', async () => {
    const { v } = setup(cfg, { overrides: { allow: ['x@example.com'], deny: ['x@example.com'] } });
    assert.equal((await ask(v, 'x@example.com')).verdict, 'unknown');
  });

  it('deny beats alwaysValid and catch-all', async () => {
    const { v } = setup(cfg, { overrides: { deny: ['postmaster@example.com', 'spamtrap@legacy.example'] } });
    assert.equal((await ask(v, 'postmaster@example.com')).verdict, 'unknown');
    assert.equal((await ask(v, 'spamtrap@legacy.example')).verdict, 'unknown');
    assert.equal((await ask(v, 'other@legacy.example')).verdict, 'valid');
  });

  it('allow decides before alwaysValid, alwaysValid before catch-all', async () => {
    const { v } = setup(cfg, { overrides: { allow: ['postmaster@example.com'] } });
    assert.equal((await ask(v, 'postmaster@example.com', 'http', true)).explain?.rule, 'allow');
    assert.equal((await ask(v, 'postmaster@legacy.example', 'http', true)).explain?.rule, 'always_valid');
    assert.equal((await ask(v, 'someone@legacy.example', 'http', true)).explain?.rule, 'catch_all');
  });

  it('overrides replaced at run time take effect', async () => {
    const { v } = setup();
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'valid');
    v.setOverrides({ allow: new Set(), deny: new Set(['alice@example.com']) });
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'unknown');
  });

  it('overrides do not make a foreign domain ours', async () => {
    const { v } = setup(cfg, { overrides: { allow: ['x@elsewhere.example'] } });
    assert.equal((await ask(v, 'x@elsewhere.example')).verdict, 'not_ours');
  });
});

describe('shadow mode', () => {
  it('answers valid, marks shadow and enforcedVerdict, and counts the would-be rejection', async () => {
    const { v, metrics } = setup({ mode: 'shadow' });
    const r = await ask(v, 'nobody@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.shadow, true);
    assert.equal(r.enforcedVerdict, 'unknown');
    assert.equal(await metric(metrics, 'rcptgate_shadow_rejections_total', { domain: 'example.com' }), 1);
  });

  it('answers valid instead of tempfail when the directory is down', async () => {
    const { v, dir, metrics } = setup({ mode: 'shadow' });
    dir.down();
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.enforcedVerdict, 'tempfail');
    assert.equal(await metric(metrics, 'rcptgate_shadow_rejections_total', { domain: 'example.com' }), 1);
  });

  it('does not count a recipient enforce mode would accept', async () => {
    const { v, metrics } = setup({ mode: 'shadow' });
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.shadow, true);
    assert.equal(r.enforcedVerdict, 'valid');
    assert.equal(await metric(metrics, 'rcptgate_shadow_rejections_total', { domain: 'example.com' }), 0);
  });

  it('applies per domain, leaving enforce domains alone', async () => {
    const { v } = setup({ domains: { 'example.com': {}, 'new.example': { mode: 'shadow' } } });
    const shadowed = await ask(v, 'nobody@new.example');
    assert.equal(shadowed.verdict, 'valid');
    assert.equal(shadowed.enforcedVerdict, 'unknown');
    const enforced = await ask(v, 'nobody@example.com');
    assert.equal(enforced.verdict, 'unknown');
    assert.equal(enforced.shadow, undefined);
  });

  it('logs would-be refusals up to a bound per domain and minute, and counts every one', async () => {
    // A dictionary attack on a shadow domain made one log line per guessed address.
    const lines: Array<{ msg: string; domain?: string; suppressed?: number }> = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(...chunk.toString().trim().split('\n').map((l) => JSON.parse(l))), done()) });
    const metrics = new Metrics({ defaultMetrics: false });
    const config = validateConfig({ domains: { 'example.com': { mode: 'shadow' }, 'new.example': { mode: 'shadow' } } });
    const v = new RecipientValidatorImpl({ config, directory: new FakeDirectory({}), metrics, logger: createLogger('info', sink) });
    const flood = SHADOW_LINES_PER_MINUTE + 50;
    for (let i = 0; i < flood; i++) await ask(v, `guess${i}@example.com`);
    await ask(v, 'nobody@new.example');
    await new Promise((r) => setImmediate(r));
    const shadow = lines.filter((l) => l.msg === 'shadow mode: would have refused');
    assert.equal(shadow.filter((l) => l.domain === 'example.com').length, SHADOW_LINES_PER_MINUTE);
    assert.equal(shadow.filter((l) => l.domain === 'new.example').length, 1, 'another domain still logs');
    assert.equal(await metric(metrics, 'rcptgate_shadow_rejections_total', { domain: 'example.com' }), flood);
    assert.equal(await metric(metrics, 'rcptgate_log_suppressed_total', { event: 'shadow_would_refuse:example.com' }), 50);
  });

  it('counts the lookup under the verdict it answered', async () => {
    const { v, metrics } = setup({ mode: 'shadow' });
    await ask(v, 'nobody@example.com', 'policy');
    assert.equal(await metric(metrics, 'rcptgate_lookups_total', { frontend: 'policy', verdict: 'valid' }), 1);
  });
});

describe('metrics', () => {
  it('counts lookups by front end and verdict, and their duration', async () => {
    const { v, dir, metrics } = setup();
    await ask(v, 'alice@example.com', 'socketmap');
    await ask(v, 'nobody@example.com', 'socketmap');
    await ask(v, 'x@elsewhere.example', 'milter');
    await ask(v, 'bad', 'http');
    dir.down();
    await ask(v, 'bob@example.com', 'policy');
    assert.equal(await metric(metrics, 'rcptgate_lookups_total', { frontend: 'socketmap', verdict: 'valid' }), 1);
    assert.equal(await metric(metrics, 'rcptgate_lookups_total', { frontend: 'socketmap', verdict: 'unknown' }), 1);
    assert.equal(await metric(metrics, 'rcptgate_lookups_total', { frontend: 'milter', verdict: 'not_ours' }), 1);
    assert.equal(await metric(metrics, 'rcptgate_lookups_total', { frontend: 'http', verdict: 'invalid' }), 1);
    assert.equal(await metric(metrics, 'rcptgate_lookups_total', { frontend: 'policy', verdict: 'tempfail' }), 1);
    const text = await metrics.registry.getSingleMetricAsString('rcptgate_lookup_duration_seconds');
    assert.match(text, /rcptgate_lookup_duration_seconds_count\{frontend="socketmap"\} 2/);
  });

  it('counts cache hits and misses and reports the number of entries', async () => {
    const { v, metrics } = setup();
    await ask(v, 'alice@example.com');
    await ask(v, 'alice@example.com');
    await ask(v, 'nobody@example.com');
    // nobody@ and, as it is unknown, @example.com (a catch-all entry would answer it).
    assert.equal(await metric(metrics, 'rcptgate_cache_events_total', { event: 'miss' }), 3);
    assert.equal(await metric(metrics, 'rcptgate_cache_events_total', { event: 'hit' }), 1);
    assert.equal(await metric(metrics, 'rcptgate_cache_entries'), 3);
  });
});

describe('flush and eviction', () => {
  it('flushes one address in any form', async () => {
    const { v, dir, metrics } = setup();
    await ask(v, 'alice@example.com');
    await ask(v, 'bob@example.com');
    assert.equal(v.flush('ALICE@Example.COM.'), 1);
    assert.equal(v.flush('alice@example.com'), 0);
    assert.equal(v.flush('not an address'), 0);
    assert.equal(await metric(metrics, 'rcptgate_cache_entries'), 1);
    assert.equal((await ask(v, 'alice@example.com')).source, 'directory');
    assert.equal((await ask(v, 'bob@example.com')).source, 'cache');
    assert.equal(dir.callsFor('alice@example.com'), 2);
  });

  it('flushes everything', async () => {
    const { v, metrics } = setup();
    await ask(v, 'alice@example.com');
    await ask(v, 'nobody@example.com');
    assert.equal(v.cacheSize, 3, 'alice@, nobody@ and @example.com');
    assert.equal(v.flush(), 3);
    assert.equal(v.cacheSize, 0);
    assert.equal(await metric(metrics, 'rcptgate_cache_entries'), 0);
    assert.equal((await ask(v, 'alice@example.com')).source, 'directory');
  });

  it('evicts the least recently used entry beyond maxEntries and counts it', async () => {
    const { v, dir, metrics } = setup({ cache: { maxEntries: 2 } });
    await ask(v, 'alice@example.com');
    await ask(v, 'bob@example.com');
    await ask(v, 'alice@example.com'); // alice is now the most recently used
    await ask(v, 'first-last@example.com');
    assert.equal(v.cacheSize, 2);
    assert.equal(await metric(metrics, 'rcptgate_cache_events_total', { event: 'evict' }), 1);
    assert.equal((await ask(v, 'alice@example.com')).source, 'cache');
    assert.equal((await ask(v, 'bob@example.com')).source, 'directory');
    assert.equal(dir.callsFor('bob@example.com'), 2);
  });
});

describe('snapshot', () => {
  const snapshot = (fresh: boolean): SnapshotView => ({
    get: (a) => ({ 'alice@example.com': 'Alice@Example.com' })[a],
    isFresh: () => fresh,
    listedAt: -Infinity,
    hasDn: () => true,
  });

  it('answers a snapshot hit without the directory', async () => {
    const { v, dir } = setup({}, { snapshot: snapshot(true) });
    dir.down();
    const valid = await ask(v, 'alice+tag@example.com');
    assert.equal(valid.verdict, 'valid');
    assert.equal(valid.source, 'snapshot');
    assert.equal(valid.canonical, 'Alice@Example.com');
    assert.equal(dir.calls.length, 0);
  });

  it('confirms a snapshot miss live: an address added after the last sync is valid, and cached', async () => {
    const { v, dir } = setup({}, { snapshot: snapshot(true) });
    const added = await ask(v, 'bob@example.com');
    assert.equal(added.verdict, 'valid');
    assert.equal(added.source, 'directory');
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'unknown');
    assert.equal((await ask(v, 'nobody@example.com')).source, 'cache');
    assert.equal(dir.callsFor('nobody@example.com'), 1, 'a flood reaches the directory once');
  });

  it('defers a snapshot miss while the directory is down (restart with the directory down)', async () => {
    const { v, dir } = setup({}, { snapshot: snapshot(true) });
    dir.down();
    const r = await ask(v, 'bob@example.com');
    assert.equal(r.verdict, 'tempfail');
  });

  it('with sync.confirmMisses false, a snapshot miss is unknown without a directory request while the directory is up', async () => {
    const { v, dir } = setup({ sync: { confirmMisses: false } }, { snapshot: snapshot(true) });
    v.health.answered(); // as the readiness probe does
    const before = dir.calls.length;
    const unknown = await ask(v, 'nobody@example.com');
    assert.equal(unknown.verdict, 'unknown');
    assert.equal(unknown.source, 'snapshot');
    assert.equal(dir.calls.length, before);
  });

  it('with sync.confirmMisses false, a snapshot miss defers while the directory is down', async () => {
    const { v, dir } = setup({ sync: { confirmMisses: false } }, { snapshot: snapshot(true) });
    dir.down();
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'tempfail', 'never answered since start');
  });

  it('asks the directory when the snapshot is too old', async () => {
    const { v, dir } = setup({}, { snapshot: snapshot(false) });
    const r = await ask(v, 'bob@example.com');
    assert.equal(r.verdict, 'valid');
    assert.equal(r.source, 'directory');
    assert.equal(dir.calls.length, 1);
  });
});
