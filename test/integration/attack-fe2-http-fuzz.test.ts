/**
 * Property-based fuzzing of the HTTP listener on a real socket: requests built from odd methods,
 * paths (percent-encoding good and bad, UTF-8, dot segments, empty and long segments), headers
 * (Content-Length and Transfer-Encoding in every combination, Expect, Connection, odd media
 * types) and bodies (JSON of the wrong shape, deep nesting, truncated). Invariants: every
 * response is well-formed HTTP with a status below 500 or the 503 of a lookup (a 500 is a bug),
 * every whole request gets an answer (Node dropped a CONNECT without one), every error body is
 * problem+json, and an honest lookup is answered correctly after every case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { rawExchange } from '../helpers/raw-http.js';

const RUNS = 150;

async function raw(port: number, request: Buffer): Promise<{ out: string; closed: boolean }> {
  const { out, closed } = await rawExchange(port, request, { timeoutMs: 8_000, halfClose: true });
  return { out: out.toString('latin1'), closed };
}

/** Status codes and bodies of the responses in `out` (Content-Length framed, as this server sends). */
function responses(out: string): Array<{ status: number; head: string; body: string }> {
  const list: Array<{ status: number; head: string; body: string }> = [];
  let rest = out;
  while (rest.length > 0) {
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/.exec(rest);
    assert.ok(m, `not a status line: ${JSON.stringify(rest.slice(0, 80))}`);
    const end = rest.indexOf('\r\n\r\n');
    assert.ok(end > 0, 'headers end');
    const head = rest.slice(0, end);
    const length = /\r\ncontent-length: (\d+)/i.exec(head);
    const bodyLength = length ? Number(length[1]) : 0;
    list.push({ status: Number(m[1]), head, body: rest.slice(end + 4, end + 4 + bodyLength) });
    rest = rest.slice(end + 4 + bodyLength);
  }
  return list;
}

describe('HTTP listener under fuzzed requests (real socket, real engine)', () => {
  let app: App;

  before(async () => {
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, log: { level: 'warn' } });
  });
  after(async () => {
    await app?.close();
  });

  test('any request gets well-formed answers below 500 (or a lookup 503) or a close, and the next client is served', async () => {
    const segment = fc.oneof(
      fc.constantFrom('alice@example.com', 'nobody@example.com', 'j%C3%B6rg@example.com', '%E0%A4%A@x', '%00@example.com', '..', '.', '', 'a%2Fb@example.com', '%', '%zz', 'ü@example.com', '@', 'a@b@c', '"a b"@example.com', ':check', 'recipients:check', '*'),
      fc.string({ maxLength: 20 }).map(encodeURIComponent),
      fc.integer({ min: 0, max: 9000 }).map((n) => 'x'.repeat(n)),
    );
    const path = fc.oneof(
      fc.array(segment, { maxLength: 3 }).map((s) => `/v1/recipients/${s.join('/')}`),
      fc.constantFrom('/v1/recipients:check', '/v1/recipients%3Acheck', '/v1/cache', '/v1/cache/alice@example.com', '/healthz', '/readyz', '/metrics', '/openapi.yaml', '/', '*', '//v1/recipients/a@b', '/v1/recipients/alice@example.com?explain=1', '/v1/recipients/alice@example.com?explain=%ZZ', 'http://x/healthz'),
    );
    // Weighted toward requests the parser takes, so most cases reach the app.
    const method = fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'get', 'BREW');
    const body = fc.oneof(
      fc.constant(''),
      fc.constantFrom('{"addresses":["alice@example.com","nobody@example.com"]}', '{"addresses":[]}', '{"addresses":"a"}', '[]', 'null', '{"addresses":[1,{},null]}', '{"addresses":["a@b"],"addresses":["c@d"]}', '{"__proto__":{"x":1}}', '{', '{"addresses":["\\ud800@example.com"]}'),
      fc.integer({ min: 1, max: 20_000 }).map((n) => `{"addresses":${'['.repeat(n)}${']'.repeat(n)}}`),
      fc.json({ maxDepth: 4 }),
    );
    const headers = fc.record({
      type: fc.constantFrom(null, 'application/json', 'application/problem+json', 'text/plain', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'multipart/form-data'),
      framing: fc.constantFrom('cl', 'cl', 'cl', 'none', 'none', 'te', 'te', 'cl+te', 'cl-twice', 'cl-wrong', 'te-identity'),
      extra: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.subarray(['Expect: 100-continue', 'Connection: keep-alive', 'Content-Encoding: gzip', 'Authorization: Bearer x', 'Transfer-Encoding: gzip', 'Host: b']) }),
    });
    await fc.assert(
      fc.asyncProperty(method, path, headers, body, async (m, p, h, b) => {
        const bytes = Buffer.from(b, 'utf8');
        const lines = [`${m} ${p} HTTP/1.1`, 'Host: rcptgate', 'Connection: close', ...h.extra];
        if (h.type) lines.push(`Content-Type: ${h.type}`);
        let payload: Buffer = bytes;
        if (h.framing === 'cl' || h.framing === 'cl+te' || h.framing === 'cl-twice') lines.push(`Content-Length: ${bytes.length}`);
        if (h.framing === 'cl-twice') lines.push(`Content-Length: ${bytes.length + 1}`);
        if (h.framing === 'cl-wrong') lines.push(`Content-Length: ${bytes.length + 5}`);
        if (h.framing === 'te' || h.framing === 'cl+te') {
          lines.push('Transfer-Encoding: chunked');
          payload = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n0\r\n\r\n')]);
        }
        if (h.framing === 'te-identity') lines.push('Transfer-Encoding: identity');
        const { out } = await raw(app.addresses.http!.port, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), payload]));
        const answers = responses(out);
        // A request whose body never came whole (the client's FIN cut it) may go unanswered; so may
        // one with a large body the route does not read: closing with it unread sends a reset,
        // which makes the client's kernel drop the answer it had received.
        if (h.framing !== 'cl-wrong' && payload.length < 1_000) assert.ok(answers.some((r) => r.status >= 200), `no answer to ${m} ${p}`);
        for (const r of answers) {
          assert.ok(r.status < 500 || r.status === 503, `status ${r.status} for ${m} ${p}: ${r.body.slice(0, 300)}`);
          if (r.status >= 400 && r.body !== '') assert.match(r.head, /\r\ncontent-type: application\/problem\+json/i, `${r.status} body is problem+json`);
        }
        const honest = await raw(app.addresses.http!.port, Buffer.from('GET /v1/recipients/alice@example.com HTTP/1.1\r\nHost: rcptgate\r\nConnection: close\r\n\r\n'));
        assert.match(honest.out, /^HTTP\/1\.1 200 [\s\S]*"verdict":"valid"/);
      }),
      { numRuns: RUNS },
    );
  });
});
