/**
 * The LDIF directory (the embedded default) folded lookups with toLowerCase(), which turns the
 * Kelvin sign U+212A into ASCII "k": "\u212Aate@example.com" was answered valid as
 * kate@example.com, although the README promises a local part that case-folds from non-ASCII
 * into ASCII is looked up as written (and the LDAP directories answer it unknown). Lookups now
 * fold as the file's own index does (foldLocal). The real service on an LDIF file, asked over HTTP.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';

const LDIF = `dn: uid=kate,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: kate
mail: kate@example.com
mailAlternateAddress: nick@example.com

dn: uid=angstrom,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: angstrom
mail: \u00e5ke@example.com
`;

describe('the LDIF directory folds case as its index does', () => {
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>>;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12a-ldif-'));
    const file = path.join(dir, 'users.ldif');
    await writeFile(file, LDIF);
    app = await startApp({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldif', ldif: { path: file } },
      log: { level: 'silent' },
    });
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, encodeURIComponent(address));

  test('the Kelvin sign is no "k"; ASCII and non-ASCII case still fold', async () => {
    assert.equal(await ask('\u212Aate@example.com'), 'unknown/directory', 'Kelvin sign + "ate"');
    assert.equal(await ask('nic\u212A@example.com'), 'unknown/directory', '"nic" + Kelvin sign (an alias)');
    assert.equal(await ask('KATE@example.com'), 'valid/directory');
    assert.equal(await ask('Nick@Example.COM'), 'valid/directory');
    assert.equal(await ask('\u00c5KE@example.com'), 'valid/directory', 'Å folds to å');
  });
});
