/**
 * A canary at an IDN domain on a directory that stores the U-label (SMTPUTF8 systems do; AD's
 * proxyAddresses take any Unicode). Lookups ask for both forms of such a domain, the A-label
 * first, but the canary check asked for the A-label alone: the canary counted as missing, so the
 * directory was reported down (canary_missing) and every unknown address deferred, for good. The
 * canary check, and failback's check of the first server, now find a canary under either form.
 * A real Samba DC, the real service over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

describe('a canary at an IDN domain that the directory stores as a U-label', () => {
  let dc: SambaDC;
  let app: Awaited<ReturnType<typeof startApp>>;
  before(async () => {
    dc = await startSambaDC();
    await dc.modify(
      [`dn: CN=Buecher Info,CN=Users,${dc.baseDN}`, 'objectClass: contact', 'mail: info@bücher.example', 'proxyAddresses: SMTP:info@bücher.example', '', ''].join('\n'),
    );
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['ad.example.com', 'bücher.example'],
        directory: {
          kind: 'ldap',
          canaries: ['info@bücher.example'],
          ldap: { preset: 'activedirectory', urls: [dc.ldapsUrl], baseDN: dc.baseDN, bindDN: dc.serviceDN, timeout: '5s', tls: { caFile: dc.caFile } },
        },
        log: { level: 'silent' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    await dc?.close();
  });

  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, encodeURIComponent(address));

  test('the canary is found, the directory is up, and unknown addresses are unknown', async () => {
    assert.equal(await ask('info@bücher.example'), 'valid/directory', 'lookups find it under the U-label');
    assert.equal(await ask('nobody@ad.example.com'), 'unknown/directory');
    assert.equal(await ask('nobody@bücher.example'), 'unknown/directory');
    assert.equal(await ask('jane@ad.example.com'), 'valid/directory');
    const health = app.health();
    assert.equal(health.reasonCode, undefined, JSON.stringify(health));
    assert.equal(health.directory.up, true);
  });
});
