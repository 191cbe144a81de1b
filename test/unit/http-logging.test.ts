import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import request from 'supertest';
import { createHttpApp } from '../../src/http/app.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { validateConfig } from '../../src/config/load.js';
import { createDirectory } from '../../src/directory/index.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { FakeValidator, healthReport } from '../helpers/http-fakes.js';

const TOKEN = 'tok-5f2a9c7e-never-in-logs';

/** An app whose pino output is captured line by line. */
function setup(level: string, engine: 'fake' | 'real' = 'fake') {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger(level, sink);
  const metrics = new Metrics({ defaultMetrics: false });
  // The real engine over the bundled example directory: it writes the per-lookup lines.
  const config = validateConfig({});
  const validator =
    engine === 'real'
      ? new RecipientValidatorImpl({ config, directory: createDirectory(config, { logger, metrics }), metrics, logger })
      : new FakeValidator({ 'boom@example.com': 'throw' });
  const app = createHttpApp({
    validator,
    metrics,
    logger,
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
    const { agent, records } = setup('debug', 'real');
    await agent.get('/v1/recipients/alice@example.com').expect(200);
    await agent.post('/v1/recipients:check').send({ addresses: ['a@example.com', 'b@example.com', 'c@example.com'] }).expect(200);
    const lookups = records().filter((r) => r['msg'] === 'lookup');
    assert.equal(lookups.length, 4);
    assert.ok(lookups.every((r) => r['level'] === 20 && r['frontend'] === 'http'));
    assert.deepEqual(
      lookups.map((r) => [r['address'], r['verdict']]),
      [['alice@example.com', 'valid'], ['a@example.com', 'unknown'], ['b@example.com', 'unknown'], ['c@example.com', 'unknown']],
    );
  });

  it('writes nothing per lookup at info level', async () => {
    const { agent, lines } = setup('info', 'real');
    await agent.get('/v1/recipients/alice@example.com').expect(200);
    await agent.post('/v1/recipients:check').send({ addresses: ['a@example.com', 'b@example.com'] }).expect(200);
    await agent.get('/healthz').expect(200);
    // The engine says once that the directory answers; nothing per lookup.
    assert.deepEqual(lines.map((l) => JSON.parse(l).msg), ['directory is answering']);
  });
});
