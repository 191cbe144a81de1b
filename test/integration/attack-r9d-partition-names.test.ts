/**
 * AD's non-recipient partitions are told apart by their first RDN (CN=Configuration,
 * DC=DomainDnsZones, DC=ForestDnsZones), but in AD those names sit straight on a DC= naming
 * context. A directory administrator may give the same name to a part of the tree that holds
 * people: an OpenLDAP referral object `cn=Configuration` under ou=people, delegated to another
 * server. Its reference must make "found nothing" partial (tempfail), not unknown (550 for a
 * recipient that exists). Real slapd servers: the entry lives on the one the reference names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const DELEGATED = `cn=Configuration,ou=people,${BASE}`;
const ZONES = `dc=DomainDnsZones,ou=people,${BASE}`;

function referral(dn: string, attr: string, value: string, url: string): string {
  return `dn: ${dn}\nobjectClass: referral\nobjectClass: extensibleObject\n${attr}: ${value}\nref: ${url}`;
}

function service(slapd: Slapd) {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
  const engine = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
  return { directory, engine };
}

describe('a delegated part of the tree named like an AD partition', () => {
  let other: Slapd;
  let main: Slapd;
  before(async () => {
    other = await startSlapd({
      fixture: false,
      ldifText: [
        `dn: ${DELEGATED}\nobjectClass: organizationalRole\ncn: Configuration`,
        `dn: uid=cfg,${DELEGATED}\nobjectClass: inetOrgPerson\nuid: cfg\ncn: Cfg\nsn: Admin\nmail: cfg@example.com`,
        `dn: ${ZONES}\nobjectClass: domain\ndc: DomainDnsZones`,
        `dn: uid=dns,${ZONES}\nobjectClass: inetOrgPerson\nuid: dns\ncn: Dns\nsn: Admin\nmail: dns@example.com`,
      ],
    });
    main = await startSlapd({
      ldifText: [referral(DELEGATED, 'cn', 'Configuration', `${other.url}/${DELEGATED}`), referral(ZONES, 'dc', 'DomainDnsZones', `${other.url}/${ZONES}`)],
    });
  });
  after(async () => {
    await main?.close();
    await other?.close();
  });

  test('an address held there is tempfail, never unknown; the listing fails', async () => {
    const there = service(other);
    try {
      assert.equal((await there.engine.lookup('cfg@example.com', { frontend: 'http' })).verdict, 'valid');
      assert.equal((await there.engine.lookup('dns@example.com', { frontend: 'http' })).verdict, 'valid');
    } finally {
      await there.directory.close();
    }
    const { directory, engine } = service(main);
    try {
      assert.equal((await engine.lookup('cfg@example.com', { frontend: 'http' })).verdict, 'tempfail');
      assert.equal((await engine.lookup('dns@example.com', { frontend: 'http' })).verdict, 'tempfail');
      assert.equal((await engine.lookup('alice@example.com', { frontend: 'http' })).verdict, 'valid');
      const listing = (async () => {
        for await (const _ of directory.listAll());
      })();
      await assert.rejects(listing, /referred to .*Configuration/i);
    } finally {
      await directory.close();
    }
  });
});
