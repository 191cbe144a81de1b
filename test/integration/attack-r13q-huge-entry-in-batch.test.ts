/**
 * The entries of one lookup answer are now bounded in all (32 MB), and a batch asks for many keys
 * in one search. A legitimate role account with 100,000 aliases (about 3.5 MB of values) asked in
 * batches beside ordinary users, several of its aliases in the same batch, must be found with
 * them, on the same connections, and unknown addresses beside it stay unknown. Real slapd.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const ALIASES = 100_000;
const alias = (i: number): string => `role.alias${String(i).padStart(6, '0')}@example.com`;

describe('a role account with 100,000 aliases inside batched answers (real slapd)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;
  before(async () => {
    const values = Array.from({ length: ALIASES }, (_, i) => `mailAlternateAddress: ${alias(i)}`).join('\n');
    slapd = await startSlapd({ ldifText: [`dn: uid=role,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: role\ncn: Role\nsn: Role\nmail: role@example.com\n${values}`] });
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '20s', poolSize: 2, batchSize: 16 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    await directory.lookup('bob@example.com');
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  test('every alias and user found, unknowns unknown, no connection dropped', async () => {
    const asked: string[] = [];
    for (let round = 0; round < 3; round++) {
      asked.push('role@example.com', alias(round), alias(50_000 + round), alias(ALIASES - 1 - round), 'bob@example.com', 'staff@example.com', `nobody${round}@example.com`);
    }
    const answers = await Promise.all(asked.map((a) => directory.lookup(a).then((r) => r.entry?.canonical ?? null)));
    asked.forEach((address, i) => {
      if (address.startsWith('nobody')) assert.equal(answers[i], null, address);
      else assert.ok(answers[i], `${address} found`);
    });
    assert.equal(answers.filter((a) => a === 'role@example.com').length, 12);
    assert.equal(proxy.connections.length, 2, 'no answer taken for malformed or too large');
    const down = proxy.connections.reduce((n, c) => n + c.down, 0);
    console.log(`${asked.length} lookups, ${(down / 1e6).toFixed(1)} MB read from the directory`);
    assert.ok(down > 3_000_000, `the entry's aliases came back (${down} bytes)`);
  });
});
