import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { createHttpApp, type HttpAppDeps } from '../../src/http/app.js';
import { PROBLEM_BASE } from '../../src/http/problem.js';
import { BATCH_CONCURRENCY, DEFAULT_RETRY_AFTER_SECONDS, MAX_BATCH } from '../../src/http/lookup.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { HealthReport } from '../../src/recipient/types.js';
import { FakeValidator as ScriptedValidator } from '../helpers/fake-validator.js';
import { FakeValidator, healthReport, type Answer } from '../helpers/http-fakes.js';
import { SPEC_PATH, SpecChecker, loadSpec } from '../helpers/http-openapi-helper.js';

const TOKEN = 's3cret-admin-token';

const ANSWERS: Record<string, Answer> = {
  'alice@example.com': { verdict: 'valid', canonical: 'alice@example.com', source: 'directory', ttlSeconds: 3600 },
  'alice+news@example.com': {
    verdict: 'valid',
    canonical: 'alice@example.com',
    source: 'cache',
    ttlSeconds: 1800,
    explain: { normalized: 'alice+news@example.com', tried: ['alice+news@example.com', 'alice@example.com'], rule: 'cache', cache: 'hit' },
  },
  'someone@elsewhere.test': { verdict: 'not_ours', source: 'static', ttlSeconds: 3600 },
  'no-at-sign': { verdict: 'invalid', source: 'static', ttlSeconds: 0, reason: 'the address has no @' },
  'down@example.com': { verdict: 'tempfail', source: 'directory', ttlSeconds: 0, reason: 'directory timeout after 3000 ms' },
  'down30@example.com': { verdict: 'tempfail', source: 'directory', ttlSeconds: 30, reason: 'directory overloaded' },
  'ghost@new.example': { verdict: 'valid', source: 'directory', ttlSeconds: 300, shadow: true, enforcedVerdict: 'unknown' },
  'boom@example.com': 'throw',
};

let spec: SpecChecker;
before(async () => {
  spec = new SpecChecker(await loadSpec());
});

function setup(overrides: Partial<HttpAppDeps> = {}) {
  const validator = new FakeValidator(ANSWERS);
  let report: HealthReport = healthReport();
  const metrics = new Metrics({ defaultMetrics: false });
  const app = createHttpApp({
    validator,
    metrics,
    logger: silentLogger(),
    health: () => report,
    adminToken: TOKEN,
    version: '9.9.9-test',
    statusPage: true,
    ...overrides,
  });
  const agent = request(app);
  const checked = async (req: request.Test) => spec.check(await req);
  return { app, agent, validator, metrics, checked, setHealth: (r: HealthReport) => void (report = r) };
}

const problemType = (slug: string) => PROBLEM_BASE + slug;

describe('GET /v1/recipients/{address}', () => {
  it('answers 200 with the result of a valid address and asks the engine as the http front end', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.get('/v1/recipients/alice@example.com'));
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(res.body, {
      address: 'alice@example.com',
      verdict: 'valid',
      valid: true,
      canonical: 'alice@example.com',
      source: 'directory',
      ttlSeconds: 3600,
    });
    assert.deepEqual(validator.calls, [{ address: 'alice@example.com', options: { frontend: 'http', explain: false }, sync: false }]);
  });

  it('answers 200 with valid false for unknown and not_ours', async () => {
    const { agent, checked } = setup();
    const unknown = await checked(agent.get('/v1/recipients/nobody@example.com'));
    assert.equal(unknown.status, 200);
    assert.equal(unknown.body.verdict, 'unknown');
    assert.equal(unknown.body.valid, false);
    assert.equal('canonical' in unknown.body, false);
    const notOurs = await checked(agent.get('/v1/recipients/someone@elsewhere.test'));
    assert.equal(notOurs.status, 200);
    assert.equal(notOurs.body.verdict, 'not_ours');
    assert.equal(notOurs.body.valid, false);
  });

  it('answers 400 invalid-address carrying the result members for an invalid address', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/v1/recipients/no-at-sign'));
    assert.equal(res.status, 400);
    assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
    assert.equal(res.body.type, problemType('invalid-address'));
    assert.equal(res.body.status, 400);
    assert.equal(res.body.detail, 'the address has no @');
    assert.equal(res.body.verdict, 'invalid');
    assert.equal(res.body.valid, false);
    assert.equal(res.body.address, 'no-at-sign');
  });

  it('answers 503 temporary-failure with Retry-After and the result members on tempfail', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/v1/recipients/down@example.com'));
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], String(DEFAULT_RETRY_AFTER_SECONDS));
    assert.equal(res.body.type, problemType('temporary-failure'));
    assert.equal(res.body.verdict, 'tempfail');
    assert.equal(res.body.valid, false);
    assert.equal(res.body.detail, 'directory timeout after 3000 ms');
    const withTtl = await checked(agent.get('/v1/recipients/down30@example.com'));
    assert.equal(withTtl.status, 503);
    assert.equal(withTtl.headers['retry-after'], '30');
  });

  it('answers 200 with shadow and enforcedVerdict in shadow mode', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/v1/recipients/ghost@new.example'));
    assert.equal(res.status, 200);
    assert.equal(res.body.verdict, 'valid');
    assert.equal(res.body.shadow, true);
    assert.equal(res.body.enforcedVerdict, 'unknown');
  });

  it('adds the explanation only with ?explain=1 or ?explain=true and the admin token', async () => {
    const { agent, checked, validator } = setup();
    const plain = await checked(agent.get('/v1/recipients/alice+news@example.com'));
    assert.equal('explain' in plain.body, false);
    const explained = await checked(agent.get('/v1/recipients/alice+news@example.com?explain=1').set('Authorization', `Bearer ${TOKEN}`));
    assert.equal(explained.body.explain.rule, 'cache');
    assert.deepEqual(explained.body.explain.tried, ['alice+news@example.com', 'alice@example.com']);
    const viaTrue = await checked(agent.get('/v1/recipients/alice+news@example.com').set('Authorization', `Bearer ${TOKEN}`).query({ explain: 'true' }));
    assert.equal(viaTrue.body.explain.rule, 'cache');
    const off = await checked(agent.get('/v1/recipients/alice+news@example.com?explain=0'));
    assert.equal('explain' in off.body, false);
    assert.deepEqual(
      validator.calls.map((c) => c.options.explain),
      [false, true, true, false],
    );
  });

  it('decodes percent-encoding, keeps + literal and accepts a / in the local part', async () => {
    const { agent, checked, validator } = setup();
    await checked(agent.get('/v1/recipients/Alice%2Bnews%40Example.com'));
    await checked(agent.get('/v1/recipients/a+b@example.com'));
    await checked(agent.get('/v1/recipients/a%2Fb@example.com'));
    await checked(agent.get('/v1/recipients/a/b@example.com'));
    await checked(agent.get('/v1/recipients/j%C3%B6rg@b%C3%BCcher.example'));
    assert.deepEqual(
      validator.calls.map((c) => c.address),
      ['Alice+news@Example.com', 'a+b@example.com', 'a/b@example.com', 'a/b@example.com', 'jörg@bücher.example'],
    );
  });

  it('answers 400 invalid-request for malformed percent-encoding without asking the engine', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.get('/v1/recipients/%E0%A4%A@example.com'));
    assert.equal(res.status, 400);
    assert.equal(res.body.type, problemType('invalid-request'));
    assert.equal(validator.calls.length, 0);
  });

  it('answers 404 for /v1/recipients/ with no address', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/v1/recipients/'));
    assert.equal(res.status, 404);
    assert.equal(res.body.type, problemType('not-found'));
  });

  it('supports HEAD like GET, without a body', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.head('/v1/recipients/alice@example.com'));
    assert.equal(res.status, 200);
    assert.equal(res.text, undefined);
  });
});

describe('POST /v1/recipients:check', () => {
  it('answers every address in request order, keeping invalid and tempfail items with 200 overall', async () => {
    const { agent, checked, validator } = setup();
    const addresses = ['alice@example.com', 'no-at-sign', 'down@example.com', 'nobody@example.com', 'someone@elsewhere.test', 'ghost@new.example'];
    const res = await checked(agent.post('/v1/recipients:check').send({ addresses }));
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.body.results.map((r: { address: string; verdict: string }) => [r.address, r.verdict]),
      [
        ['alice@example.com', 'valid'],
        ['no-at-sign', 'invalid'],
        ['down@example.com', 'tempfail'],
        ['nobody@example.com', 'unknown'],
        ['someone@elsewhere.test', 'not_ours'],
        ['ghost@new.example', 'valid'],
      ],
    );
    assert.equal(res.body.results[2].reason, 'directory timeout after 3000 ms');
    assert.equal(res.body.results[5].enforcedVerdict, 'unknown');
    assert.ok(validator.calls.every((c) => c.options.frontend === 'http'));
  });

  it('is a route of its own: the colon is literal, not a parameter', async () => {
    const { agent, checked, validator } = setup();
    const wrongMethod = await checked(agent.get('/v1/recipients:check'));
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers['allow'], 'POST');
    for (const path of ['/v1/recipients:other', '/v1/recipientscheck', '/v1/recipientsXcheck', '/v1/recipients']) {
      const res = await checked(agent.post(path).send({ addresses: ['alice@example.com'] }));
      assert.equal(res.status, 404, path);
    }
    assert.equal(validator.calls.length, 0);
  });

  it('accepts an empty list and exactly the maximum, and refuses one more', async () => {
    const { agent, checked, validator } = setup();
    const empty = await checked(agent.post('/v1/recipients:check').send({ addresses: [] }));
    assert.deepEqual(empty.body, { results: [] });
    const max = Array.from({ length: MAX_BATCH }, (_, i) => `user${i}@example.com`);
    const full = await checked(agent.post('/v1/recipients:check').send({ addresses: max }));
    assert.equal(full.status, 200);
    assert.equal(full.body.results.length, MAX_BATCH);
    assert.equal(full.body.results[MAX_BATCH - 1].address, `user${MAX_BATCH - 1}@example.com`);
    assert.ok(validator.maxInFlight <= BATCH_CONCURRENCY, `at most ${BATCH_CONCURRENCY} lookups in flight, saw ${validator.maxInFlight}`);
    assert.ok(validator.maxInFlight > 1, 'lookups of one batch run concurrently');
    const tooMany = await checked(agent.post('/v1/recipients:check').send({ addresses: [...max, 'one@example.com'] }));
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.type, problemType('invalid-request'));
    assert.match(tooMany.body.detail, /1000/);
    assert.equal(validator.calls.length, MAX_BATCH);
  });

  it('answers 400 with pointers to the items that are not strings', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.post('/v1/recipients:check').send({ addresses: ['a@example.com', 42, null, 'b@example.com', ['c']] }));
    assert.equal(res.status, 400);
    assert.deepEqual(
      res.body.errors.map((e: { pointer: string }) => e.pointer),
      ['/addresses/1', '/addresses/2', '/addresses/4'],
    );
    assert.equal(validator.calls.length, 0);
  });

  it('answers 400 for bodies of the wrong shape', async () => {
    const { agent, checked } = setup();
    for (const body of [[], { addresses: 'a@example.com' }, {}, { addresses: [], extra: true }, { address: ['a@example.com'] }]) {
      const res = await checked(agent.post('/v1/recipients:check').send(body));
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.type, problemType('invalid-request'));
    }
  });

  it('answers 400 for malformed JSON and for a missing body', async () => {
    const { agent, checked } = setup();
    const malformed = await checked(agent.post('/v1/recipients:check').set('Content-Type', 'application/json').send('{"addresses": [nope'));
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.type, problemType('invalid-request'));
    assert.equal(malformed.body.detail, 'The request body is not valid JSON.');
    const missing = await checked(agent.post('/v1/recipients:check'));
    assert.equal(missing.status, 400);
    assert.equal(missing.body.type, problemType('invalid-request'));
  });

  it('answers 413 for a body over the limit', async () => {
    const { agent, checked, validator } = setup();
    const huge = { addresses: Array.from({ length: 900 }, (_, i) => `${'x'.repeat(300)}${i}@example.com`) };
    const res = await checked(agent.post('/v1/recipients:check').send(huge));
    assert.equal(res.status, 413);
    assert.equal(res.body.type, problemType('payload-too-large'));
    assert.equal(validator.calls.length, 0);
  });

  it('answers 503 busy before reading the body while other batches hold the budget, and admits again once they end', async () => {
    const slow = new ScriptedValidator(() => ({ verdict: 'valid', delayMs: 300 }));
    const { agent, checked } = setup({ validator: slow, batchBytesInProgress: 1 });
    const first = agent.post('/v1/recipients:check').send({ addresses: ['alice@example.com'] }).then((r) => r);
    while (slow.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    const busy = await checked(agent.post('/v1/recipients:check').send({ addresses: ['bob@example.com'] }));
    assert.equal(busy.status, 503);
    assert.equal(busy.body.type, problemType('busy'));
    assert.equal(busy.headers['retry-after'], '1');
    assert.equal(busy.headers['connection'], 'close');
    assert.deepEqual(slow.addresses, ['alice@example.com'], 'the refused batch was not looked up');
    assert.equal((await first).status, 200);
    assert.equal((await checked(agent.post('/v1/recipients:check').send({ addresses: ['carol@example.com'] }))).status, 200);
  });

  it('answers 415 for a body that is not JSON', async () => {
    const { agent, checked } = setup();
    const text = await checked(agent.post('/v1/recipients:check').set('Content-Type', 'text/plain').send('alice@example.com'));
    assert.equal(text.status, 415);
    assert.equal(text.body.type, problemType('unsupported-media-type'));
    const form = await checked(agent.post('/v1/recipients:check').type('form').send({ addresses: 'a@example.com' }));
    assert.equal(form.status, 415);
  });

  it('passes ?explain=1 through for every item', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.post('/v1/recipients:check?explain=1').set('Authorization', `Bearer ${TOKEN}`).send({ addresses: ['alice+news@example.com'] }));
    assert.equal(res.body.results[0].explain.rule, 'cache');
    assert.equal(validator.calls[0]?.options.explain, true);
  });
});

describe('DELETE /v1/cache', () => {
  it('flushes everything with the right bearer token', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.delete('/v1/cache').set('Authorization', `Bearer ${TOKEN}`));
    assert.equal(res.status, 204);
    assert.deepEqual(validator.flushed, [undefined]);
  });

  it('flushes one address, accepting the scheme in any case', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.delete('/v1/cache/Alice%2Bnews@example.com').set('Authorization', `bearer ${TOKEN}`));
    assert.equal(res.status, 204);
    assert.deepEqual(validator.flushed, ['Alice+news@example.com']);
  });

  it('uses the flushCache dependency instead of the validator when given', async () => {
    const flushed: Array<string | undefined> = [];
    const { agent, checked, validator } = setup({ flushCache: (a) => (flushed.push(a), 0) });
    await checked(agent.delete('/v1/cache').set('Authorization', `Bearer ${TOKEN}`));
    await checked(agent.delete('/v1/cache/bob@example.com').set('Authorization', `Bearer ${TOKEN}`));
    assert.deepEqual(flushed, [undefined, 'bob@example.com']);
    assert.deepEqual(validator.flushed, []);
  });

  it('answers 401 with WWW-Authenticate without a bearer token', async () => {
    const { agent, checked, validator } = setup();
    for (const auth of [undefined, `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`, 'Bearer', 'Bearer ']) {
      for (const path of ['/v1/cache', '/v1/cache/alice@example.com']) {
        const req = agent.delete(path);
        if (auth !== undefined) req.set('Authorization', auth);
        const res = await checked(req);
        assert.equal(res.status, 401, `${path} with ${auth}`);
        assert.match(res.headers['www-authenticate'] ?? '', /^Bearer/);
        assert.equal(res.body.type, problemType('unauthorized'));
      }
    }
    assert.deepEqual(validator.flushed, []);
  });

  it('answers 403 for a wrong token, also a prefix or an extension of the right one', async () => {
    const { agent, checked, validator } = setup();
    for (const token of ['wrong', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()]) {
      for (const path of ['/v1/cache', '/v1/cache/alice@example.com']) {
        const res = await checked(agent.delete(path).set('Authorization', `Bearer ${token}`));
        assert.equal(res.status, 403, `${path} with ${token}`);
        assert.equal(res.body.type, problemType('forbidden'));
      }
    }
    assert.deepEqual(validator.flushed, []);
  });

  it('answers 400 invalid-request for an address that is not valid percent-encoding', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.delete('/v1/cache/%E0%A4%A@example.com').set('Authorization', `Bearer ${TOKEN}`));
    assert.equal(res.status, 400);
    assert.equal(res.body.type, problemType('invalid-request'));
    assert.deepEqual(validator.flushed, []);
  });

  it('answers 404 when admin is disabled, whatever the token', async () => {
    const { agent, checked, validator } = setup({ adminToken: null });
    for (const path of ['/v1/cache', '/v1/cache/alice@example.com']) {
      for (const auth of [undefined, `Bearer ${TOKEN}`, 'Bearer null']) {
        const req = agent.delete(path);
        if (auth !== undefined) req.set('Authorization', auth);
        const res = await checked(req);
        assert.equal(res.status, 404);
        assert.equal(res.body.type, problemType('not-found'));
      }
    }
    assert.deepEqual(validator.flushed, []);
  });
});

describe('operations endpoints', () => {
  it('answers /healthz with 200', async () => {
    const { agent, checked } = setup({ health: () => healthReport({ ready: false }) });
    const res = await checked(agent.get('/healthz'));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok' });
  });

  it('answers /readyz with 200 and the public health view while ready, also during a directory outage', async () => {
    const { agent, checked, setHealth } = setup();
    const ready = await checked(agent.get('/readyz'));
    assert.equal(ready.status, 200);
    const { reason: _r, ...rest } = healthReport();
    assert.deepEqual(ready.body, { ...rest, directory: { kind: 'ldap', up: true, lastSuccessAt: new Date(0).toISOString() } });
    const outage = healthReport({ reason: 'directory down', directory: { kind: 'ldap', up: false, lastSuccessAt: new Date(0).toISOString(), lastError: 'timeout' } });
    setHealth(outage);
    const degraded = await checked(agent.get('/readyz'));
    assert.equal(degraded.status, 200);
    assert.equal(degraded.body.directory.up, false);
    assert.equal(degraded.body.reasonCode, 'directory_down');
  });

  it('answers /readyz with 503 and a reason code until ready and while draining', async () => {
    const { agent, checked, setHealth } = setup();
    setHealth(healthReport({ ready: false, reason: 'the directory has not answered yet', directory: { kind: 'ldap', up: false, lastSuccessAt: null, lastError: 'ECONNREFUSED' } }));
    const starting = await checked(agent.get('/readyz'));
    assert.equal(starting.status, 503);
    assert.equal(starting.body.reasonCode, 'waiting_for_directory');
    setHealth(healthReport({ ready: false, draining: true, reason: 'draining' }));
    const draining = await checked(agent.get('/readyz'));
    assert.equal(draining.status, 503);
    assert.equal(draining.body.draining, true);
    assert.equal(draining.body.reasonCode, 'draining');
  });

  it('keeps the directory error text out of /readyz unless the admin token comes along', async () => {
    const secretish = 'LDAP bind cn=rcptgate,ou=services,dc=example,dc=com was refused by ldap://192.0.2.10:389 with invalidCredentials';
    const report = healthReport({ ready: false, reason: `waiting (last error: ${secretish})`, directory: { kind: 'ldap', up: false, lastSuccessAt: null, lastError: secretish } });
    const { agent, checked } = setup({ health: () => report });
    for (const auth of [undefined, 'Bearer wrong-token']) {
      const req = agent.get('/readyz');
      const res = await checked(auth ? req.set('Authorization', auth) : req);
      assert.equal(res.status, 503);
      assert.doesNotMatch(res.text, /cn=|ldap:|invalidCredentials|192\.0\.2/);
      assert.equal(res.body.reasonCode, 'waiting_for_directory');
    }
    const admin = await checked(agent.get('/readyz').set('Authorization', `Bearer ${TOKEN}`));
    assert.equal(admin.body.directory.lastError, secretish);
    assert.equal(admin.body.reasonCode, 'waiting_for_directory');
  });

  it('redacts URL credentials even in the admin view of /readyz', async () => {
    const error = 'LDAP server unreachable (bind on ldap://cn=x:hunter2@192.0.2.10:389): ECONNREFUSED';
    const report = healthReport({ ready: false, reason: error, directory: { kind: 'ldap', up: false, lastSuccessAt: null, lastError: error } });
    const { agent, checked } = setup({ health: () => report });
    const admin = await checked(agent.get('/readyz').set('Authorization', `Bearer ${TOKEN}`));
    assert.doesNotMatch(admin.text, /hunter2|cn=x/);
    assert.match(admin.body.directory.lastError, /ldap:\/\/\[redacted\]@192\.0\.2\.10:389/);
  });

  it('passes the engine\'s own reason code through', async () => {
    const report = { ...healthReport({ ready: false }), reasonCode: 'canary_missing' };
    const { agent, checked } = setup({ health: () => report });
    assert.equal((await checked(agent.get('/readyz'))).body.reasonCode, 'canary_missing');
  });

  it('serves the metrics registry in the Prometheus text format', async () => {
    const { agent, checked, metrics } = setup();
    metrics.recordLookup('socketmap', 'valid', 0.001);
    const res = await checked(agent.get('/metrics'));
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], metrics.registry.contentType);
    assert.match(res.text, /^rcptgate_lookups_total\{frontend="socketmap",verdict="valid"\} 1$/m);
  });

  it('does not count lookups itself: the engine does, for every front end', async () => {
    const { agent, checked, metrics } = setup();
    await checked(agent.get('/v1/recipients/alice@example.com'));
    await checked(agent.post('/v1/recipients:check').send({ addresses: ['alice@example.com', 'nobody@example.com'] }));
    const lookups = await metrics.lookups.get();
    assert.deepEqual(lookups.values, []);
  });

  it('serves openapi.yaml from the repository root', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/openapi.yaml'));
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^application\/yaml/);
    assert.equal(res.text, await readFile(SPEC_PATH, 'utf8'));
    assert.equal(parseYaml(res.text).openapi, '3.1.0');
  });
});

// supertest connects from 127.0.0.1: an allow list of ::1 only makes this client a stranger,
// without needing any other interface.
describe('lookup access', () => {
  const LOOKUP = 'l00kup-token';
  const stranger = (overrides: Partial<HttpAppDeps> = {}) => setup({ lookupAccess: { token: LOOKUP, allowFrom: ['::1/128'] }, ...overrides });
  const endpoints = (agent: ReturnType<typeof setup>['agent']) => [
    () => agent.get('/v1/recipients/alice@example.com'),
    () => agent.post('/v1/recipients:check').send({ addresses: ['alice@example.com'] }),
    // Its counters move with each verdict (shadow mode included): the lookup API's clients only.
    () => agent.get('/metrics'),
  ];

  it('answers loopback clients without a token by default', async () => {
    const { agent, checked } = setup();
    for (const req of endpoints(agent)) assert.equal((await checked(req())).status, 200);
  });

  it('answers 401 with WWW-Authenticate to a client off the allow list without a token, and never asks the engine', async () => {
    const { agent, checked, validator } = stranger();
    for (const req of endpoints(agent)) {
      const res = await checked(req());
      assert.equal(res.status, 401);
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="rcptgate"');
      assert.equal(res.body.type, problemType('unauthorized'));
      assert.doesNotMatch(res.text, /alice|valid/);
    }
    assert.deepEqual(validator.calls, []);
  });

  it('answers 403 to a client off the allow list when no token could let it in', async () => {
    const { agent, checked } = setup({ adminToken: null, lookupAccess: { token: null, allowFrom: ['::1/128'] } });
    for (const req of endpoints(agent)) {
      const res = await checked(req());
      assert.equal(res.status, 403);
      assert.match(res.body.detail, /http\.lookupAllowFrom.*http\.lookupTokenFile/);
    }
  });

  it('answers 403 for a wrong token, even from an allowed address', async () => {
    for (const { agent, checked } of [stranger(), setup({ lookupAccess: { token: LOOKUP, allowFrom: ['127.0.0.0/8'] } })]) {
      for (const req of endpoints(agent)) {
        const res = await checked(req().set('Authorization', `Bearer ${LOOKUP}x`));
        assert.equal(res.status, 403);
        assert.equal(res.body.type, problemType('forbidden'));
      }
    }
  });

  it('answers a stranger with the lookup token or the admin token', async () => {
    const { agent, checked } = stranger();
    for (const token of [LOOKUP, TOKEN]) {
      for (const req of endpoints(agent)) assert.equal((await checked(req().set('Authorization', `Bearer ${token}`))).status, 200, token);
    }
  });

  it('keeps /healthz, /readyz and the status page open to strangers (they carry no directory data)', async () => {
    const { agent, checked } = stranger();
    for (const path of ['/healthz', '/readyz', '/', '/openapi.yaml']) assert.equal((await checked(agent.get(path))).status, 200, path);
  });
});

describe('explanations', () => {
  const explainers = (agent: ReturnType<typeof setup>['agent']) => [
    () => agent.get('/v1/recipients/alice+news@example.com?explain=1'),
    () => agent.post('/v1/recipients:check?explain').send({ addresses: ['alice+news@example.com'] }),
  ];

  it('answers 401 without a token and 403 with the lookup token or a wrong one', async () => {
    const { agent, checked, validator } = setup({ lookupAccess: { token: 'l00kup', allowFrom: ['127.0.0.0/8', '::1/128'] } });
    for (const req of explainers(agent)) {
      const none = await checked(req());
      assert.equal(none.status, 401);
      assert.match(none.body.detail, /admin token/);
      for (const token of ['l00kup', 'wrong']) assert.equal((await checked(req().set('Authorization', `Bearer ${token}`))).status, 403, token);
    }
    assert.deepEqual(validator.calls, []);
  });

  it('answers 403 pointing at admin.tokenFile and the CLI when admin is disabled', async () => {
    const { agent, checked } = setup({ adminToken: null });
    for (const req of explainers(agent)) {
      const res = await checked(req());
      assert.equal(res.status, 403);
      assert.match(res.body.detail, /admin\.tokenFile.*rcptgate check --explain/);
    }
  });
});

describe('status page', () => {
  it('serves escaped HTML with version, uptime, directory state and cache entries under a strict CSP', async () => {
    const report = healthReport({
      directory: { kind: 'ldap', up: false, lastSuccessAt: null, lastError: '<script>alert(1)</script>' },
      cache: { entries: 4242 },
    });
    const { agent, checked } = setup({ health: () => report });
    const res = await checked(agent.get('/'));
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/html/);
    const csp = res.headers['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|script-src/);
    assert.match(res.text, /9\.9\.9-test/);
    assert.match(res.text, /1h 2m 5s/);
    assert.match(res.text, /4242/);
    assert.match(res.text, /ldap, down/);
    assert.match(res.text, /directory_down/);
    // The directory error text is not shown to the public at all (escaped or not).
    assert.doesNotMatch(res.text, /<script>|&#60;script&#62;|alert/);
    assert.doesNotMatch(res.text, /(src|href)="https?:/);
  });

  it('has no lookup form and looks nothing up, whatever the query string', async () => {
    const { agent, checked, validator } = setup();
    const res = await checked(agent.get('/?address=alice@example.com&explain=1'));
    assert.equal(res.status, 200);
    assert.doesNotMatch(res.text, /<form|<input|alice@example\.com/);
    assert.deepEqual(validator.calls, []);
  });

  it('answers 404 when the status page is disabled', async () => {
    const { agent, checked } = setup({ statusPage: false });
    const res = await checked(agent.get('/'));
    assert.equal(res.status, 404);
    assert.equal(res.body.type, problemType('not-found'));
  });
});

describe('errors', () => {
  it('answers 404 not-found problems for unknown routes', async () => {
    const { agent, checked } = setup();
    for (const path of ['/nope', '/v2/recipients/alice@example.com', '/v1/cachex', '/metrics/extra']) {
      const res = await checked(agent.get(path));
      assert.equal(res.status, 404, path);
      assert.equal(res.body.type, problemType('not-found'));
    }
  });

  it('answers 405 with Allow for a method a known path does not support', async () => {
    const { agent, checked } = setup();
    const cases: Array<[string, 'get' | 'post' | 'put' | 'delete' | 'patch', string]> = [
      ['/v1/recipients/alice@example.com', 'delete', 'GET, HEAD'],
      ['/v1/recipients:check', 'put', 'POST'],
      ['/v1/cache', 'get', 'DELETE'],
      ['/v1/cache/alice@example.com', 'post', 'DELETE'],
      ['/healthz', 'post', 'GET, HEAD'],
      ['/readyz', 'delete', 'GET, HEAD'],
      ['/metrics', 'patch', 'GET, HEAD'],
      ['/openapi.yaml', 'put', 'GET, HEAD'],
      ['/', 'post', 'GET, HEAD'],
    ];
    for (const [path, method, allow] of cases) {
      const res = await checked(agent[method](path));
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers['allow'], allow);
      assert.equal(res.body.type, problemType('method-not-allowed'));
    }
  });

  it('answers 500 internal-error without internals when the engine throws', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/v1/recipients/boom@example.com'));
    assert.equal(res.status, 500);
    assert.equal(res.body.type, problemType('internal-error'));
    assert.doesNotMatch(res.text, /exploded|secret|\.ts|at /);
  });

  it('answers 500 when a batch item makes the engine throw', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.post('/v1/recipients:check').send({ addresses: ['alice@example.com', 'boom@example.com'] }));
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.text, /exploded|secret/);
  });

  it('sends X-Content-Type-Options nosniff and no X-Powered-By', async () => {
    const { agent, checked } = setup();
    const res = await checked(agent.get('/healthz'));
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-powered-by'], undefined);
  });
});

// Runs last (node:test keeps file order): every response the spec documents was produced above.
describe('openapi coverage', () => {
  it('produced every response openapi.yaml documents', () => {
    assert.deepEqual(spec.unseen(), []);
  });
});
