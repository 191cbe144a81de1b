import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.js';
import { PolicyRequestDecoder, encodePolicyReply, DEFAULT_POLICY_LIMITS } from '../../src/policy/codec.js';

const REQUEST =
  'request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.7\n' +
  'sender=a@example.net\nrecipient=alice@example.com\nqueue_id=\n\n';

describe('policy request decoder', () => {
  it('parses one request into its attributes', () => {
    const [req, ...rest] = new PolicyRequestDecoder().push(Buffer.from(REQUEST));
    assert.equal(rest.length, 0);
    assert.equal(req!.get('protocol_state'), 'RCPT');
    assert.equal(req!.get('recipient'), 'alice@example.com');
    assert.equal(req!.get('queue_id'), '');
  });

  it('keeps "=" inside values', () => {
    const [req] = new PolicyRequestDecoder().push(Buffer.from('ccert_subject=CN=a=b\n\n'));
    assert.equal(req!.get('ccert_subject'), 'CN=a=b');
  });

  it('accepts CRLF line ends', () => {
    const [req] = new PolicyRequestDecoder().push(Buffer.from('recipient=x@example.com\r\n\r\n'));
    assert.equal(req!.get('recipient'), 'x@example.com');
  });

  it('returns pipelined requests in order', () => {
    const two = REQUEST + REQUEST.replace('alice', 'bob');
    const reqs = new PolicyRequestDecoder().push(Buffer.from(two));
    assert.deepEqual(reqs.map((r) => r.get('recipient')), ['alice@example.com', 'bob@example.com']);
  });

  it('holds an unfinished request until its empty line arrives', () => {
    const d = new PolicyRequestDecoder();
    assert.deepEqual(d.push(Buffer.from(REQUEST.slice(0, -1))), []);
    assert.equal(d.atBoundary, false);
    assert.equal(d.push(Buffer.from('\n')).length, 1);
    assert.equal(d.atBoundary, true);
  });

  it('rejects a line without "="', () => {
    assert.throws(() => new PolicyRequestDecoder().push(Buffer.from('hello\n')), ProtocolError);
  });

  it('rejects an empty attribute name and an empty request', () => {
    assert.throws(() => new PolicyRequestDecoder().push(Buffer.from('=x\n')), ProtocolError);
    assert.throws(() => new PolicyRequestDecoder().push(Buffer.from('\n')), ProtocolError);
  });

  it('keeps a line longer than the cap as its first and last bytes, holding no more than the cap', () => {
    // smtpd passes a client's EHLO argument on as it came: "helo_name=" + 2,043 bytes is over 2,048.
    const d = new PolicyRequestDecoder({ maxLineBytes: 100 });
    const value = 'h'.repeat(60) + 'x'.repeat(200) + '@example.com';
    for (const c of Buffer.from(`helo_name=${value}\nrecipient=alice@example.com\n`)) {
      assert.deepEqual(d.push(Buffer.from([c])), []);
      assert.ok(d.bufferedBytes <= 100, `holds ${d.bufferedBytes} bytes`);
    }
    const [request] = d.push(Buffer.from('\n'));
    assert.equal(request!.get('recipient'), 'alice@example.com');
    const kept = `helo_name=${value}`;
    assert.equal(request!.get('helo_name'), `${kept.slice(0, 50)}${kept.slice(-50)}`.slice('helo_name='.length));
    assert.equal(d.atBoundary, true);
  });

  it('refuses an over-long line whose name does not end among its first bytes', () => {
    const d = new PolicyRequestDecoder({ maxLineBytes: 100 });
    assert.throws(() => d.push(Buffer.from(`${'n'.repeat(80)}=${'v'.repeat(80)}\n`)), ProtocolError);
  });

  it('refuses a line that outgrows the request cap before it ends', () => {
    const d = new PolicyRequestDecoder({ maxLineBytes: 100, maxRequestBytes: 1000 });
    d.push(Buffer.from('recipient=' + 'a'.repeat(900)));
    assert.throws(() => d.push(Buffer.from('a'.repeat(100))), (e: unknown) => e instanceof ProtocolError && e.code === 'RCPTGATE_FRAME_TOO_LARGE');
  });

  it('refuses a request larger than the cap', () => {
    const d = new PolicyRequestDecoder({ maxRequestBytes: 200 });
    assert.throws(() => d.push(Buffer.from('a=b\n'.repeat(60))), (e: unknown) => e instanceof ProtocolError && e.code === 'RCPTGATE_FRAME_TOO_LARGE');
  });

  it('keeps failing after a protocol error', () => {
    const d = new PolicyRequestDecoder();
    assert.throws(() => d.push(Buffer.from('nonsense\n')), ProtocolError);
    assert.throws(() => d.push(Buffer.from(REQUEST)), ProtocolError);
  });

  it('round-trips arbitrary attribute maps', () => {
    const name = fc.stringMatching(/^[a-z_]{1,20}$/);
    const value = fc.string({ maxLength: 200 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(name, value), { minLength: 1, maxLength: 20, selector: ([n]) => n }), (pairs) => {
        const text = pairs.map(([n, v]) => `${n}=${v}\n`).join('') + '\n';
        const [req] = new PolicyRequestDecoder().push(Buffer.from(text));
        assert.deepEqual([...req!], pairs);
      }),
    );
  });

});

describe('policy reply encoder', () => {
  it('ends the action with an empty line', () => {
    assert.equal(encodePolicyReply('DUNNO'), 'action=DUNNO\n\n');
  });
  it('refuses a multi-line action', () => {
    assert.throws(() => encodePolicyReply('DUNNO\nx'), TypeError);
  });
});
