import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bearerToken, tokensEqual } from '../../src/http/auth.js';
import { parseBatchRequest } from '../../src/http/batch-request.js';
import { DEFAULT_RETRY_AFTER_SECONDS, mapLimit, retryAfterSeconds, toBody } from '../../src/http/lookup.js';
import { PROBLEM_BASE, problemBody } from '../../src/http/problem.js';

describe('tokensEqual', () => {
  it('is true exactly when the strings are equal, whatever their lengths', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        assert.equal(tokensEqual(a, b), a === b);
        assert.equal(tokensEqual(a, a), true);
      }),
    );
  });
});

describe('bearerToken', () => {
  it('extracts the token of a Bearer header in any case of the scheme', () => {
    assert.equal(bearerToken('Bearer abc.def'), 'abc.def');
    assert.equal(bearerToken('bearer abc'), 'abc');
    assert.equal(bearerToken('BEARER  abc '), 'abc');
  });
  it('returns null for a missing header, another scheme or an empty token', () => {
    for (const h of [undefined, '', 'Basic abc', 'Bearer', 'Bearer ', 'Bearerabc', 'Bearer a b']) assert.equal(bearerToken(h), null, String(h));
  });
});

describe('parseBatchRequest', () => {
  it('accepts an object with an array of strings up to the maximum', () => {
    assert.deepEqual(parseBatchRequest({ addresses: ['a', 'b'] }, 2), { ok: true, addresses: ['a', 'b'] });
    assert.deepEqual(parseBatchRequest({ addresses: [] }, 2), { ok: true, addresses: [] });
  });
  it('refuses more items than the maximum', () => {
    const r = parseBatchRequest({ addresses: ['a', 'b', 'c'] }, 2);
    assert.equal(r.ok, false);
  });
  it('points at unknown members with escaped JSON Pointers', () => {
    const r = parseBatchRequest({ addresses: [], 'a/b~c': 1 }, 2);
    assert.ok(!r.ok);
    assert.deepEqual(r.errors, [{ pointer: '/a~1b~0c', detail: 'unknown member' }]);
  });
  it('reports at most 20 bad items', () => {
    const r = parseBatchRequest({ addresses: Array.from({ length: 50 }, () => 1) }, 100);
    assert.ok(!r.ok);
    assert.equal(r.errors.length, 20);
  });
  it('refuses anything that is not an object', () => {
    for (const body of [null, 'x', 1, [], true]) assert.equal(parseBatchRequest(body, 2).ok, false);
  });
});

describe('toBody', () => {
  it('derives valid from the verdict, rounds the TTL and drops explain unless asked', () => {
    const result = { address: 'a@example.com', verdict: 'valid' as const, source: 'cache' as const, ttlSeconds: 12.6, explain: { tried: [], rule: 'cache' as const } };
    assert.deepEqual(toBody(result, false), { address: 'a@example.com', verdict: 'valid', valid: true, source: 'cache', ttlSeconds: 13 });
    assert.deepEqual(toBody(result, true).explain, { tried: [], rule: 'cache' });
    assert.equal(toBody({ ...result, verdict: 'unknown' }, false).valid, false);
  });
});

describe('retryAfterSeconds', () => {
  it('uses the TTL when there is one, else the default', () => {
    const r = { address: 'a', verdict: 'tempfail' as const, source: 'directory' as const };
    assert.equal(retryAfterSeconds({ ...r, ttlSeconds: 30 }), 30);
    assert.equal(retryAfterSeconds({ ...r, ttlSeconds: 0.2 }), 1);
    assert.equal(retryAfterSeconds({ ...r, ttlSeconds: 0 }), DEFAULT_RETRY_AFTER_SECONDS);
    assert.equal(retryAfterSeconds({ ...r, ttlSeconds: Number.NaN }), DEFAULT_RETRY_AFTER_SECONDS);
  });
});

describe('mapLimit', () => {
  it('keeps the input order and never exceeds the limit', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: 3 }), { maxLength: 40 }), fc.integer({ min: 1, max: 6 }), async (delays, limit) => {
        let inFlight = 0;
        let max = 0;
        const out = await mapLimit(delays, limit, async (d) => {
          max = Math.max(max, ++inFlight);
          for (let i = 0; i < d; i++) await new Promise((r) => setImmediate(r));
          inFlight--;
          return d * 2;
        });
        assert.deepEqual(out, delays.map((d) => d * 2));
        assert.ok(max <= limit);
      }),
      { numRuns: 50 },
    );
  });
});

describe('problemBody', () => {
  it('never lets an extension overwrite a standard member', () => {
    const body = problemBody('temporary-failure', 'why', { type: 'evil', status: 200, title: 'x', detail: 'y', instance: 'z', verdict: 'tempfail' });
    assert.deepEqual(body, { type: `${PROBLEM_BASE}temporary-failure`, title: 'Temporary lookup failure', status: 503, detail: 'why', verdict: 'tempfail' });
  });
});
