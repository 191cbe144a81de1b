/**
 * The first URL's server binds but fails every search, while the second holds the whole tree: a
 * replica whose base DN is not there (rebuilt and not yet filled, or holding another tree:
 * noSuchObject), or one that refuses searches (slapd `restrict search`: unwillingToPerform). Only
 * busy and unavailable sent a lookup to the next URL; these failed every lookup on the first
 * server, whose connections stayed open, so every recipient was deferred and /readyz said
 * waiting_for_directory for as long as it lasted, the healthy server never asked. Such a result
 * now sends the lookup to another URL once and rests that server, like busy. Real slapd servers,
 * the real service.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { countUserReplies } from '../helpers/socketmap-client.js';

const USERS = 40;
const PEOPLE = 'ou=people,dc=example,dc=com';

function serviceOn(urls: string[], slapd: Slapd): Promise<App> {
  return startApp(
    {
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls, baseDN: PEOPLE, bindDN: slapd.serviceDN } },
    },
    { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
  );
}

/** Socketmap replies to user1..userN, asked one after another, counted by kind (OK, TEMP, NOTFOUND). */
const askUsers = (app: App) => countUserReplies(app.addresses.socketmap!.port, USERS);

describe('a first server that binds but fails every search, a healthy second (real slapd, the real service)', () => {
  let healthy: Slapd;
  let empty: Slapd;
  let restricted: Slapd;
  before(async () => {
    healthy = await startSlapd({ generatedUsers: USERS });
    // A replica without the search base yet.
    empty = await startSlapd({ fixture: false });
    await empty.modify(`dn: ${PEOPLE}\nchangetype: delete\n`);
    // A server that refuses searches: `restrict search` in its database section.
    restricted = await startSlapd({ generatedUsers: USERS });
    const conf = path.join(restricted.dir, 'slapd.conf');
    await restricted.stop();
    await writeFile(conf, (await readFile(conf, 'utf8')).replace('database mdb\n', 'database mdb\nrestrict search\n'));
    await restricted.start();
  });
  after(async () => {
    await healthy?.close();
    await empty?.close();
    await restricted?.close();
  });

  for (const [name, first] of [
    ['its base DN missing (noSuchObject)', () => empty],
    ['searches restricted (unwillingToPerform)', () => restricted],
  ] as const) {
    test(`${name}: valid users are answered by the second server; alone it defers, never unknown`, async () => {
      const both = await serviceOn([first().url, healthy.url], healthy);
      try {
        const counts = await askUsers(both);
        assert.equal(counts.NOTFOUND ?? 0, 0, JSON.stringify(counts));
        assert.ok((counts.OK ?? 0) >= USERS - 2, `answered by the second server: ${JSON.stringify(counts)}`);
        assert.equal(both.health().ready, true, JSON.stringify(both.health()));
      } finally {
        await both.close();
      }
      const alone = await serviceOn([first().url], healthy);
      try {
        assert.deepEqual(await askUsers(alone), { TEMP: USERS });
      } finally {
        await alone.close();
      }
    });
  }
});
