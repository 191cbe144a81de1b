/**
 * The longest legal address and one octet more, through the socketmap against a real slapd: a
 * 64-octet local part at a 189-octet domain (254 octets in all) is found, in any case and with a
 * trailing dot on the domain; one octet more in the local part or the domain is invalid
 * (`NOTFOUND` from `recipients`, 501 5.1.3 from `access`), never looked up. Probes that held.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const LOCAL = 'l'.repeat(64);
/** 63 + 1 + 63 + 1 + 57 + 4 = 189 octets: with the local part and "@", 254. */
const DOMAIN = `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(57)}.com`;
const LONGEST = `${LOCAL}@${DOMAIN}`;

describe('the longest legal address and one octet more', () => {
  let ldap: Slapd;
  let app: Awaited<ReturnType<typeof startApp>>;
  let client: SocketmapClient;
  before(async () => {
    assert.equal(Buffer.byteLength(LONGEST), 254);
    ldap = await startSlapd({ ldifText: [`dn: uid=longest,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: longest\ncn: L\nsn: L\nmail: ${LONGEST}`] });
    app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['example.com', DOMAIN, `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(58)}.com`],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
        log: { level: 'silent' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    client = await SocketmapClient.connect(app.addresses.socketmap!.port);
  });
  after(async () => {
    client?.close();
    await app?.close();
    await ldap?.close();
  });

  test('254 octets are found; 255 are invalid', async () => {
    assert.equal(await client.query('recipients', LONGEST), `OK ${LONGEST}`);
    assert.equal(await client.query('recipients', LONGEST.toUpperCase()), `OK ${LONGEST}`);
    assert.equal(await client.query('recipients', `${LONGEST}.`), `OK ${LONGEST}`, 'a trailing dot is not counted');
    assert.equal(await client.query('recipients', `l${LONGEST}`), 'NOTFOUND ', '65-octet local part');
    assert.match(await client.query('access', `l${LONGEST}`), /^OK 501 5\.1\.3/);
    const longerDomain = `${LOCAL}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(58)}.com`;
    assert.equal(await client.query('recipients', longerDomain), 'NOTFOUND ', '255-octet address');
    assert.match(await client.query('access', longerDomain), /^OK 501 5\.1\.3/);
    assert.equal(await client.query('recipients', `${'l'.repeat(63)}@${DOMAIN}`), 'NOTFOUND ', 'one octet less is another address');
  });
});
