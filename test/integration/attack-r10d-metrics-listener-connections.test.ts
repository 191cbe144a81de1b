/**
 * Who `rcptgate_connections` and `rcptgate_connections_rejected_total` count, on the real
 * listeners. The probe listener (`listen.metrics`) counted its connections as frontend="http":
 * every scrape read one open HTTP API connection (the scrape itself), kubelet probes looked like
 * API clients, and a flood of the probe port showed as refusals of the lookup API. They are now
 * counted as frontend="metrics".
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { sleep } from '../helpers/frontend-clients.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('connections of the probe listener in the metrics (real listeners)', () => {
  let app: App;
  before(async () => {
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: '127.0.0.1:0' }, log: { level: 'warn' } });
  });
  after(async () => {
    await app?.close();
  });

  test('a scrape counts as a metrics connection, not an HTTP API one; refusals too', async () => {
    const port = app.addresses.metrics!.port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.equal(sample(text, 'rcptgate_connections{frontend="metrics"}'), 1, 'the scrape itself is one metrics connection');
    assert.ok((sample(text, 'rcptgate_connections{frontend="http"}') ?? 0) === 0, 'no HTTP API connection is open');
    // 32 connections per client address on the probe listener; the 33rd is refused.
    const held: net.Socket[] = [];
    for (let i = 0; i < 33; i++) {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.7' });
      s.on('error', () => undefined);
      held.push(s);
    }
    await sleep(300);
    const after = await app.metrics.registry.metrics();
    for (const s of held) s.destroy();
    assert.equal(sample(after, 'rcptgate_connections_rejected_total{frontend="metrics"}'), 1, 'the refusal is counted for the probe listener');
    assert.equal(sample(after, 'rcptgate_connections_rejected_total{frontend="http"}'), undefined, 'not for the HTTP API');
  });
});
