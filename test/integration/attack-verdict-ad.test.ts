/**
 * Batched lookups against proxyAddresses a careless Exchange administrator leaves on a real AD DC
 * (Samba): a space after `smtp:`, trailing white space, a tab, odd-case prefixes, X400 values,
 * non-ASCII compatibility characters. A batch must answer each key exactly as its own search.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('batched lookups against odd proxyAddresses on an AD DC', () => {
  let dc: SambaDC;
  before(async () => {
    dc = await startSambaDC();
    const contact = (cn: string, ...lines: string[]): string => `dn: CN=${cn},CN=Users,${dc.baseDN}\nobjectClass: contact\ncn: ${cn}\n${lines.join('\n')}\n`;
    await dc.modify(
      [
        contact(
          'Spacey',
          'proxyAddresses: SMTP:spacey@ad.example.com',
          `proxyAddresses:: ${b64('smtp:trail@ad.example.com ')}`,
          `proxyAddresses:: ${b64('smtp:tab@ad.example.com\t')}`,
          `proxyAddresses:: ${b64('smtp: lead@ad.example.com')}`,
        ),
        contact('Oddcase', 'proxyAddresses: SmTp:odd@ad.example.com', 'proxyAddresses: x400:c=US;a= ;p=ADEX;o=Exchange;s=Odd', 'proxyAddresses: SMTP:odd.primary@ad.example.com'),
        contact('Unicode', `proxyAddresses:: ${b64('SMTP:ﬁnance@ad.example.com')}`, `mail:: ${b64('ｆｕｌｌ@ad.example.com')}`),
      ].join('\n'),
    );
  });
  after(async () => {
    await dc?.close();
  });

  function directoryFor(ldap: Record<string, unknown>): LdapDirectory {
    const config = validateConfig({
      domains: ['ad.example.com'],
      directory: { kind: 'ldap', ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s', ...ldap } },
    });
    return new LdapDirectory({ config: config.directory.ldap, bindPassword: dc.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  }

  test('a batch answers each key as its own search does', async () => {
    const keys = ['spacey@ad.example.com', 'trail@ad.example.com', 'tab@ad.example.com', 'lead@ad.example.com', 'odd@ad.example.com', 'odd.primary@ad.example.com'];
    keys.push('finance@ad.example.com', 'full@ad.example.com', 'jane@ad.example.com', 'dan@ad.example.com', 'nobody@ad.example.com');
    const singles = directoryFor({ batchSize: 1 });
    // One connection, one search at a time: the lookups queue and leave as one batch.
    const batched = directoryFor({ batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 });
    try {
      const answer = async (d: LdapDirectory, k: string): Promise<string | null> => {
        const a = await d.lookup(k);
        return a.entry ? `${a.entry.dn.split(',')[0]} ${a.entry.canonical}` : null;
      };
      const expected: (string | null)[] = [];
      for (const k of keys) expected.push(await answer(singles, k));
      // What the DC itself says: outer white space of a value is insignificant, a space inside it is not.
      assert.deepEqual(expected.slice(0, 6), [
        'CN=Spacey spacey@ad.example.com',
        'CN=Spacey spacey@ad.example.com',
        null,
        null,
        'CN=Oddcase odd.primary@ad.example.com',
        'CN=Oddcase odd.primary@ad.example.com',
      ]);
      for (let round = 0; round < 3; round++) {
        const got = await Promise.all(keys.map((k) => answer(batched, k)));
        assert.deepEqual(got, expected, `round ${round}: batching changed an answer`);
      }
    } finally {
      await singles.close();
      await batched.close();
    }
  });
});
