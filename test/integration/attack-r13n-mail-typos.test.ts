/**
 * Mail values a careless admin typed badly in OpenLDAP, and what each answers: live, from the
 * snapshot and from its file after a restart the answer must be the same. Case and spaces
 * around the value are what slapd's matching looks past, so the meant address is valid; every
 * other value (an `SMTP:` or `mailto:` prefix, two addresses in one value, a control character,
 * a trailing dot, angle brackets, quotes, a space inside) is found by no search for the address
 * meant, and matches nothing. Real slapd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { parseAddress } from '../../src/recipient/address.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** Value as stored → addresses an admin may have meant, and whether they are valid. */
const VALUES: Array<[string, string[], boolean]> = [
  ['SMTP:smtp1@example.com', ['smtp1@example.com'], false],
  ['mailto:mt@example.com', ['mt@example.com'], false],
  ['a1@example.com, a2@example.com', ['a1@example.com', 'a2@example.com'], false],
  ['b1@example.com;b2@example.com', ['b1@example.com', 'b2@example.com'], false],
  ['nl1@example.com\n', ['nl1@example.com'], false],
  ['nl2@example.com\r\n', ['nl2@example.com'], false],
  ['\ttab@example.com\t', ['tab@example.com'], false],
  ['dot@example.com.', ['dot@example.com'], false],
  ['in  ner@example.com', ['"in ner"@example.com', '"in  ner"@example.com', 'inner@example.com'], false],
  ['<angle@example.com>', ['angle@example.com'], false],
  ['"quoted"@example.com', ['quoted@example.com'], false],
  ['nbsp\u00a0@example.com', ['nbsp@example.com'], false],
  ['two@@example.com', ['two@example.com'], false],
  ['sp @example.com', ['sp@example.com'], false],
  ['sp2@ example.com', ['sp2@example.com'], false],
  ['dom2@example .com', ['dom2@example.com'], false],
  ['Upper@EXAMPLE.COM', ['upper@example.com'], true],
  ['  lead@example.com  ', ['lead@example.com'], true],
  ['dom@Example.Com', ['dom@example.com'], true],
];

let ldap: Slapd;
let dir: string;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  ldap = await startSlapd({
    ldifText: VALUES.map(([v], i) => `dn: uid=typo${i},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: typo${i}\ncn: typo${i}\nsn: t\nmail:: ${b64(v)}\n`),
  });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13n-typos-'));
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('badly typed mail values', () => {
  test('answer the same live, from the snapshot and from its file; only case and outer spaces are looked past', async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'typos.snapshot'), interval: '1h', incrementalInterval: '1h' },
      log: { level: 'silent' },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
    closers.push(() => directory.close());
    const syncer = () => {
      const s = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes: null });
      closers.push(() => s.stop());
      return s;
    };
    const sync = syncer();
    await sync.full();
    const restarted = syncer();
    assert.equal(await restarted.load(), true);

    const wrong: string[] = [];
    for (const [value, meant, valid] of VALUES) {
      for (const address of meant) {
        const parsed = parseAddress(address);
        assert.ok(parsed.ok, address);
        const key = parsed.value.address;
        const live = (await directory.lookup(key)).entry !== null;
        const snapshot = sync.current!.get(key) !== undefined;
        const file = restarted.current!.get(key) !== undefined;
        if (live !== valid || snapshot !== valid || file !== valid) wrong.push(`${JSON.stringify(value)} → ${key}: live ${live} snapshot ${snapshot} file ${file}, expected ${valid}`);
      }
    }
    assert.deepEqual(wrong, []);
  });
});
