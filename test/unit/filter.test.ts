import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BerWriter, EqualityFilter, OrFilter, PresenceFilter, SubstringFilter, type Filter } from 'ldapts';
import { checkFilterTemplate, compileFilter, escapeFilterValue, expandFilter, listFilterFromTemplate, parseFilter } from '../../src/directory/filter.js';

/** Any text, metacharacters and non-ASCII included (whole code points: no lone surrogates). */
const anyText = fc.string({ unit: 'binary', maxLength: 40 });
const nasty = fc.string({ unit: fc.constantFrom('*', '(', ')', '\\', '\0', 'a', '@', 'ü', '%', '=', '|', '&', '!'), maxLength: 30 });

describe('escapeFilterValue', () => {
  test('escapes the RFC 4515 specials and NUL', () => {
    assert.equal(escapeFilterValue('a*b(c)d\\e\0f'), 'a\\2ab\\28c\\29d\\5ce\\00f');
  });

  test('escapes non-ASCII as UTF-8 bytes and control characters', () => {
    assert.equal(escapeFilterValue('jürgen'), 'j\\c3\\bcrgen');
    assert.equal(escapeFilterValue('a\nb\x7f'), 'a\\0ab\\7f');
    assert.equal(escapeFilterValue(Buffer.from([0xff, 0x41])), '\\ffA');
  });

  test('leaves plain printable ASCII alone', () => {
    assert.equal(escapeFilterValue('first.last+tag-x@example.com'), 'first.last+tag-x@example.com');
  });

  test('property: output holds no unescaped special and only well-formed escapes', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, nasty), (value) => {
        const out = escapeFilterValue(value);
        assert.doesNotMatch(out, /[*()\0]/);
        assert.doesNotMatch(out, /[^\x20-\x7e]/);
        assert.doesNotMatch(out, /\\(?![0-9a-f]{2})/);
      }),
    );
  });
});

describe('expandFilter', () => {
  test('expands %s, %u, %d and %%', () => {
    assert.equal(expandFilter('(&(mail=%s)(uid=%u)(dc=%d)(x=100%%))', 'bob@example.com'), '(&(mail=bob@example.com)(uid=bob)(dc=example.com)(x=100%))');
  });

  test('splits at the last @ and treats an address without @ as a bare local part', () => {
    assert.equal(expandFilter('(u=%u)(d=%d)', '"a@b"@example.com'), '(u="a@b")(d=example.com)');
    assert.equal(expandFilter('(u=%u)(d=%d)', 'postmaster'), '(u=postmaster)(d=)');
  });

  test('escapes every expanded value', () => {
    assert.equal(expandFilter('(mail=%s)', 'al*@example.com'), '(mail=al\\2a@example.com)');
    assert.equal(expandFilter('(mail=%s)', 'alice)(mail=*@example.com'), '(mail=alice\\29\\28mail=\\2a@example.com)');
  });

  test('rejects unknown directives and a trailing lone %', () => {
    assert.throws(() => expandFilter('(mail=%x)', 'a@b'), /unknown directive "%x"/);
    assert.throws(() => expandFilter('(mail=%s)%', 'a@b'), /lone "%"/);
  });

  test('property: (mail=%s) always parses to one equality match on exactly the input', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, nasty), fc.oneof(anyText, nasty), (local, domain) => {
        const address = `${local}@${domain}`;
        const parsed = parseFilter(expandFilter('(mail=%s)', address));
        assert.ok(parsed instanceof EqualityFilter, `${parsed.constructor.name} for ${JSON.stringify(address)}`);
        assert.equal(parsed.attribute, 'mail');
        assert.equal(parsed.value, address);
      }),
    );
  });

  test('property: a multi-clause template keeps its shape whatever the address', () => {
    fc.assert(
      // The domain holds no @: the split is at the last one.
      fc.property(nasty, nasty.filter((d) => !d.includes('@')), (local, domain) => {
        const parsed = parseFilter(expandFilter('(|(mail=%s)(uid=%u)(associatedDomain=%d))', `${local}@${domain}`));
        assert.ok(parsed instanceof OrFilter);
        assert.deepEqual(
          parsed.filters.map((f) => (f instanceof EqualityFilter ? [f.attribute, f.value] : f.constructor.name)),
          [['mail', `${local}@${domain}`], ['uid', local], ['associatedDomain', domain]],
        );
      }),
    );
  });
});

describe('parseFilter', () => {
  test('sends escaped non-ASCII values as UTF-8 text', () => {
    const parsed = parseFilter('(mail=j\\c3\\bcrgen@example.com)');
    assert.ok(parsed instanceof EqualityFilter);
    assert.equal(parsed.value, 'jürgen@example.com');
  });

  test('accepts raw non-ASCII in a configured template', () => {
    const parsed = parseFilter('(ou=Bücher)');
    assert.ok(parsed instanceof EqualityFilter);
    assert.equal(parsed.value, 'Bücher');
  });

  test('rejects malformed filters', () => {
    assert.throws(() => parseFilter('(mail=a'));
    assert.throws(() => parseFilter('(mail=a)(mail=b)'));
  });
});

describe('listFilterFromTemplate', () => {
  test('turns every address directive into a wildcard', () => {
    assert.equal(listFilterFromTemplate('(|(mail=%s)(mailAlternateAddress=%s))'), '(|(mail=*)(mailAlternateAddress=*))');
    assert.equal(listFilterFromTemplate('(proxyAddresses=smtp:%s)'), '(proxyAddresses=smtp:*)');
    assert.equal(listFilterFromTemplate('(mail=%u@%d)'), '(mail=*@*)');
    assert.equal(listFilterFromTemplate('(mail=%u%d)'), '(mail=*)');
  });

  test('produces filters that parse as presence or substring matches', () => {
    assert.ok(parseFilter(listFilterFromTemplate('(mail=%s)')) instanceof PresenceFilter);
    assert.ok(parseFilter(listFilterFromTemplate('(proxyAddresses=smtp:%s)')) instanceof SubstringFilter);
  });
});

describe('checkFilterTemplate', () => {
  test('accepts good templates and explains bad ones', () => {
    assert.equal(checkFilterTemplate('(&(mail=%s)(!(employeeType=disabled)))'), null);
    assert.match(checkFilterTemplate('(mail=%q)') ?? '', /unknown directive/);
    assert.match(checkFilterTemplate('(mail=%s') ?? '', /nbalanced/);
  });
});

describe('compileFilter', () => {
  function wire(filter: Filter): string {
    const writer = new BerWriter();
    filter.write(writer);
    return writer.buffer.toString('hex');
  }
  const templates = [
    '(|(mail=%s)(mailAlternateAddress=%s))',
    '(&(objectClass=user)(|(mail=%s)(proxyAddresses=smtp:%s))(!(userAccountControl:1.2.840.113556.1.4.803:=2)))',
    '(&(uid=%u)(associatedDomain=%d))',
    '(mail=*%u*)',
    '(&(mail=%u@%d)(description=100%%))',
  ];

  test('sends exactly the bytes of the expanded and parsed filter', () => {
    const addresses = ['bob@example.com', 'Bob+Tag@Example.com', 'ålice@bücher.example', '*)(mail=*@x', 'a\\2ab@x', 'noat', 'qz1rcptgatelocalqz1@qz1rcptgatedomainqz1.invalid', 'x@qz1rcptgatelocalqz1'];
    for (const template of templates) {
      const compiled = compileFilter(template);
      for (const address of addresses) assert.equal(wire(compiled(address)), wire(parseFilter(expandFilter(template, address))), `${template} ${address}`);
    }
  });

  test('matches expand-and-parse for arbitrary addresses (property)', () => {
    const compiled = templates.map((t) => [t, compileFilter(t)] as const);
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ maxLength: 20 }), (local, domain) => {
        const address = `${local}@${domain}`;
        for (const [template, compile] of compiled) assert.equal(wire(compile(address)), wire(parseFilter(expandFilter(template, address))));
      }),
      { numRuns: 300 },
    );
  });
});
