/**
 * Accounts in awkward states on a real Active Directory DC (Samba).
 *
 * The bind account: AD refuses a bind with invalidCredentials (49) whatever the reason, and tells
 * the reasons apart only by a sub-code in its message (`data 52e` wrong password, `533` disabled,
 * `701` expired, `773` must change its password, `775` locked out). Every refusal said "check
 * directory.ldap.bindDN and the bind password", so an operator facing a locked, disabled or expired
 * account rotated a password that was right. The message now says what AD said, in words.
 *
 * Recipients: an expired, a locked-out and a must-change-password account still receive mail (only
 * the disable bit excludes, as Exchange delivers to such mailboxes); probes that held.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { requireTools } from '../helpers/slapd.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

const PASSWORD = 'Acct-Pass-123';
/** A FILETIME in 2012: the account expired long ago. */
const LONG_AGO = '130000000000000000';

const unicodePwd = (p: string): string => Buffer.from(`"${p}"`, 'utf16le').toString('base64');

function userLdif(dc: SambaDC, name: string, extra: string[] = []): string {
  return [`dn: CN=${name},CN=Users,${dc.baseDN}`, 'objectClass: user', `sAMAccountName: ${name}`, `unicodePwd:: ${unicodePwd(PASSWORD)}`, 'userAccountControl: 512', ...extra, '', ''].join('\n');
}

const mailOf = (name: string): string[] => [`mail: ${name}@ad.example.com`, `proxyAddresses: SMTP:${name}@ad.example.com`];

function directoryAs(dc: SambaDC, name: string, password: string): LdapDirectory {
  const config = validateConfig({
    domains: ['ad.example.com'],
    directory: { kind: 'ldap', ldap: { preset: 'activedirectory', urls: [dc.ldapsUrl], baseDN: dc.baseDN, bindDN: `CN=${name},CN=Users,${dc.baseDN}`, timeout: '5s', tls: { caFile: dc.caFile } } },
  });
  return new LdapDirectory({ config: config.directory.ldap, bindPassword: password, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
}

/** The error message of a probe bound as `name`, or 'bound' when the bind worked. */
async function bindOutcome(dc: SambaDC, name: string, password: string): Promise<string> {
  const directory = directoryAs(dc, name, password);
  try {
    await directory.probe();
    return 'bound';
  } catch (err) {
    return (err as Error).message;
  } finally {
    await directory.close();
  }
}

describe('Active Directory accounts that are expired, locked out, disabled or must change their password', { concurrency: false }, () => {
  let dc: SambaDC;
  before(async () => {
    const tools = requireTools('samba-tool');
    dc = await startSambaDC();
    await dc.modify(userLdif(dc, 'svc-expired', [`accountExpires: ${LONG_AGO}`]));
    await dc.modify(userLdif(dc, 'svc-disabled'));
    await dc.disableUser('svc-disabled');
    await dc.modify(userLdif(dc, 'svc-mustchange', ['pwdLastSet: 0']));
    await dc.modify(userLdif(dc, 'svc-locked'));
    await dc.modify(userLdif(dc, 'leaver', [...mailOf('leaver'), `accountExpires: ${LONG_AGO}`]));
    await dc.modify(userLdif(dc, 'newhire', [...mailOf('newhire'), 'pwdLastSet: 0']));
    await dc.modify(userLdif(dc, 'fumbler', mailOf('fumbler')));
    // Two wrong passwords lock an account for 30 minutes.
    const db = `tdb://${path.join(dc.dir, 'private', 'sam.ldb')}`;
    const settings = ['--account-lockout-threshold=2', '--account-lockout-duration=30', '--reset-account-lockout-after=30'];
    await promisify(execFile)(tools['samba-tool']!, ['domain', 'passwordsettings', 'set', '-H', db, `--configfile=${path.join(dc.dir, 'etc', 'smb.conf')}`, ...settings]);
    for (const name of ['svc-locked', 'fumbler']) for (let i = 0; i < 3; i++) await bindOutcome(dc, name, `wrong-${i}`);
  });
  after(async () => {
    await dc?.close();
  });

  test('a refused bind says what AD said: wrong password, disabled, expired, must change, locked out', async () => {
    const cases: [string, string, RegExp][] = [
      ['rcptgate-svc', 'not-the-password', /data 52e\): wrong password/],
      ['svc-disabled', PASSWORD, /data 533\): the bind account is disabled/],
      ['svc-expired', PASSWORD, /data 701\): the bind account has expired/],
      ['svc-mustchange', PASSWORD, /data 773\): the bind account must change its password/],
      ['svc-locked', PASSWORD, /data 775\): the bind account is locked out/],
    ];
    for (const [name, password, expected] of cases) {
      const message = await bindOutcome(dc, name, password);
      assert.match(message, expected, `${name}: ${message}`);
      // Only a wrong password is a password to check.
      if (!/52e/.test(message)) assert.doesNotMatch(message, /check .*bind password/, name);
    }
    assert.equal(await bindOutcome(dc, 'rcptgate-svc', dc.servicePassword), 'bound');
  });

  test('expired, locked-out and must-change-password recipients still receive; a disabled one does not', async () => {
    const directory = directoryAs(dc, 'rcptgate-svc', dc.servicePassword);
    try {
      for (const name of ['leaver', 'fumbler', 'newhire']) {
        assert.equal((await directory.lookup(`${name}@ad.example.com`)).entry?.canonical, `${name}@ad.example.com`, name);
      }
      assert.match(await bindOutcome(dc, 'fumbler', PASSWORD), /data 775/, 'fumbler is locked out indeed');
      assert.equal((await directory.lookup('dan@ad.example.com')).entry, null, 'the fixture user disabled with samba-tool');
    } finally {
      await directory.close();
    }
  });
});
