import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import request from 'supertest';
import { createHttpApp } from '../../src/http/app.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { FakeValidator, healthReport } from '../helpers/http-fakes.js';

const TOKEN = 'tok-5f2a9c7e-never-in-logs';

/** An app whose pino output is captured line by line. */
function setup(level: string) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const app = createHttpApp({
    validator: new FakeValidator({ 'boom@example.com': 'throw' }),
    metrics: new Metrics({ defaultMetrics: false }),
    logger: createLogger(level, sink),
    health: () => healthReport(),
    adminToken: TOKEN,
    version: 'test',
    statusPage: true,
  });
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { agent: request(app), lines, records };
}

describe('HTTP logging', () => {
  it('never logs the Authorization header or the admin token, at any level', async () => {
    const { agent, lines, records } = setup('trace');
    await agent.delete('/v1/cache').set('Authorization', `Bearer ${TOKEN}`).expect(204);
    await agent.delete('/v1/cache/alice@example.com').set('Authorization', `Bearer ${TOKEN}`).expect(204);
    await agent.delete('/v1/cache').set('Authorization', `Bearer ${TOKEN}-wrong`).expect(403);
    await agent.delete('/v1/cache').set('Authorization', `Basic ${TOKEN}`).expect(401);
    await agent.get('/v1/recipients/boom@example.com').set('Authorization', `Bearer ${TOKEN}`).expect(500);
    await agent.get('/v1/recipients/alice@example.com').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    const all = lines.join('\n');
    assert.ok(lines.length >= 4, 'the requests above were logged');
    assert.ok(!all.includes(TOKEN), 'the token appears in the log');
    assert.ok(!/authorization|bearer/i.test(all), 'the Authorization header appears in the log');
    const msgs = records().map((r) => r['msg']);
    assert.ok(msgs.includes('cache flushed'));
    assert.ok(msgs.includes('admin request with a wrong token'));
    assert.ok(msgs.includes('HTTP request failed'));
  });

  it('logs the error of a failed request with its stack on the server side', async () => {
    const { agent, records } = setup('info');
    await agent.get('/v1/recipients/boom@example.com').expect(500);
    const failed = records().find((r) => r['msg'] === 'HTTP request failed');
    assert.ok(failed, 'an error line was logged');
    assert.equal(failed['level'], 50);
    assert.match(JSON.stringify(failed['err']), /fake validator exploded/);
  });

  it('writes one debug line per lookup, single or batch', async () => {
    const { agent, records } = setup('debug');
    await agent.get('/v1/recipients/alice@example.com').expect(200);
    await agent.post('/v1/recipients:check').send({ addresses: ['a@example.com', 'b@example.com', 'c@example.com'] }).expect(200);
    const lookups = records().filter((r) => r['msg'] === 'lookup');
    assert.equal(lookups.length, 4);
    assert.ok(lookups.every((r) => r['level'] === 20 && r['frontend'] === 'http' && r['verdict'] === 'unknown'));
    assert.deepEqual(
      lookups.map((r) => r['address']),
      ['alice@example.com', 'a@example.com', 'b@example.com', 'c@example.com'],
    );
  });

  it('writes nothing per lookup at info level', async () => {
    const { agent, lines } = setup('info');
    await agent.get('/v1/recipients/alice@example.com').expect(200);
    await agent.post('/v1/recipients:check').send({ addresses: ['a@example.com', 'b@example.com'] }).expect(200);
    await agent.get('/healthz').expect(200);
    assert.deepEqual(lines, []);
  });
});
