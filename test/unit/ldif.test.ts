import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ErrorCodes, RcptgateError } from '../../src/errors.js';
import { parseLdif } from '../../src/directory/ldif-parser.js';
import { EXAMPLE_LDIF, LdifDirectory } from '../../src/directory/ldif.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Asserts an LDIF_PARSE error naming the given line. */
function parseFails(text: string, line: number, message: RegExp): void {
  assert.throws(
    () => parseLdif(text),
    (e: unknown) => {
      assert.ok(e instanceof RcptgateError, String(e));
      assert.equal(e.code, ErrorCodes.LDIF_PARSE);
      assert.match(e.message, new RegExp(`line ${line}\\b`));
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('LDIF parser', () => {
  it('reads records separated by blank lines, attribute names lowercased, values in order', () => {
    const records = parseLdif('version: 1\n\ndn: uid=a,dc=x\nMail: a@x.com\nmail: b@x.com\ncn: A\n\n\ndn: uid=b,dc=x\nmail: c@x.com\n');
    assert.equal(records.length, 2);
    assert.equal(records[0]!.dn, 'uid=a,dc=x');
    assert.deepEqual(records[0]!.attributes.get('mail'), ['a@x.com', 'b@x.com']);
    assert.deepEqual(records[0]!.attributes.get('cn'), ['A']);
    assert.equal(records[0]!.line, 3);
    assert.equal(records[1]!.line, 9);
  });

  it('accepts CRLF line ends and a last record without a trailing newline', () => {
    const records = parseLdif('dn: uid=a,dc=x\r\nmail: a@x.com\r\n\r\ndn: uid=b,dc=x\r\nmail: b@x.com');
    assert.deepEqual(
      records.map((r) => r.attributes.get('mail')),
      [['a@x.com'], ['b@x.com']],
    );
  });

  it('unfolds continuation lines (one leading space)', () => {
    const [r] = parseLdif('dn: uid=a,\n dc=example,dc=com\ndescription: a long\n  value\nmail: al\n ice@example.com\n');
    assert.equal(r!.dn, 'uid=a,dc=example,dc=com');
    assert.deepEqual(r!.attributes.get('description'), ['a long value']);
    assert.deepEqual(r!.attributes.get('mail'), ['alice@example.com']);
  });

  it('decodes base64 values, including the DN, as UTF-8', () => {
    const [r] = parseLdif(`dn:: ${b64('uid=jörg,dc=x')}\nmail:: ${b64('jörg@example.com')}\ncn:: ${b64('Jörg Müller')}\n`);
    assert.equal(r!.dn, 'uid=jörg,dc=x');
    assert.deepEqual(r!.attributes.get('mail'), ['jörg@example.com']);
    assert.deepEqual(r!.attributes.get('cn'), ['Jörg Müller']);
  });

  it('decodes a folded base64 value', () => {
    const encoded = b64('a-very-long-local-part-that-needs-folding@example.com');
    const [r] = parseLdif(`dn: uid=a,dc=x\nmail:: ${encoded.slice(0, 20)}\n ${encoded.slice(20)}\n`);
    assert.deepEqual(r!.attributes.get('mail'), ['a-very-long-local-part-that-needs-folding@example.com']);
  });

  it('ignores comments, also between attributes and folded ones', () => {
    const records = parseLdif('# header\ndn: uid=a,dc=x\n# a comment\n  that is folded\nmail: a@x.com\n# trailing\n');
    assert.equal(records.length, 1);
    assert.equal(records[0]!.dn, 'uid=a,dc=x');
    assert.deepEqual([...records[0]!.attributes.keys()], ['mail']);
    assert.deepEqual(records[0]!.attributes.get('mail'), ['a@x.com']);
  });

  it('returns no records for an empty or comment-only file', () => {
    assert.deepEqual(parseLdif(''), []);
    assert.deepEqual(parseLdif('# nothing here\n\n'), []);
  });

  it('refuses a line without "attribute: value", with its line number', () => {
    parseFails('dn: uid=a,dc=x\nmail a@x.com\n', 2, /attribute: value/);
  });

  it('refuses a record that does not start with dn:, with its line number', () => {
    parseFails('dn: uid=a,dc=x\nmail: a@x.com\n\nmail: b@x.com\n', 4, /dn:/);
  });

  it('refuses change records, with their line number', () => {
    parseFails('dn: uid=a,dc=x\nchangetype: modify\nreplace: mail\n', 2, /change records/);
  });

  it('refuses URL values, with their line number', () => {
    parseFails('dn: uid=a,dc=x\n\ndn: uid=b,dc=x\njpegPhoto:< file:///etc/passwd\n', 4, /URL/);
  });

  it('counts physical lines in error messages after folded lines', () => {
    parseFails('dn: uid=a,\n dc=x\ndescription: one\n two\nbroken\n', 5, /attribute: value/);
  });
});

describe('LdifDirectory over examples/directory.ldif', () => {
  const dir = LdifDirectory.fromFile(EXAMPLE_LDIF);
  const found = async (address: string) => (await dir.lookup(address)).entry;

  it('finds alice by each of her addresses, canonical is her first mail value', async () => {
    for (const a of ['alice@example.com', 'alice.smith@example.com', 'ally@example.com']) {
      const e = await found(a);
      assert.ok(e, a);
      assert.equal(e.dn, 'uid=alice,ou=people,dc=example,dc=com');
      assert.equal(e.canonical, 'alice@example.com');
    }
  });

  it("finds bob by his alias sales@, with bob's canonical address", async () => {
    const e = await found('sales@example.com');
    assert.equal(e?.dn, 'uid=bob,ou=people,dc=example,dc=com');
    assert.equal(e?.canonical, 'bob@example.com');
  });

  it('finds Carol whatever the case of the question, keeping her own spelling as canonical', async () => {
    for (const a of ['carol.mixed@example.com', 'CAROL.MIXED@example.com', 'Carol.Mixed@example.com']) {
      assert.equal((await found(a))?.canonical, 'Carol.Mixed@Example.com', a);
    }
  });

  it('finds the group address', async () => {
    assert.equal((await found('staff@example.com'))?.dn, 'cn=staff,ou=groups,dc=example,dc=com');
  });

  it('finds first-last and the example.org users', async () => {
    assert.ok(await found('first-last@example.com'));
    assert.ok(await found('carol@example.org'));
    assert.ok(await found('dave@example.org'));
  });

  it('does not find the disabled mallory', async () => {
    assert.equal(await found('mallory@example.com'), null);
    assert.equal(dir.disabledCount, 1);
  });

  it('does not find strangers', async () => {
    assert.equal(await found('nobody@example.com'), null);
    assert.equal(await found('alice@example.org'), null);
  });

  it('knows the domains in the file', () => {
    assert.deepEqual(dir.knownDomains(), ['example.com', 'example.org']);
  });

  it('lists every enabled entry with its addresses', async () => {
    const all = [];
    for await (const r of dir.listAll()) all.push(r);
    const alice = all.find((r) => r.dn.startsWith('uid=alice,'));
    assert.deepEqual(alice?.addresses.sort(), ['alice.smith@example.com', 'alice@example.com', 'ally@example.com']);
    assert.equal(all.some((r) => r.dn.startsWith('uid=mallory,')), false);
    assert.equal(all.some((r) => r.dn.startsWith('ou=')), false, 'entries without addresses are not recipients');
  });

  it('probes and closes without error', async () => {
    await dir.probe();
    await dir.close();
  });
});

describe('LdifDirectory from other data', () => {
  it('reads an export saved with a UTF-8 byte order mark (a Windows editor) from its first line', async () => {
    // Before: refused at line 1 ("expected attribute: value"), the service would not start on it.
    const dir = LdifDirectory.fromText('\uFEFFdn: uid=bom,dc=x\r\nmail: bom@x.example\r\n\r\n');
    assert.equal((await dir.lookup('bom@x.example')).entry?.canonical, 'bom@x.example');
  });

  it('reads Active Directory proxyAddresses: SMTP: is canonical, smtp: are aliases, X400: ignored', async () => {
    const dir = LdifDirectory.fromText(
      [
        'dn: CN=Eve,CN=Users,DC=corp,DC=example',
        'mail: eve.old@corp.example',
        'proxyAddresses: smtp:eve.old@corp.example',
        'proxyAddresses: SMTP:Eve@Corp.Example',
        'proxyAddresses: X400:c=US;a= ;p=Corp;o=Exchange;s=Eve;',
        'userAccountControl: 512',
        '',
      ].join('\n'),
    );
    assert.equal((await dir.lookup('eve@corp.example')).entry?.canonical, 'Eve@Corp.Example');
    assert.equal((await dir.lookup('eve.old@corp.example')).entry?.canonical, 'Eve@Corp.Example');
    assert.deepEqual(dir.knownDomains(), ['corp.example']);
  });

  it('leaves out accounts disabled by userAccountControl bit 2 or accountStatus', async () => {
    const dir = LdifDirectory.fromText(
      [
        'dn: CN=Off,DC=x',
        'mail: off@x.example',
        'userAccountControl: 514',
        '',
        'dn: uid=inactive,dc=x',
        'mail: inactive@x.example',
        'accountStatus: Inactive',
        '',
        'dn: uid=on,dc=x',
        'mail: on@x.example',
        'accountStatus: active',
        '',
      ].join('\n'),
    );
    assert.equal((await dir.lookup('off@x.example')).entry, null);
    assert.equal((await dir.lookup('inactive@x.example')).entry, null);
    assert.ok((await dir.lookup('on@x.example')).entry);
    assert.equal(dir.disabledCount, 2);
  });

  it('indexes an @domain value (a catch-all entry, asked last as Postfix does)', async () => {
    const dir = LdifDirectory.fromText('dn: uid=c,dc=x\nmail: @Catch.Example.\n');
    assert.equal((await dir.lookup('@catch.example')).entry?.dn, 'uid=c,dc=x');
  });

  it('indexes IDN addresses by their A-label', async () => {
    const dir = LdifDirectory.fromText('dn: uid=u,dc=x\nmail: user@bücher.example\n');
    assert.ok((await dir.lookup('user@xn--bcher-kva.example')).entry);
  });

  it('names the file in a parse error, and a missing file is a read error', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'rcptgate-ldif-'));
    try {
      const bad = join(tmp, 'bad.ldif');
      writeFileSync(bad, 'dn: uid=a,dc=x\nnot a line\n');
      assert.throws(
        () => LdifDirectory.fromFile(bad),
        (e: unknown) => e instanceof RcptgateError && e.code === ErrorCodes.LDIF_PARSE && e.message.includes(bad) && /line 2/.test(e.message),
      );
      assert.throws(
        () => LdifDirectory.fromFile(join(tmp, 'missing.ldif')),
        (e: unknown) => e instanceof RcptgateError && e.code === ErrorCodes.CONFIG_READ,
      );
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
