/**
 * Requests the HTTP API refuses must say what is wrong with them (README "HTTP API": a 400 that
 * names the fault). Two kinds got only "The request could not be understood.":
 *  - an address whose percent-encoding is not UTF-8 (a script encoding jörg in Latin-1 as
 *    j%F6rg, a stray "%"), which the router cannot decode; the raw UTF-8 path as curl sends it
 *    already got a hint to percent-encode as UTF-8, this one now gets the same;
 *  - a batch body that is not what its Content-Encoding says (gzip, deflate or br that does not
 *    decompress).
 * An unsupported Content-Encoding was told to send the body "without content encoding", while
 * gzip, deflate and br are accepted. A batch address holding half a surrogate pair was judged
 * unknown instead of invalid. Real listener and engine (the bundled example directory).
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

interface Problem {
  type: string;
  status: number;
  detail: string;
}

describe('HTTP requests refused with a reason (real listener)', () => {
  let app: App;
  let base: string;

  before(async () => {
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, log: { level: 'warn' } });
    base = `http://127.0.0.1:${app.addresses.http!.port}`;
  });
  after(async () => {
    await app?.close();
  });

  async function problem(res: Response): Promise<Problem> {
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    return (await res.json()) as Problem;
  }

  test('an address that is not percent-encoded UTF-8 gets a 400 saying how to encode it', async () => {
    for (const path of ['j%F6rg@example.com', '%@example.com', 'alice@example.com%2', '%C3@example.com']) {
      const res = await fetch(`${base}/v1/recipients/${path}`);
      assert.equal(res.status, 400, path);
      const body = await problem(res);
      assert.equal(body.type, 'https://rcptgate.dev/problems/invalid-request', path);
      assert.match(body.detail, /percent-encod/i, `${path}: ${body.detail}`);
      assert.match(body.detail, /j%C3%B6rg@example\.com/, `${path}: the hint shows the UTF-8 encoding`);
    }
    const ok = await fetch(`${base}/v1/recipients/alice%40example.com`);
    assert.equal(ok.status, 200, 'the next request is answered');
  });

  test('a batch body that does not decompress as its Content-Encoding says gets a 400 naming it', async () => {
    const json = '{"addresses":["alice@example.com"]}';
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const res = await fetch(`${base}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': encoding }, body: json });
      assert.equal(res.status, 400, encoding);
      const body = await problem(res);
      assert.equal(body.type, 'https://rcptgate.dev/problems/invalid-request', encoding);
      assert.match(body.detail, /Content-Encoding/, `${encoding}: ${body.detail}`);
      assert.match(body.detail, /decompress/i, `${encoding}: ${body.detail}`);
    }
    const gz = await fetch(`${base}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(json) });
    assert.equal(gz.status, 200, 'a real gzip body is read');
  });

  test('an unsupported Content-Encoding gets a 415 naming the encodings that are accepted', async () => {
    const res = await fetch(`${base}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'compress' }, body: '{"addresses":[]}' });
    assert.equal(res.status, 415);
    const body = await problem(res);
    assert.equal(body.type, 'https://rcptgate.dev/problems/unsupported-media-type');
    assert.match(body.detail, /gzip, deflate or br/, body.detail);
  });

  test('a batch address with a lone surrogate (JSON "\\ud800") is invalid, not unknown', async () => {
    // JSON can carry half a surrogate pair; no UTF-8 form exists for it, so no mailbox has it.
    const body = '{"addresses":["\\ud800@example.com","al\\udc00ice@example.com","alice@example.com"]}';
    const res = await fetch(`${base}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200);
    const { results } = (await res.json()) as { results: Array<{ verdict: string }> };
    assert.deepEqual(results.map((r) => r.verdict), ['invalid', 'invalid', 'valid']);
  });
});
