/**
 * LdapDirectory with the `activedirectory` preset against a real Active Directory DC (Samba 4,
 * test/helpers/samba.ts): Exchange-style proxyAddresses, mail-enabled groups, contacts,
 * disabled accounts, LDAPS trust, Samba's refusal of plain simple binds, the Global Catalog,
 * continuation references, paging past AD's MaxPageSize (1000) and filter injection.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'ldapts';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';
import { createCertificateAuthority } from '../helpers/slapd.js';

const BULK_USERS = 1200;
/** Mail recipients of test/fixtures/ad/recipients.ldif that are enabled and have an address. */
const FIXTURE_RECIPIENTS = ['jane@ad.example.com', 'mixed.case@ad.example.com', 'mailonly@ad.example.com', 'sales@ad.example.com', 'partner@ad.example.com'];

type LdapSection = Config['directory']['ldap'];

let dc: SambaDC;
const opened: LdapDirectory[] = [];
let scratch: string;

function config(ldap: Record<string, unknown> = {}, cache: Record<string, unknown> = {}): Config {
  return validateConfig({
    domains: ['ad.example.com'],
    cache,
    directory: {
      kind: 'ldap',
      ldap: {
        urls: [dc.ldapsUrl],
        baseDN: dc.baseDN,
        preset: 'activedirectory',
        bindDN: dc.serviceDN,
        tls: { caFile: dc.caFile },
        timeout: '10s',
        ...ldap,
      },
    },
  });
}

function directory(ldap: Record<string, unknown> = {}, password: string | null = dc.servicePassword): LdapDirectory {
  const section: LdapSection = config(ldap).directory.ldap;
  const dir = new LdapDirectory({ config: section, bindPassword: password, metrics: new Metrics(), logger: silentLogger() });
  opened.push(dir);
  return dir;
}

async function canonicalOf(dir: LdapDirectory, address: string): Promise<string | null> {
  const answer = await dir.lookup(address);
  return answer.entry?.canonical ?? null;
}

async function rejectsWithDirectoryError(work: Promise<unknown>, code: string, message: RegExp): Promise<DirectoryError> {
  let caught: unknown;
  await work.then(
    () => assert.fail('expected a DirectoryError, got an answer'),
    (err: unknown) => (caught = err),
  );
  assert.ok(caught instanceof DirectoryError, `expected DirectoryError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, message);
  return caught;
}

before(async () => {
  const started = Date.now();
  dc = await startSambaDC({ bulkUsers: BULK_USERS });
  console.log(`# Samba AD DC ready in ${Date.now() - started} ms ${JSON.stringify(dc.timings)}`);
  scratch = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ad-test-'));
});

after(async () => {
  await Promise.all(opened.map((d) => d.close()));
  await dc?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('Active Directory preset over LDAPS', () => {
  it('answers a probe over LDAPS when the configured CA signed the DC certificate', async () => {
    await directory().probe();
  });

  it('finds a user by its primary SMTP: proxy address', async () => {
    const answer = await directory().lookup('jane@ad.example.com');
    assert.equal(answer.entry?.canonical, 'jane@ad.example.com');
    assert.equal(answer.entry?.dn, `CN=Jane Doe,CN=Users,${dc.baseDN}`);
  });

  it('finds a user by a secondary smtp: proxy address and names the SMTP: primary as canonical', async () => {
    assert.equal(await canonicalOf(directory(), 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });

  it('matches proxy addresses whatever the case of the address or of the stored prefix', async () => {
    const dir = directory();
    assert.equal(await canonicalOf(dir, 'J.Doe@ad.example.com'), 'jane@ad.example.com');
    // stored as `sMtP:m.case@…`: a secondary; the primary keeps the directory's spelling
    assert.equal(await canonicalOf(dir, 'm.case@ad.example.com'), 'Mixed.Case@ad.example.com');
    assert.equal(await canonicalOf(dir, 'MIXED.CASE@ad.example.com'), 'Mixed.Case@ad.example.com');
  });

  it('finds a user that has only a mail attribute', async () => {
    assert.equal(await canonicalOf(directory(), 'mailonly@ad.example.com'), 'mailonly@ad.example.com');
  });

  it('finds a mail-enabled group by mail and by secondary proxy address', async () => {
    const dir = directory();
    assert.equal(await canonicalOf(dir, 'sales@ad.example.com'), 'sales@ad.example.com');
    assert.equal(await canonicalOf(dir, 'vertrieb@ad.example.com'), 'sales@ad.example.com');
  });

  it('finds a contact by its proxy address', async () => {
    assert.equal(await canonicalOf(directory(), 'partner@ad.example.com'), 'partner@ad.example.com');
  });

  it('does not find a disabled user by mail or by any proxy address', async () => {
    const dir = directory();
    assert.equal((await dir.lookup('dan@ad.example.com')).entry, null);
    assert.equal((await dir.lookup('daniel@ad.example.com')).entry, null);
  });

  it('does not find an address nobody has, nor a non-SMTP proxy address', async () => {
    const dir = directory();
    assert.equal((await dir.lookup('nobody@ad.example.com')).entry, null);
    assert.equal((await dir.lookup('C=US;A= ;P=ADEX;O=Exchange;S=Doe;G=Jane;')).entry, null);
  });

  it('matches userPrincipalName only when matchUserPrincipalName is set', async () => {
    assert.equal((await directory().lookup(dc.serviceUPN)).entry, null);
    assert.notEqual((await directory({ matchUserPrincipalName: true }).lookup(dc.serviceUPN)).entry, null);
  });

  it('reports a wrong service account password as an authentication DirectoryError', async () => {
    await rejectsWithDirectoryError(directory({}, 'Wrong-Pass-1').lookup('jane@ad.example.com'), ErrorCodes.DIRECTORY_AUTH, /refused/i);
  });

  it('binds with the service account user principal name as well as its DN', async () => {
    assert.equal(await canonicalOf(directory({ bindDN: dc.serviceUPN }), 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });

  it('accepts a re-enabled user once the negative cache entry expires', async () => {
    const cfg = config({}, { negativeTtl: '1s' });
    const dir = directory();
    const validator = new RecipientValidatorImpl({ config: cfg, directory: dir, metrics: new Metrics(), logger: silentLogger() });
    try {
      assert.equal((await validator.lookup('dan@ad.example.com', { frontend: 'cli' })).verdict, 'unknown');
      await dc.enableUser('dan');
      assert.equal((await dir.lookup('dan@ad.example.com')).entry?.canonical, 'dan@ad.example.com', 'the directory itself sees the change at once');
      await new Promise((r) => setTimeout(r, 1_200));
      const result = await validator.lookup('daniel@ad.example.com', { frontend: 'cli' });
      assert.equal(result.verdict, 'valid');
      assert.equal(result.canonical, 'dan@ad.example.com');
      assert.equal((await validator.lookup('dan@ad.example.com', { frontend: 'cli' })).verdict, 'valid');
    } finally {
      await dc.disableUser('dan');
    }
  });

  it('the preset keeps disabled-by-design Exchange mailboxes, and works on a DC without the Exchange schema', async () => {
    // Exchange shared (4), room (16), equipment (32) and linked (2) mailboxes are disabled accounts.
    const dir = directory();
    assert.equal(await canonicalOf(dir, 'j.doe@ad.example.com'), 'jane@ad.example.com');
    assert.equal((await dir.lookup('daniel@ad.example.com')).entry, null);
  });

  it('batched searches give exactly the answers of single searches (proxy addresses, case, disabled accounts)', async () => {
    const addresses = [
      'jane@ad.example.com',
      'j.doe@ad.example.com',
      'J.Doe@ad.example.com',
      'm.case@ad.example.com',
      'MIXED.CASE@ad.example.com',
      'mailonly@ad.example.com',
      'sales@ad.example.com',
      'vertrieb@ad.example.com',
      'partner@ad.example.com',
      'partner@partner.example',
      'dan@ad.example.com',
      'daniel@ad.example.com',
      'nobody@ad.example.com',
      'smtp:jane@ad.example.com',
      '*@ad.example.com',
      'jäne@ad.example.com',
    ];
    const singles = directory({ batchSize: 1 });
    const metrics = new Metrics();
    const batched = new LdapDirectory({
      config: config({ batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 }).directory.ldap,
      bindPassword: dc.servicePassword,
      metrics,
      logger: silentLogger(),
    });
    opened.push(batched);
    const expected = await Promise.all(addresses.map(async (a) => (await singles.lookup(a)).entry));
    for (let round = 0; round < 2; round++) {
      const order = round ? [...addresses].reverse() : addresses;
      const got = await Promise.all(order.map(async (a) => [a, (await batched.lookup(a)).entry] as const));
      for (const [address, entry] of got) assert.deepEqual(entry, expected[addresses.indexOf(address)], address);
    }
    const batches = (await metrics.directorySearches.get()).values.find((v) => v.labels.kind === 'batch')?.value ?? 0;
    assert.ok(batches > 0, 'batches were sent');
  });

  it('never matches filter injection attempts', async () => {
    const dir = directory();
    const attempts = [
      '*@ad.example.com',
      'j*@ad.example.com',
      'bulk1*@ad.example.com',
      '*',
      'jane@ad.example.com)(mail=*',
      '*)(objectClass=*',
      'x@ad.example.com)(|(mail=*)',
      '*))(|(objectClass=*',
      'dan@ad.example.com)(userAccountControl=512',
      '\\2a@ad.example.com',
      'smtp:*',
    ];
    for (const address of attempts) {
      const answer = await dir.lookup(address);
      assert.equal(answer.entry, null, `${JSON.stringify(address)} matched ${answer.entry?.dn}`);
    }
  });

  it('rejects an address with a NUL as invalid before it reaches AD, which compares values only up to the NUL', async () => {
    // Samba matches `(mail=jane@ad.example.com\00)` against jane: the engine's syntax check is what keeps it out.
    const dir = directory();
    assert.notEqual((await dir.lookup('jane@ad.example.com\u0000')).entry, null, 'Samba no longer truncates at NUL: revisit this test');
    const validator = new RecipientValidatorImpl({ config: config(), directory: dir, metrics: new Metrics(), logger: silentLogger() });
    assert.equal((await validator.lookup('jane@ad.example.com\u0000', { frontend: 'cli' })).verdict, 'invalid');
  });
});

describe('Active Directory paging and references', () => {
  it('lists every enabled recipient across several pages, past AD\'s 1000-entry MaxPageSize', async () => {
    const seen = new Map<string, string[]>();
    for await (const record of directory({ pageSize: 500 }).listAll()) seen.set(record.canonical.toLowerCase(), record.addresses);
    assert.equal(seen.size, BULK_USERS + FIXTURE_RECIPIENTS.length);
    for (let k = 1; k <= BULK_USERS; k++) assert.ok(seen.has(`bulk${k}@ad.example.com`), `bulk${k} missing`);
    for (const address of FIXTURE_RECIPIENTS) assert.ok(seen.has(address), `${address} missing`);
    assert.deepEqual([...(seen.get('jane@ad.example.com') ?? [])].sort(), ['j.doe@ad.example.com', 'jane@ad.example.com']);
    assert.ok(!seen.has('dan@ad.example.com'), 'the disabled user is listed');
  });

  it('ignores the continuation references AD returns for subtree searches from the domain root', async () => {
    // Show the DC really sends references for such a search…
    const client = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: [await readFile(dc.caFile)] } });
    try {
      await client.bind(dc.serviceDN, dc.servicePassword);
      const raw = await client.search(dc.baseDN, { scope: 'sub', filter: '(proxyAddresses=smtp:j.doe@ad.example.com)', attributes: ['dn'] });
      assert.ok(raw.searchReferences.length > 0, 'expected the DC to return continuation references');
    } finally {
      await client.unbind();
    }
    // …and that the directory answers from the entries alone.
    assert.equal(await canonicalOf(directory(), 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });
});

describe('Active Directory transport security', () => {
  it('fails with a DirectoryError when the CA file does not hold the CA that signed the DC certificate', async () => {
    const other = await createCertificateAuthority(scratch, 'unrelated');
    await rejectsWithDirectoryError(directory({ tls: { caFile: other.caFile, rejectUnauthorized: true } }).lookup('jane@ad.example.com'), ErrorCodes.DIRECTORY_UNAVAILABLE, /TLS|certificate/i);
  });

  it('fails with a DirectoryError when no CA file is configured for a self-signed DC certificate', async () => {
    await rejectsWithDirectoryError(directory({ tls: { caFile: null, rejectUnauthorized: true } }).probe(), ErrorCodes.DIRECTORY_UNAVAILABLE, /TLS|certificate/i);
  });

  it('reports a refused simple bind over plain ldap:// as a configuration error naming strong authentication', async () => {
    assert.equal(dc.strongAuthRequired, true);
    const err = await rejectsWithDirectoryError(
      directory({ urls: [dc.ldapUrl], tls: { caFile: null } }).lookup('jane@ad.example.com'),
      ErrorCodes.DIRECTORY_AUTH,
      /strong(er)?.?auth/i,
    );
    assert.match(err.message, /refused/i);
  });

  it('answers over plain ldap:// upgraded with StartTLS, which satisfies the strong-auth default', async () => {
    const dir = directory({ urls: [dc.ldapUrl], startTLS: true });
    assert.equal(await canonicalOf(dir, 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });

  it('answers lookups through the Global Catalog over TLS (port 3269)', async () => {
    assert.equal(await canonicalOf(directory({ urls: [dc.gcsUrl] }), 'j.doe@ad.example.com'), 'jane@ad.example.com');
    assert.equal((await directory({ urls: [dc.gcsUrl] }).lookup('dan@ad.example.com')).entry, null);
  });
});

describe('Active Directory restarted without required strong auth (ldap server require strong auth = no)', () => {
  let pooledStartTLS: LdapDirectory;
  let pooledLdaps: LdapDirectory;
  // Last in the file on purpose: the DC stays in this mode until the file's after() stops it.
  before(async () => {
    // Connections pooled before the restart are dead afterwards: the next lookups must not fail for it.
    pooledStartTLS = directory({ urls: [dc.ldapUrl], startTLS: true });
    pooledLdaps = directory();
    assert.equal(await canonicalOf(pooledStartTLS, 'jane@ad.example.com'), 'jane@ad.example.com');
    assert.equal(await canonicalOf(pooledLdaps, 'jane@ad.example.com'), 'jane@ad.example.com');
    await dc.setStrongAuthRequired(false);
  });

  it('answers over LDAPS right after the DC restarted, replacing the dead pooled connection', async () => {
    assert.equal(await canonicalOf(pooledLdaps, 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });

  it('answers over StartTLS right after the DC restarted, replacing the dead pooled connection', async () => {
    assert.equal(await canonicalOf(pooledStartTLS, 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });

  it('answers lookups through the Global Catalog port 3268 with a simple bind', async () => {
    const gc = directory({ urls: [dc.gcUrl], tls: { caFile: null } });
    assert.equal(await canonicalOf(gc, 'vertrieb@ad.example.com'), 'sales@ad.example.com');
    assert.equal(await canonicalOf(gc, 'partner@ad.example.com'), 'partner@ad.example.com');
    assert.equal((await gc.lookup('daniel@ad.example.com')).entry, null);
  });

  it('searches the whole forest through the Global Catalog with an empty base DN', async () => {
    assert.equal(await canonicalOf(directory({ urls: [dc.gcUrl], tls: { caFile: null }, baseDN: '' }), 'j.doe@ad.example.com'), 'jane@ad.example.com');
  });
});
