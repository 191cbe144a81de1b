/**
 * Requests Node's HTTP parser refuses, on the real listeners: Node answered them with a bare
 * "400 Bad Request" and no body, so a person who typed `curl http://…/v1/recipients/jörg@…`
 * (curl sends the UTF-8 bytes raw) learned nothing. They now get problem+json naming the fault;
 * smuggling attempts (Content-Length with Transfer-Encoding, two Content-Lengths) are still
 * refused and the connection closed, and a request after them on the same connection is not
 * served; a good request before a malformed one is still answered. Oversized headers keep 431.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { rawExchange } from '../helpers/raw-http.js';

/** Sends `request` raw; resolves with everything received until the server closes. */
async function raw(port: number, request: string | Buffer): Promise<string> {
  const { out, closed } = await rawExchange(port, request, { timeoutMs: 5_000, halfClose: false });
  if (!closed) throw new Error(`not closed; got ${out.toString()}`);
  return out.toString('utf8');
}

function problem(response: string): { status: number; type: string; detail: string } {
  const [head, body] = response.split('\r\n\r\n', 2) as [string, string];
  assert.match(head, /^HTTP\/1\.1 400 /);
  assert.match(head, /\r\nContent-Type: application\/problem\+json\r\n/i);
  return JSON.parse(body) as { status: number; type: string; detail: string };
}

describe('HTTP requests the parser refuses (real listeners)', () => {
  let app: App;

  before(async () => {
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: '127.0.0.1:0' }, log: { level: 'warn' } });
  });
  after(async () => {
    await app?.close();
  });

  test('a raw UTF-8 address in the path gets 400 problem+json saying to percent-encode it; encoded, it is looked up', async () => {
    const port = app.addresses.http!.port;
    const p = problem(await raw(port, Buffer.from('GET /v1/recipients/jörg@example.com HTTP/1.1\r\nHost: rcptgate\r\n\r\n', 'utf8')));
    assert.equal(p.type, 'https://rcptgate.dev/problems/invalid-request');
    assert.equal(p.status, 400);
    assert.match(p.detail, /Invalid char in url path.*Percent-encode .* j%C3%B6rg@example\.com/);
    const encoded = await raw(port, 'GET /v1/recipients/j%C3%B6rg@example.com HTTP/1.1\r\nHost: rcptgate\r\nConnection: close\r\n\r\n');
    assert.match(encoded, /^HTTP\/1\.1 200 /);
    assert.match(encoded, /"address":"jörg@example\.com","verdict":"unknown"/);
  });

  test('smuggling attempts are refused with a reason and the request behind them is not served', async () => {
    for (const port of [app.addresses.http!.port, app.addresses.metrics!.port]) {
      const smuggled = 'GET /healthz HTTP/1.1\r\nHost: rcptgate\r\n\r\n';
      const clTe = await raw(port, `POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`);
      assert.match(problem(clTe).detail, /not valid HTTP\/1\.1: Transfer-Encoding can't be present with Content-Length/);
      assert.doesNotMatch(clTe, /HTTP\/1\.1 200/, 'the smuggled request is not answered');
      const twoLengths = await raw(port, `POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}${smuggled}`);
      assert.match(problem(twoLengths).detail, /not valid HTTP\/1\.1: Duplicate Content-Length/);
      assert.doesNotMatch(twoLengths, /HTTP\/1\.1 200/);
      assert.match(problem(await raw(port, 'BREW / HTTP/1.1\r\n\r\n')).detail, /not valid HTTP\/1\.1: Invalid method/);
      // Content-Length after Transfer-Encoding is the same attempt, reported from the other side.
      assert.match(problem(await raw(port, `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`)).detail, /Content-Length can't be present with Transfer-Encoding/);
    }
  });

  test('a good request before a malformed one on the same connection is answered first, then the 400', async () => {
    const response = await raw(app.addresses.http!.port, 'GET /v1/recipients/alice@example.com HTTP/1.1\r\nHost: rcptgate\r\n\r\nGARBAGE\r\n\r\n');
    const statuses = [...response.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '400']);
    assert.match(response, /"verdict":"valid"[\s\S]*Invalid method/);
  });

  test('CONNECT gets 405 problem+json instead of a silent close', async () => {
    const response = await raw(app.addresses.http!.port, 'CONNECT mail.example:25 HTTP/1.1\r\nHost: mail.example:25\r\n\r\n');
    const [head, body] = response.split('\r\n\r\n', 2) as [string, string];
    assert.match(head, /^HTTP\/1\.1 405 /);
    assert.equal((JSON.parse(body) as { type: string }).type, 'https://rcptgate.dev/problems/method-not-allowed');
  });

  test('a request whose Transfer-Encoding does not end in chunked gets 400 problem+json at once', async () => {
    const body = '{"addresses":["alice@example.com"]}';
    const response = await raw(app.addresses.http!.port, `POST /v1/recipients:check HTTP/1.1\r\nHost: rcptgate\r\nContent-Type: application/json\r\nTransfer-Encoding: identity\r\n\r\n${body}`);
    assert.match(response, /^HTTP\/1\.1 400 [\s\S]*content-type: application\/problem\+json[\s\S]*problems\/invalid-request[\s\S]*Transfer-Encoding must end with chunked/i);
  });

  test('oversized headers keep 431', async () => {
    const response = await raw(app.addresses.http!.port, `GET /healthz HTTP/1.1\r\nHost: rcptgate\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(response, /^HTTP\/1\.1 431 /);
  });
});
