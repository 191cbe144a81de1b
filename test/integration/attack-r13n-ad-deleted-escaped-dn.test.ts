/**
 * A careless admin names contacts and groups with the characters a DN must escape ("Room #2",
 * "Sales; Ops", "a=b", "Doe, Jane") and deletes them later. The incremental sync finds a deletion
 * by the tombstone's last known name and parent, rebuilt as a DN: it must be the DN the listing
 * gave, or the departed recipient stays valid until the next full sync. Active Directory (and
 * Samba) escape '#' anywhere in a value and write ';' and '=' as \3B and \3D, not as RFC 4514's
 * \; and \=. Real Samba DC; the domain admin reads CN=Deleted Objects.
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
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

let dc: SambaDC;
let dir: string;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  dc = await startSambaDC();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13n-ad-escaped-'));
});

after(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await dc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Names that need escaping in a DN, each with its contact's address. */
const NAMES: Array<[string, string]> = [
  ['Plain Name', 'plain@ad.example.com'],
  ['Room #2', 'room2@ad.example.com'],
  ['Sales; Ops', 'salesops@ad.example.com'],
  ['a=b', 'aeqb@ad.example.com'],
  ['Doe, Jane', 'doe.jane@ad.example.com'],
  ['Plus+Minus "Q"', 'plusminus@ad.example.com'],
  ['#Hash first', 'hashfirst@ad.example.com'],
];

describe('AD deletions of entries whose names need escaping in a DN', { concurrency: false }, () => {
  test('each deleted entry drops out at the next incremental sync; the others stay', async () => {
    const ou = `OU=Escaped,${dc.baseDN}`;
    await dc.modify(`dn: ${ou}\nchangetype: add\nobjectClass: organizationalUnit\n`);
    // Added by name through the DC's own escaping: the test does not choose how the DN is spelled.
    // Samba writes no msDS-LastKnownRDN: the name is read from the tombstone's own RDN (unit tests
    // check the spelling rebuilt from msDS-LastKnownRDN, as Windows DCs write it, against these DNs).
    for (const [name, mail] of NAMES) {
      const rdn = `CN=${name.replace(/[,+"\\<>;=#]/g, (c) => `\\${c}`)}`;
      await dc.modify(`dn: ${rdn},${ou}\nchangetype: add\nobjectClass: contact\nmail: ${mail}\n`);
      await dc.modify(`dn: ${rdn} list,${ou}\nchangetype: add\nobjectClass: group\nmail: list.${mail}\n`);
    }
    await dc.modify(`dn: CN=Keeper,${ou}\nchangetype: add\nobjectClass: contact\nmail: keeper@ad.example.com\n`);

    const config = validateConfig({
      domains: ['ad.example.com'],
      directory: { kind: 'ldap', ldap: { urls: [dc.ldapsUrl], baseDN: ou, preset: 'activedirectory', bindDN: dc.adminDN, tls: { caFile: dc.caFile }, timeout: '10s' } },
      sync: { enabled: true, snapshotPath: path.join(dir, 'ad.snapshot'), interval: '1h', incrementalInterval: '1h' },
      log: { level: 'silent' },
    });
    const metrics = new Metrics({ defaultMetrics: false });
    const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: dc.adminPassword, metrics, logger: silentLogger() });
    const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: dc.adminPassword }, silentLogger());
    const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
    closers.push(async () => {
      await sync.stop();
      await directory.close();
    });
    await sync.full();
    const listedDns = new Map<string, string>();
    for (const mail of NAMES.flatMap(([, m]) => [m, `list.${m}`])) {
      assert.equal(sync.current!.get(mail), mail);
      listedDns.set(mail, sync.current!.holders(mail)[0]!);
    }
    console.log(`[r13n] DNs as the DC lists them: ${[...listedDns.values()].join(' | ')}`);

    for (const dn of listedDns.values()) await dc.modify(`dn: ${dn}\nchangetype: delete\n`);
    await sync.incremental();

    const kept = [...listedDns].filter(([mail]) => sync.current!.get(mail) !== undefined).map(([, dn]) => dn);
    console.log(`[r13n] deleted entries still valid after the incremental sync: ${kept.length} of ${listedDns.size} (${kept.join(' | ')})`);
    assert.deepEqual(kept, [], 'every deleted entry is dropped');
    assert.equal(sync.current!.get('keeper@ad.example.com'), 'keeper@ad.example.com');
  });
});
