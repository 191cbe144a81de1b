/**
 * A directory administrator delegates part of the tree to another server: an OpenLDAP `referral`
 * object (ou=partners) inside the search base. A subtree search then returns a continuation
 * reference for it (RFC 4511 §4.5.3) beside the entries it holds itself; rcptgate chases no
 * referrals. The entries behind the reference were never searched, so "found nothing" there is a
 * partial answer: a partner's address is not unknown (550), it is unknowable (tempfail), and a
 * full listing without the partners is not the directory. References to naming contexts that hold
 * no recipients (AD's configuration and DNS partitions, returned by every DC for a subtree search
 * of a domain root) change nothing. Real slapd servers: the partner entry lives on a second one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const PARTNERS = `ou=partners,ou=people,${BASE}`;

function referral(dn: string, rdn: string, url: string): string {
  const [attr, value] = rdn.split('=') as [string, string];
  return `dn: ${dn}\nobjectClass: referral\nobjectClass: extensibleObject\n${attr}: ${value}\nref: ${url}`;
}

function service(slapd: Slapd, ldap: Record<string, unknown> = {}) {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s', ...ldap } },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
  const engine = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
  return { directory, engine, metrics };
}

async function searchCount(metrics: Metrics, kind: 'single' | 'batch'): Promise<number> {
  const m = await metrics.directorySearches.get();
  return m.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

describe('a part of the search base referred to another server', () => {
  let partners: Slapd;
  let main: Slapd;
  before(async () => {
    partners = await startSlapd({
      fixture: false,
      ldifText: [`dn: ${PARTNERS}\nobjectClass: organizationalUnit\nou: partners`, `dn: uid=pat,${PARTNERS}\nobjectClass: inetOrgPerson\nuid: pat\ncn: Pat\nsn: Partner\nmail: pat@example.com`],
    });
    main = await startSlapd({ ldifText: [referral(PARTNERS, 'ou=partners', `${partners.url}/${PARTNERS}`)] });
  });
  after(async () => {
    await main?.close();
    await partners?.close();
  });

  test('an address not found beside the reference is tempfail, never unknown, alone or batched; found ones stay valid', async () => {
    const { directory, engine, metrics } = service(main);
    try {
      // The partner exists, on the server the reference names.
      const there = service(partners);
      try {
        assert.equal((await there.engine.lookup('pat@example.com', { frontend: 'http' })).verdict, 'valid');
      } finally {
        await there.directory.close();
      }
      const alone = await directory.lookup('pat@example.com').then(
        () => assert.fail('a search referred elsewhere answered "no such entry"'),
        (err: unknown) => err,
      );
      assert.ok(alone instanceof DirectoryError, String(alone));
      assert.equal(alone.code, ErrorCodes.DIRECTORY_PARTIAL);
      assert.match(alone.message, new RegExp(`referred part of the search base to ${partners.url.replace(/\./g, '\\.')}/ou=partners`));
      assert.equal((await engine.lookup('pat@example.com', { frontend: 'http' })).verdict, 'tempfail');
      assert.equal((await engine.lookup('alice@example.com', { frontend: 'http' })).verdict, 'valid');

      // Many at once: batched OR searches carry the same reference.
      const unknown = Array.from({ length: 40 }, (_, i) => `partner${i}@example.com`);
      const known = ['bob@example.com', 'carol.mixed@example.com', 'staff@example.com', 'user1@example.com', 'user2@example.com'];
      const batchesBefore = await searchCount(metrics, 'batch');
      const verdicts = await Promise.all([...unknown, ...known].map(async (a) => [a, (await engine.lookup(a, { frontend: 'http' })).verdict] as const));
      assert.ok((await searchCount(metrics, 'batch')) > batchesBefore, 'no batched search was sent');
      for (const [address, verdict] of verdicts) assert.equal(verdict, known.includes(address) ? 'valid' : 'tempfail', address);
    } finally {
      await directory.close();
    }
  });

  test('a full listing is refused instead of passing for the whole directory without the partners', async () => {
    const { directory } = service(main);
    try {
      let listed = 0;
      const err = await (async () => {
        for await (const _ of directory.listAll()) listed++;
      })().then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err instanceof DirectoryError, `the listing ended without error after ${listed} entries`);
      assert.match(err.message, /referred to .*ou=partners/);
    } finally {
      await directory.close();
    }
  });
});

describe('a reference beside entries that come back without the value that matched', () => {
  let slapd: Slapd;
  before(async () => {
    // Aliases may be searched but not read (an ACL hiding them from readers): the batch cannot tell which key found alice.
    slapd = await startSlapd({ searchOnly: ['mailAlternateAddress'], ldifText: [referral(PARTNERS, 'ou=partners', `ldap://127.0.0.1:1/${PARTNERS}`)] });
  });
  after(async () => {
    await slapd?.close();
  });

  test('a key the batch cannot match is asked on its own and found, not failed with the reference', async () => {
    const { directory, engine, metrics } = service(slapd);
    try {
      const unknown = Array.from({ length: 20 }, (_, i) => `partner${i}@example.com`);
      const batchesBefore = await searchCount(metrics, 'batch');
      const verdicts = await Promise.all(['ally@example.com', ...unknown].map(async (a) => [a, (await engine.lookup(a, { frontend: 'http' })).verdict] as const));
      assert.ok((await searchCount(metrics, 'batch')) > batchesBefore, 'no batched search was sent');
      for (const [address, verdict] of verdicts) assert.equal(verdict, address === 'ally@example.com' ? 'valid' : 'tempfail', address);
    } finally {
      await directory.close();
    }
  });
});

describe('references to naming contexts without recipients (AD configuration and DNS partitions)', () => {
  let ad: Slapd;
  before(async () => {
    // What a DC returns for every subtree search of its domain root, as slapd referral objects.
    ad = await startSlapd({
      ldifText: [
        referral(`cn=Configuration,${BASE}`, 'cn=Configuration', `ldap://ad.example.com/CN=Configuration,DC=example,DC=com`),
        referral(`dc=DomainDnsZones,${BASE}`, 'dc=DomainDnsZones', `ldap://DomainDnsZones.example.com/DC=DomainDnsZones,DC=example,DC=com`),
        referral(`dc=ForestDnsZones,${BASE}`, 'dc=ForestDnsZones', `ldap://ForestDnsZones.example.com/DC=ForestDnsZones%2CDC=example,DC=com`),
      ],
    });
  });
  after(async () => {
    await ad?.close();
  });

  test('are ignored: unknown stays unknown, the listing is complete', async () => {
    const { directory, engine } = service(ad);
    try {
      assert.equal((await directory.lookup('nobody@example.com')).entry, null);
      const verdicts = await Promise.all(['nobody@example.com', 'nobody2@example.com', 'alice@example.com'].map(async (a) => (await engine.lookup(a, { frontend: 'http' })).verdict));
      assert.deepEqual(verdicts, ['unknown', 'unknown', 'valid']);
      let listed = 0;
      for await (const _ of directory.listAll()) listed++;
      assert.ok(listed >= 10, `listed ${listed}`);
    } finally {
      await directory.close();
    }
  });
});
