import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MessageParser, SearchEntry, SearchResponse, type Entry } from 'ldapts';
import { LdapMessageStream, type LookupSink } from '../../src/directory/lookup-reader.js';

// BER as a directory writes it (definite lengths, short or long form).
const length = (n: number): number[] => (n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag, ...length(body.length)]), body]);
};
const octets = (v: string | Buffer): Buffer => tlv(0x04, Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'));
const integer = (n: number): Buffer => {
  const bytes = [n & 0xff];
  for (let v = n >>> 8; v > 0 || bytes[0]! & 0x80; v >>>= 8) bytes.unshift(v & 0xff);
  return tlv(0x02, Buffer.from(bytes));
};
const message = (id: number, op: Buffer): Buffer => tlv(0x30, integer(id), op);
const entryMessage = (id: number, dn: string, attrs: [string, (string | Buffer)[]][]): Buffer =>
  message(id, tlv(0x64, octets(dn), tlv(0x30, ...attrs.map(([type, values]) => tlv(0x30, octets(type), tlv(0x31, ...values.map(octets)))))));
const doneMessage = (id: number, status: number, diagnostic: string): Buffer => message(id, tlv(0x65, Buffer.from([0x0a, 1, status]), octets(''), octets(diagnostic)));

/** What ldapts' own parser makes of the same bytes: entries via toObject, and the result. */
function ldaptsReads(bytes: Buffer, attributes: string[]): { entries: Entry[]; status: number; errorMessage: string } {
  const parser = new MessageParser();
  const entries: Entry[] = [];
  let done: SearchResponse | undefined;
  parser.on('message', (m: unknown) => {
    if (m instanceof SearchEntry) entries.push(m.toObject(attributes, []));
    else if (m instanceof SearchResponse) done = m;
  });
  parser.read(bytes, new Map());
  assert.ok(done, 'ldapts read no result');
  return { entries, status: done.status, errorMessage: done.errorMessage };
}

interface Seen {
  entries: Entry[];
  finished: { status: number; errorMessage: string }[];
  other: Buffer[];
  heard: number[];
  broken: string[];
}

function reader(ids: number[], attributes: string[]): { stream: LdapMessageStream; seen: Seen } {
  const seen: Seen = { entries: [], finished: [], other: [], heard: [], broken: [] };
  const sink: LookupSink = { attributes, entries: seen.entries, maxEntries: 4, bytes: 0, finish: (status, errorMessage) => seen.finished.push({ status, errorMessage }) };
  const stream = new LdapMessageStream({
    lookup: (id) => (ids.includes(id) ? sink : undefined),
    other: (m) => seen.other.push(Buffer.from(m)),
    heard: (id) => seen.heard.push(id),
    broken: (reason) => seen.broken.push(reason),
  });
  return { stream, seen };
}

/** `bytes` in chunks cut at `cuts` (fractions of its length). */
function feed(stream: LdapMessageStream, bytes: Buffer, cuts: number[]): void {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  let at = 0;
  for (const p of [...points, bytes.length]) {
    if (p > at) stream.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
}

const TYPES = ['mail', 'MAIL', 'mailAlternateAddress', 'cn', 'userCertificate;binary', 'description'];
const value = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.constantFrom('bob@example.com', '\ufeffbom@example.com', 'ålice@bücher.example', ''),
  fc.uint8Array({ maxLength: 5 }).map((b) => Buffer.from(b)),
  fc.constant(Buffer.from([0xc3, 0x28])), // not UTF-8
);
const attrs = fc.array(fc.tuple(fc.constantFrom(...TYPES), fc.array(value, { maxLength: 3 })), { maxLength: 4 });
const answer = fc.record({
  id: fc.integer({ min: 1, max: 0x7fffffff }),
  entries: fc.array(fc.tuple(fc.string({ maxLength: 20 }), attrs), { maxLength: 4 }),
  status: fc.constantFrom(0, 4, 32, 51, 52),
  diagnostic: fc.string({ maxLength: 300 }),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
  wanted: fc.subarray(['mail', 'mailAlternateAddress', 'Mail', 'uid']),
});

describe('LdapMessageStream', () => {
  test("reads a lookup's entries and result as ldapts' parser and toObject do, however the bytes are cut", () => {
    fc.assert(
      fc.property(answer, ({ id, entries, status, diagnostic, cuts, wanted }) => {
        const bytes = Buffer.concat([...entries.map(([dn, a]) => entryMessage(id, dn, a)), doneMessage(id, status, diagnostic)]);
        const { stream, seen } = reader([id], wanted);
        feed(stream, bytes, cuts);
        const expected = ldaptsReads(bytes, wanted);
        assert.deepEqual(seen.broken, []);
        assert.deepEqual(seen.other, []);
        assert.deepEqual(seen.entries, expected.entries);
        assert.deepEqual(seen.finished, [{ status: expected.status, errorMessage: expected.errorMessage }]);
        assert.equal(seen.heard.length, entries.length + 1);
      }),
      { numRuns: 1_000 },
    );
  });

  test('hands every other message on whole and in order, and reports each ID it hears', () => {
    const bind = message(1, tlv(0x61, Buffer.from([0x0a, 1, 0]), octets(''), octets('')));
    const listing = entryMessage(7, 'uid=a,dc=x', [['mail', ['a@x']]]);
    const lookup = entryMessage(9, 'uid=b,dc=x', [['mail', ['b@x']]]);
    const notice = message(0, tlv(0x78, Buffer.from([0x0a, 1, 52]), octets(''), octets('going away')));
    const { stream, seen } = reader([9], ['mail']);
    feed(stream, Buffer.concat([bind, listing, lookup, doneMessage(9, 0, ''), notice]), [0.1, 0.33, 0.5, 0.51, 0.9]);
    assert.deepEqual(seen.other, [bind, listing, notice]);
    assert.deepEqual(seen.entries, [{ dn: 'uid=b,dc=x', mail: 'b@x' }]);
    assert.deepEqual(seen.heard, [1, 7, 9, 9, 0]);
    assert.deepEqual(seen.broken, []);
  });

  test('stops at bytes that are not an LDAP message, an indefinite or oversized length, or a malformed lookup answer', () => {
    const cases: [string, Buffer][] = [
      ['not BER', Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')],
      ['indefinite length', Buffer.from([0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00])],
      ['over 32 MB', Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff])],
      ['bad message ID', Buffer.from([0x30, 0x03, 0x04, 0x01, 0x09])],
      ['entry without attributes list', message(9, tlv(0x64, octets('uid=b,dc=x'), octets('not a sequence')))],
      ['more entries than the size limit', Buffer.concat(Array.from({ length: 5 }, (_, i) => entryMessage(9, `uid=${i},dc=x`, [['mail', [`${i}@x`]]])))],
      ['value overrunning its set', Buffer.concat([message(9, Buffer.from([0x64, 0x0c, 0x04, 0x00, 0x30, 0x08, 0x30, 0x06, 0x04, 0x00, 0x31, 0x02, 0x04, 0x09]))])],
    ];
    for (const [name, bytes] of cases) {
      const { stream, seen } = reader([9], ['mail']);
      stream.push(bytes);
      stream.push(doneMessage(9, 0, '')); // nothing more is read
      assert.equal(seen.broken.length, 1, name);
      assert.deepEqual(seen.finished, [], name);
      assert.deepEqual(seen.other, [], name);
    }
  });

  test('a throw from whoever takes the answer does not escape: the stream stops, as for a malformed answer', () => {
    const { stream, seen } = reader([9], ['mail']);
    const throwing = new LdapMessageStream({
      lookup: () => ({ attributes: [], entries: [], maxEntries: 4, bytes: 0, finish: () => { throw new Error('injected'); } }),
      other: () => undefined,
      heard: () => undefined,
      broken: (reason) => seen.broken.push(reason),
    });
    assert.doesNotThrow(() => throwing.push(doneMessage(9, 0, '')));
    assert.equal(seen.broken.length, 1);
    assert.match(seen.broken[0]!, /internal error.*injected/);
    stream.push(doneMessage(9, 0, ''));
    assert.deepEqual(seen.finished, [{ status: 0, errorMessage: '' }]);
  });

  test('a partial message left by a closed socket does not run into the next one', () => {
    const { stream, seen } = reader([9], ['mail']);
    const bytes = entryMessage(9, 'uid=b,dc=x', [['mail', ['b@x']]]);
    stream.push(bytes.subarray(0, 7));
    stream.reset();
    stream.push(doneMessage(9, 0, ''));
    assert.deepEqual(seen.entries, []);
    assert.deepEqual(seen.finished, [{ status: 0, errorMessage: '' }]);
    assert.deepEqual(seen.broken, []);
  });
});
