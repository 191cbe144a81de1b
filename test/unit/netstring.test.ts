import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_NETSTRING_PAYLOAD, NetstringDecoder, netstringText } from '../../src/socketmap/netstring.js';
import { framesOf, netstring } from '../helpers/netstring.js';
import { ProtocolError } from '../../src/errors.js';

const texts = (frames: Buffer[]) => frames.map((f) => f.toString('utf8'));

/** Splits `bytes` at the given cut points (sorted, deduplicated). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const sorted = [...new Set(points)].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of sorted) {
    parts.push(bytes.subarray(prev, p));
    prev = p;
  }
  parts.push(bytes.subarray(prev));
  return parts;
}

function decodeAll(parts: Buffer[], decoder = new NetstringDecoder()): string[] {
  const out: string[] = [];
  for (const p of parts) out.push(...texts(framesOf(decoder, p)));
  return out;
}

function assertProtocolError(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('netstringText (replies)', () => {
  it('frames text as LEN:DATA, counting bytes, not characters', () => {
    assert.equal(netstringText('OK alice@example.com'), '20:OK alice@example.com,');
    assert.equal(netstringText('NOTFOUND '), '9:NOTFOUND ,');
    assert.equal(netstringText(''), '0:,');
    assert.equal(netstringText('é'), '2:é,');
  });
});

describe('NetstringDecoder', () => {
  const wire = Buffer.from('22:recipients a@b.example,0:,7:domains,');
  const expected = ['recipients a@b.example', '', 'domains'];

  it('decodes several frames in one chunk', () => {
    assert.deepEqual(decodeAll([wire]), expected);
  });

  it('decodes the same stream split at every byte boundary', () => {
    for (let i = 0; i <= wire.length; i++) {
      assert.deepEqual(decodeAll(cut(wire, [i])), expected, `split at ${i}`);
    }
  });

  it('decodes the same stream split at every pair of byte boundaries', () => {
    for (let i = 0; i <= wire.length; i++) {
      for (let j = i; j <= wire.length; j++) {
        assert.deepEqual(decodeAll(cut(wire, [i, j])), expected, `split at ${i},${j}`);
      }
    }
  });

  it('decodes the stream fed one byte at a time, reporting partial state', () => {
    const d = new NetstringDecoder();
    const out: string[] = [];
    for (let i = 0; i < wire.length; i++) {
      out.push(...texts(framesOf(d, wire.subarray(i, i + 1))));
      if (i < wire.length - 1) assert.ok(d.buffered <= 22);
    }
    assert.deepEqual(out, expected);
    assert.equal(d.atBoundary, true);
    assert.equal(d.buffered, 0);
  });

  it('keeps a partial frame until its comma arrives', () => {
    const d = new NetstringDecoder();
    assert.deepEqual(framesOf(d, '5:hel'), []);
    assert.equal(d.atBoundary, false);
    assert.equal(d.buffered, 3);
    assert.deepEqual(framesOf(d, 'lo'), []);
    assert.deepEqual(texts(framesOf(d, ',')), ['hello']);
    assert.equal(d.atBoundary, true);
  });

  it('accepts a payload of exactly the cap', () => {
    const payload = 'x'.repeat(MAX_NETSTRING_PAYLOAD);
    assert.deepEqual(decodeAll([netstring(payload)]), [payload]);
  });

  it('payloads may contain colons, commas and NUL bytes', () => {
    const payload = Buffer.from('a:b,c\0d');
    const frames = framesOf(new NetstringDecoder(), netstring(payload));
    assert.deepEqual(frames, [payload]);
  });

  describe('refuses', () => {
    it('a length over the cap as soon as its digits show it, before any payload', () => {
      const d = new NetstringDecoder();
      assertProtocolError(() => framesOf(d, '10001'), 'RCPTGATE_FRAME_TOO_LARGE', /longer than 10000/);
      assert.equal(d.buffered, 0);
    });

    it('a length with more digits than the cap allows, even when zero-padded', () => {
      assertProtocolError(() => framesOf(new NetstringDecoder(), '99999999999999999999'), 'RCPTGATE_FRAME_TOO_LARGE');
      assertProtocolError(() => framesOf(new NetstringDecoder(100), '0001:'), 'RCPTGATE_PROTOCOL', /leading zero/);
    });

    it('a length with a leading zero', () => {
      assertProtocolError(() => framesOf(new NetstringDecoder(), '05:hello,'), 'RCPTGATE_PROTOCOL', /leading zero/);
      assertProtocolError(() => framesOf(new NetstringDecoder(), '00:,'), 'RCPTGATE_PROTOCOL', /leading zero/);
    });

    it('an empty length', () => {
      assertProtocolError(() => framesOf(new NetstringDecoder(), ':hello,'), 'RCPTGATE_PROTOCOL', /empty/);
    });

    it('non-digits in the length', () => {
      for (const bad of ['5x:hello,', '-5:hello,', ' 5:hello,', '+5:hello,', 'recipients a@b', '\r\n']) {
        assertProtocolError(() => framesOf(new NetstringDecoder(), bad), 'RCPTGATE_PROTOCOL', /length contains/);
      }
    });

    it('a frame not terminated by a comma', () => {
      assertProtocolError(() => framesOf(new NetstringDecoder(), '5:hello;'), 'RCPTGATE_PROTOCOL', /terminated/);
      assertProtocolError(() => framesOf(new NetstringDecoder(), '5:helloo,'), 'RCPTGATE_PROTOCOL', /terminated/);
      assertProtocolError(() => framesOf(new NetstringDecoder(), '0:x'), 'RCPTGATE_PROTOCOL', /terminated/);
    });

    it('further input after a failure', () => {
      const d = new NetstringDecoder();
      assert.throws(() => framesOf(d, 'x'), ProtocolError);
      assertProtocolError(() => framesOf(d, '5:hello,'), 'RCPTGATE_PROTOCOL', /already failed/);
    });

    it('an oversize frame that arrives one digit at a time', () => {
      const d = new NetstringDecoder();
      for (const digit of '1000') framesOf(d, digit);
      framesOf(d, '0'); // 10000 is still allowed
      assertProtocolError(() => framesOf(d, '1'), 'RCPTGATE_FRAME_TOO_LARGE');
    });
  });

  it('feed() hands over the frames before a malformed byte, then throws', () => {
    const d = new NetstringDecoder();
    const got: string[] = [];
    assert.throws(() => d.feed('1:a,1:b,x', (f) => got.push(f.toString())), ProtocolError);
    assert.deepEqual(got, ['a', 'b']);
  });

  it('honours a smaller cap', () => {
    const d = new NetstringDecoder(5);
    assert.deepEqual(texts(framesOf(d, '5:hello,')), ['hello']);
    assertProtocolError(() => framesOf(d, '6'), 'RCPTGATE_FRAME_TOO_LARGE');
  });
});
