/**
 * Exchange recipients the `activedirectory` preset must find, through a real Postfix backup MX
 * (relay_recipient_maps = rcptgate's socketmap) in front of a real AD DC (Samba) whose schema
 * carries the Exchange pieces these objects need:
 * - a dynamic distribution group: class msExchDynamicDistributionList, which derives from `top`,
 *   not from `group`, so a filter on the user/group/contact/publicFolder classes misses it;
 * - hybrid "remote" shared, room and equipment mailboxes (msExchRecipientTypeDetails
 *   34359738368, 8589934592, 17179869184): disabled accounts by design, like their on-premises
 *   counterparts (4, 16, 32), whose mail the organisation routes to the cloud.
 * A disabled account whose mailbox is an ordinary user mailbox (1) stays unknown.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { requirePostfixTools, startPostfix, swaks, type PostfixInstance } from '../helpers/postfix.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

/** Exchange's own schema identifiers for the two pieces we add. */
function exchangeSchemaLdif(schemaDN: string): string {
  return `dn: CN=ms-Exch-Recipient-Type-Details,${schemaDN}
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Recipient-Type-Details
attributeID: 1.2.840.113556.1.4.7000.102.50609
lDAPDisplayName: msExchRecipientTypeDetails
attributeSyntax: 2.5.5.16
oMSyntax: 65
isSingleValued: TRUE

dn:
changetype: modify
add: schemaUpdateNow
schemaUpdateNow: 1
-

dn: CN=User,${schemaDN}
changetype: modify
add: mayContain
mayContain: msExchRecipientTypeDetails
-

dn: CN=ms-Exch-Dynamic-Distribution-List,${schemaDN}
objectClass: top
objectClass: classSchema
cn: ms-Exch-Dynamic-Distribution-List
governsID: 1.2.840.113556.1.5.7000.62.30096
lDAPDisplayName: msExchDynamicDistributionList
subClassOf: top
objectClassCategory: 1
rDNAttID: cn
mayContain: mail
mayContain: proxyAddresses
mayContain: displayName
mayContain: msExchRecipientTypeDetails
possSuperiors: container
possSuperiors: organizationalUnit
defaultSecurityDescriptor: D:(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;SY)(A;;RPLCLORC;;;AU)

dn:
changetype: modify
add: schemaUpdateNow
schemaUpdateNow: 1
-
`;
}

/** A disabled user (userAccountControl 514) with a mailbox of the given type. */
function mailbox(baseDN: string, name: string, typeDetails: string): string {
  return `dn: CN=${name},CN=Users,${baseDN}
objectClass: user
sAMAccountName: ${name}
mail: ${name}@ad.example.com
proxyAddresses: SMTP:${name}@ad.example.com
userAccountControl: 514
msExchRecipientTypeDetails: ${typeDetails}
`;
}

describe('Exchange recipients through a Postfix backup MX and the activedirectory preset', { timeout: 180_000 }, () => {
  let dc: SambaDC;
  let app: App;
  let mx: PostfixInstance;

  before(async () => {
    requirePostfixTools();
    dc = await startSambaDC();
    // Schema changes over LDAP need this switch; a restart makes Samba read it.
    const conf = path.join(dc.dir, 'etc', 'smb.conf');
    await writeFile(conf, (await readFile(conf, 'utf8')).replace('[global]\n', '[global]\n\tdsdb:schema update allowed = true\n'));
    await dc.setStrongAuthRequired(false);
    await dc.setStrongAuthRequired(true);
    await dc.modify(exchangeSchemaLdif(`CN=Schema,CN=Configuration,${dc.baseDN}`));
    await dc.modify(
      [
        `dn: CN=All Staff,CN=Users,${dc.baseDN}\nobjectClass: msExchDynamicDistributionList\ncn: All Staff\nmail: allstaff@ad.example.com\nproxyAddresses: SMTP:allstaff@ad.example.com\nproxyAddresses: smtp:everyone@ad.example.com\nmsExchRecipientTypeDetails: 2048\n`,
        mailbox(dc.baseDN, 'cloudshared', '34359738368'),
        mailbox(dc.baseDN, 'cloudroom', '8589934592'),
        mailbox(dc.baseDN, 'cloudkit', '17179869184'),
        mailbox(dc.baseDN, 'shared', '4'),
        mailbox(dc.baseDN, 'leaver', '1'),
      ].join('\n'),
    );
    app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
        domains: ['ad.example.com'],
        directory: {
          kind: 'ldap',
          ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' },
        },
        log: { level: 'warn' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword },
    );
    const map = (name: string) => `socketmap:inet:127.0.0.1:${app.addresses.socketmap!.port}:${name}`;
    mx = await startPostfix({ mainCf: { relay_domains: map('domains'), relay_recipient_maps: map('recipients') } });
  });
  after(async () => {
    await mx?.close();
    await app?.close();
    await dc?.close();
  });

  test('a dynamic distribution group and hybrid remote shared/room/equipment mailboxes get 250; a disabled user mailbox gets 550', async () => {
    const to = {
      'allstaff@ad.example.com': 250,
      'everyone@ad.example.com': 250,
      'cloudshared@ad.example.com': 250,
      'cloudroom@ad.example.com': 250,
      'cloudkit@ad.example.com': 250,
      'shared@ad.example.com': 250,
      'leaver@ad.example.com': 550,
      'nobody@ad.example.com': 550,
      'jane@ad.example.com': 250,
    };
    const r = await swaks({ port: mx.port, from: 'sender@client.test', to: Object.keys(to) });
    const got = Object.fromEntries(r.rcpt.map((x) => [x.address, x.reply?.code ?? null]));
    assert.deepEqual(got, to, r.transcript);
    assert.equal(r.data?.code, 250, r.transcript);
  });
});
