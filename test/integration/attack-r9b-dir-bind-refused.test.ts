/**
 * Servers of one directory need not agree on the bind account. The password was rotated on the
 * provider and in rcptgate, and the replica listed first has not received it yet (replication
 * lag, or replication broken for hours); or the account is locked or missing on one server only
 * (a per-server ppolicy lockout, a server rebuilt from an old backup). A bind refused by the
 * first URL ended the connection attempt there: every lookup deferred (and a reload with the new
 * password was refused) while the next URL would have answered. Real slapd servers; the
 * "replica" is a second slapd that still holds the old password. Nothing else showed such a
 * replica while the other server answered, so its refusals are counted per server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { closedPortUrl, startSlapd, type Slapd } from '../helpers/slapd.js';

const ROTATED = 'rotated-secret';

function setPassword(slapd: Slapd, password: string): Promise<void> {
  return slapd.modify(`dn: ${slapd.serviceDN}\nchangetype: modify\nreplace: userPassword\nuserPassword: ${password}\n`);
}

function service(urls: string[], slapd: Slapd, password: string, ldap: Record<string, unknown> = {}) {
  const config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls, baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s', ...ldap } },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: password, metrics, logger: silentLogger() });
  const engine = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
  return { directory, engine, metrics };
}

async function bindRefusals(metrics: Metrics): Promise<Map<string, number>> {
  return new Map((await metrics.directoryAuthRefused.get()).values.map((v) => [String(v.labels.server), v.value]));
}

describe('a server that refuses the bind account while another accepts it', () => {
  let replica: Slapd;
  let provider: Slapd;
  before(async () => {
    [replica, provider] = await Promise.all([startSlapd(), startSlapd()]);
    await setPassword(provider, ROTATED);
  });
  after(async () => {
    await replica?.close();
    await provider?.close();
  });

  test('lookups and the probe are answered by the server that accepts it, unknown stays unknown', async () => {
    const { directory, engine, metrics } = service([replica.url, provider.url], provider, ROTATED);
    try {
      await directory.probe();
      const addresses = ['alice@example.com', 'bob@example.com', 'nobody@example.com', ...Array.from({ length: 30 }, (_, i) => `gone${i}@example.com`)];
      const verdicts = await Promise.all(addresses.map(async (a) => (await engine.lookup(a, { frontend: 'http' })).verdict));
      assert.deepEqual(verdicts, addresses.map((a) => (a.startsWith('alice') || a.startsWith('bob') ? 'valid' : 'unknown')));
      assert.equal((await directory.lookup('carol.mixed@example.com')).server, provider.url);
      const refusals = await bindRefusals(metrics);
      // By position in directory.ldap.urls: the replica is first.
      assert.ok((refusals.get('1') ?? 0) >= 1, `the replica's refusals are counted: ${JSON.stringify([...refusals])}`);
      assert.equal(refusals.get('2'), undefined, 'the server that accepts the bind counts none');
    } finally {
      await directory.close();
    }
  });

  test('when no server accepts it, the error is the refusal (a configuration error), not an outage', async () => {
    const { directory } = service([provider.url, await closedPortUrl()], provider, 'not-the-password');
    try {
      for (const attempt of [directory.lookup('alice@example.com'), directory.probe()]) {
        const err = await attempt.then(() => assert.fail('a refused bind answered'), (e: unknown) => e);
        assert.ok(err instanceof DirectoryError, String(err));
        assert.equal(err.code, ErrorCodes.DIRECTORY_AUTH, err.message);
        assert.match(err.message, /invalidCredentials/);
      }
    } finally {
      await directory.close();
    }
  });
});
