import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { normalizeDomain, parseAddress, stripSubaddress } from '../../src/recipient/address.js';

const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

describe('parseAddress accepts and normalizes', () => {
  const good: Array<[input: string, expected: string, why: string]> = [
    ['alice@example.com', 'alice@example.com', 'plain'],
    ['Alice@Example.COM', 'alice@example.com', 'case folded in both parts'],
    ['<bob@example.com>', 'bob@example.com', 'angle brackets of an SMTP path dropped'],
    ['user@example.com.', 'user@example.com', 'trailing dot on the domain dropped'],
    ['first.last@example.com', 'first.last@example.com', 'dot-atom local part'],
    ["o'brien+tag@example.com", "o'brien+tag@example.com", 'atext specials'],
    ['"john.doe"@example.com', 'john.doe@example.com', 'quotes dropped when not needed'],
    ['"John Doe"@example.com', '"john doe"@example.com', 'quotes kept when needed'],
    ['"a@b"@example.com', '"a@b"@example.com', '@ inside a quoted local part'],
    ['"\\"q"@example.com', '"\\"q"@example.com', 'escaped quote inside quotes'],
    ['jörg@example.com', 'jörg@example.com', 'UTF-8 local part (SMTPUTF8)'],
    ['ÜBER@example.com', 'über@example.com', 'UTF-8 local part case folded'],
    ['user@bücher.example', 'user@xn--bcher-kva.example', 'IDN to A-label'],
    ['user@BÜCHER.example.', 'user@xn--bcher-kva.example', 'IDN upper case with trailing dot'],
    ['user@xn--bcher-kva.example', 'user@xn--bcher-kva.example', 'A-label kept'],
    ['a@[192.0.2.1]', 'a@[192.0.2.1]', 'address literal'],
    ['x'.repeat(64) + '@example.com', 'x'.repeat(64) + '@example.com', 'local part of exactly 64 octets'],
    ['é'.repeat(32) + '@example.com', 'é'.repeat(32) + '@example.com', '64 octets of UTF-8 local part'],
  ];
  for (const [input, expected, why] of good) {
    it(`${why}: ${JSON.stringify(input)} → ${expected}`, () => {
      const r = parseAddress(input);
      assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
      assert.equal(r.value.address, expected);
      assert.equal(`${r.value.local}@${r.value.domain}`, expected);
    });
  }

  it('accepts an address of exactly 254 octets', () => {
    const domain = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61 - 10)}.com`;
    const local = 'l'.repeat(254 - 1 - domain.length);
    const r = parseAddress(`${local}@${domain}`);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(octets(r.value.address), 254);
  });
});

describe('parseAddress refuses', () => {
  const bad: Array<[input: string, reason: RegExp]> = [
    ['', /empty/],
    ['<>', /empty/],
    ['alice', /@/],
    ['alice@', /empty domain/],
    ['@example.com', /empty local part/],
    ['x'.repeat(65) + '@example.com', /64 octets/],
    ['é'.repeat(33) + '@example.com', /64 octets/],
    ['a..b@example.com', /dots/],
    ['.a@example.com', /dots/],
    ['a.@example.com', /dots/],
    ['a b@example.com', /quoting/],
    ['a@b@example.com', /quoting/],
    ['"unterminated@example.com', /quoted/],
    ['a\u0000b@example.com', /control/],
    ['a@example.com\r\n', /control/],
    ['a\tb@example.com', /control/],
    ['a\u007f@example.com', /control/],
    ['a\u0085@example.com', /control/], // C1 control (NEL)
    ['\ud800@example.com', /surrogate/], // JSON "\ud800": no UTF-8 form
    ['a\udc00b@example.com', /surrogate/],
    ['"\ud83d"@example.com', /surrogate/],
    ['a@-example.com', /domain/],
    ['a@example-.com', /domain/],
    ['a@example..com', /domain/],
    ['a@example.com..', /domain/],
    ['a@exa_mple.com', /domain/],
    ['a@exa mple.com', /domain/],
    ['a@' + 'x'.repeat(64) + '.com', /domain/],
  ];
  for (const [input, reason] of bad) {
    it(`${JSON.stringify(input)} (${reason.source})`, () => {
      const r = parseAddress(input);
      assert.equal(r.ok, false, `expected a refusal, got ${JSON.stringify(r)}`);
      if (!r.ok) assert.match(r.reason, reason);
    });
  }

  it('refuses an address longer than 254 octets', () => {
    const domain = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61 - 10)}.com`;
    const local = 'l'.repeat(255 - 1 - domain.length);
    const r = parseAddress(`${local}@${domain}`);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.reason, /254/);
  });

  it('accepts a surrogate pair (a character outside the BMP) where UTF-8 is allowed', () => {
    assert.equal(parseAddress('"\u{1F600}"@example.com').ok, true);
  });

  it('refuses a non-string without throwing', () => {
    assert.equal(parseAddress(undefined as unknown as string).ok, false);
    assert.equal(parseAddress(42 as unknown as string).ok, false);
  });
});

describe('normalizeDomain', () => {
  it('lowercases, drops the trailing dot and converts IDN', () => {
    assert.equal(normalizeDomain('Example.COM.'), 'example.com');
    assert.equal(normalizeDomain('münchen.de'), 'xn--mnchen-3ya.de');
  });
  it('returns null for what is not a domain', () => {
    for (const d of ['', '.', 'a..b', 'a b', 'a@b', '-a.com', 'a'.repeat(64) + '.com']) {
      assert.equal(normalizeDomain(d), null, d);
    }
  });
});

describe('stripSubaddress', () => {
  const cases: Array<[local: string, delimiters: string, expected: string | null]> = [
    ['alice+tag', '+', 'alice'],
    ['alice+tag+more', '+', 'alice'],
    ['alice', '+', null],
    ['alice+tag', '', null],
    ['+tag', '+', null],
    ['first-last', '-', 'first'],
    ['first-last+tag', '+-', 'first'],
    ['alice+x-y', '+-', 'alice'],
    ['alice-x+y', '+', 'alice-x'],
    ['a.b_c', '_', 'a.b'],
    ['"a+b"', '+', null],
    // Postfix's split_addr: owner-foo and foo-request are not split once "-" is a delimiter, and
    // postmaster, mailer-daemon and double-bounce never are (seen against Postfix 3.7's own tables).
    ['owner-list', '+-', null],
    ['OWNER-list', '-', null],
    ['list-request', '+-', null],
    ['list-request+x', '+-', 'list'],
    ['-request', '-', null],
    ['x-request', '-', null],
    ['owner-list', '+', null],
    ['owner+list', '+', 'owner'],
    ['list-requests', '-', 'list'],
    ['mailer-daemon', '-', null],
    ['double-bounce', '-', null],
  ];
  for (const [local, delimiters, expected] of cases) {
    it(`${local} with ${JSON.stringify(delimiters)} → ${expected}`, () => {
      assert.equal(stripSubaddress(local, delimiters), expected);
    });
  }
});

// Strings biased towards address-like shapes, so properties reach the deep branches.
const addressLike = fc
  .tuple(
    fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 80 }),
      fc.stringMatching(/^[A-Za-z0-9.+\-_"\\ ]{0,70}$/),
      fc.string({ unit: fc.constantFrom('İ', 'é', 'ß', 'A', 'a', '.', '"', '+', 'Σ'), maxLength: 70 }),
    ),
    fc.constantFrom('@', '@', '@', '', '@@'),
    fc.oneof(
      fc.domain(),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.constantFrom('EXAMPLE.com.', 'bücher.example', 'xn--bcher-kva.example', '[192.0.2.1]', 'ＥＸＡＭＰＬＥ.com'),
    ),
  )
  .map(([l, at, d]) => `${l}${at}${d}`);

const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), addressLike, fc.emailAddress());

describe('parseAddress properties', () => {
  it('never throws, for any string', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        parseAddress(s);
      }),
      { numRuns: 5000 },
    );
  });

  it('is idempotent: parsing a normalized address gives it back', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const first = parseAddress(s);
        if (!first.ok) return;
        const again = parseAddress(first.value.address);
        assert.ok(again.ok, `re-parse of ${JSON.stringify(first.value.address)} failed: ${JSON.stringify(again)}`);
        assert.equal(again.value.address, first.value.address);
      }),
      { numRuns: 5000 },
    );
  });

  it('never returns more than 64 octets of local part or 254 of address', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const r = parseAddress(s);
        if (!r.ok) return;
        assert.ok(octets(r.value.local) <= 64, `local ${JSON.stringify(r.value.local)}`);
        assert.ok(octets(r.value.address) <= 254, `address ${JSON.stringify(r.value.address)}`);
        assert.doesNotMatch(r.value.address, /[\x00-\x1f\x7f]/);
      }),
      { numRuns: 5000 },
    );
  });

  it('keeps a 64-octet local part within 64 octets after case folding', () => {
    // "İ" is 2 octets but lowercases to "i̇" (3 octets): the limit applies to the result.
    const r = parseAddress('İ'.repeat(32) + '@example.com');
    if (r.ok) assert.ok(octets(r.value.local) <= 64, `${octets(r.value.local)} octets`);
  });

  it('accepts every address fast-check calls an email address', () => {
    fc.assert(
      fc.property(fc.emailAddress(), (s) => {
        const r = parseAddress(s);
        if (octets(s) <= 254 && octets(s.slice(0, s.lastIndexOf('@'))) <= 64) assert.ok(r.ok, `${s}: ${JSON.stringify(r)}`);
      }),
      { numRuns: 2000 },
    );
  });
});
