/**
 * A careless directory admin renames and moves entries whose DNs need escaping (a comma, a
 * multi-valued RDN, quotes, '#', UTF-8, a trailing space), moves an entry into the base from
 * beside it and between two OUs inside it, and deletes an entry and re-creates its address under
 * another DN, all between two incremental syncs; later deletes the escaped entries. After each
 * step the snapshot, a restart from the snapshot file and the live lookups must agree with the
 * directory. Real slapd; search base ou=people, so ou=outside lies beside it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BASE = 'dc=example,dc=com';
const PEOPLE = `ou=people,${BASE}`;
/** RDN as written in LDIF → address. */
const ESCAPED: Array<[string, string]> = [
  ['cn=Doe\\, John', 'doejohn@example.com'],
  ['cn=Multi+uid=multi', 'multi@example.com'],
  ['cn=\\"Q\\" Quote', 'quote@example.com'],
  ['cn=\\#hash', 'hash@example.com'],
  ['cn=Jürgen Müller', 'juergen@example.com'],
  ['cn=trail\\ ', 'trail@example.com'],
];
const entry = (dn: string, mail: string) => `dn: ${dn}\nobjectClass: extensibleObject\nobjectClass: mailRecipient\nobjectClass: organizationalRole\ncn: x\nmail: ${mail}\n`;

let ldap: Slapd;
let dir: string;
let config: Config;
let directory: LdapDirectory;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  ldap = await startSlapd({
    ldifText: [
      `dn: ou=outside,${BASE}\nobjectClass: organizationalUnit\nou: outside\n`,
      `dn: ou=a,${PEOPLE}\nobjectClass: organizationalUnit\nou: a\n`,
      `dn: ou=b,${PEOPLE}\nobjectClass: organizationalUnit\nou: b\n`,
      ...ESCAPED.map(([rdn, mail]) => entry(`${rdn},${PEOPLE}`, mail)),
      entry(`cn=incomer,ou=outside,${BASE}`, 'incomer@example.com'),
      entry(`cn=between,ou=a,${PEOPLE}`, 'between@example.com'),
      entry(`cn=phoenix,${PEOPLE}`, 'phoenix@example.com'),
    ],
  });
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r13n-moves-'));
  config = validateConfig({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: PEOPLE, bindDN: ldap.serviceDN, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'moves.snapshot'), interval: '1h', incrementalInterval: '1h', maxShrink: 0.9 },
    log: { level: 'silent' },
  });
  directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  closers.push(() => directory.close());
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function syncer(): SnapshotSync {
  const metrics = new Metrics({ defaultMetrics: false });
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
  const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
  closers.push(() => sync.stop());
  return sync;
}

const ADDRESSES = [...ESCAPED.map(([, m]) => m), 'incomer@example.com', 'between@example.com', 'phoenix@example.com', 'bob@example.com'];

/** Every address as [live DN, snapshot DN, restarted snapshot DN] must match; returns the live holders. */
async function agree(sync: SnapshotSync, step: string): Promise<Map<string, string | null>> {
  const restarted = syncer();
  assert.equal(await restarted.load(), true, `${step}: snapshot file loads`);
  const live = new Map<string, string | null>();
  const disagree: string[] = [];
  for (const a of ADDRESSES) {
    const dn = (await directory.lookup(a)).entry?.dn ?? null;
    live.set(a, dn);
    const snap = sync.current!.get(a) === undefined ? null : sync.current!.holders(a).join(' & ');
    const file = restarted.current!.get(a) === undefined ? null : restarted.current!.holders(a).join(' & ');
    if (snap !== dn || file !== dn) disagree.push(`${a}: live ${dn} snapshot ${snap} file ${file}`);
  }
  assert.deepEqual(disagree, [], step);
  return live;
}

describe('moves and renames of entries with escaped DNs through the incremental sync', { concurrency: false }, () => {
  test('snapshot, restarted snapshot and live lookups agree after each step', async () => {
    const sync = syncer();
    await sync.full();
    await sync.incremental();
    const first = await agree(sync, 'after the full sync');
    assert.equal(first.get('incomer@example.com'), null, 'outside the base: not a recipient yet');
    assert.match(first.get('doejohn@example.com')!, /^cn=Doe\\(2C|,) John,ou=people,/); // slapd spells the comma \2C

    // Renamed in place (the escaped RDN kept in the new name), moved in, moved between OUs, re-created elsewhere.
    for (const [rdn] of ESCAPED) await ldap.modify(`dn: ${rdn},${PEOPLE}\nchangetype: modrdn\nnewrdn: ${rdn.replace(/^cn=/, 'cn=New ')}\ndeleteoldrdn: 1\n`);
    await ldap.modify(`dn: cn=incomer,ou=outside,${BASE}\nchangetype: modrdn\nnewrdn: cn=incomer\ndeleteoldrdn: 1\nnewsuperior: ${PEOPLE}\n`);
    await ldap.modify(`dn: cn=between,ou=a,${PEOPLE}\nchangetype: modrdn\nnewrdn: cn=between\ndeleteoldrdn: 1\nnewsuperior: ou=b,${PEOPLE}\n`);
    await ldap.modify(`dn: cn=phoenix,${PEOPLE}\nchangetype: delete\n`);
    await ldap.modify(entry(`cn=phoenix2,ou=b,${PEOPLE}`, 'phoenix@example.com').replace(/^(dn: [^\n]*\n)/, '$1changetype: add\n'));
    await sync.incremental();
    const moved = await agree(sync, 'after the renames and moves');
    assert.equal(moved.get('incomer@example.com'), `cn=incomer,${PEOPLE}`);
    assert.equal(moved.get('between@example.com'), `cn=between,ou=b,${PEOPLE}`);
    assert.equal(moved.get('phoenix@example.com'), `cn=phoenix2,ou=b,${PEOPLE}`);
    assert.match(moved.get('doejohn@example.com')!, /^cn=New Doe\\(2C|,) John,ou=people,/);

    // OpenLDAP deletions wait for the full sync; then every escaped entry is gone everywhere.
    for (const [, dn] of moved) if (dn && dn.startsWith('cn=New ')) await ldap.modify(`dn: ${dn}\nchangetype: delete\n`);
    await sync.full();
    const gone = await agree(sync, 'after the deletions and a full sync');
    for (const [, mail] of ESCAPED) assert.equal(gone.get(mail), null, mail);
  });
});
