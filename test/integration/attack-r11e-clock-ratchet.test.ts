/**
 * The OpenLDAP clock estimate only ever moves forward: the directory's time is taken as the
 * greatest (change stamp − our monotonic time when read). One entry stamped ahead of the clock
 * that stamps the changes to come (written by a provider whose clock ran ahead before NTP put it
 * right, or by the other provider of a mirror-mode pair, or with a hand-set modifyTimestamp)
 * makes the directory's clock look ahead of ours for good; the window then starts at our last
 * start minus a minute, and changes stamped by a clock that lags ours by more than that minute
 * are missed until the full sync. Real slapd, stamps written with the Relax Rules control.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { requireTools, startSlapd, type Slapd } from '../helpers/slapd.js';

const tools = requireTools('ldapmodify', 'ldapsearch');
let ldap: Slapd;
let dir: string;

const stamp = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');

const relaxed = (ldif: string): Promise<void> => ldap.modifyRelaxed(ldif);
const modify = (dn: string, body: string, offsetMs: number) => `dn: ${dn}\nchangetype: modify\n${body ? `${body}-\n` : ''}replace: modifyTimestamp\nmodifyTimestamp: ${stamp(offsetMs)}\n\n`;

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r11e-ratchet-'));
  // Every entry as a provider whose clock lags 5 minutes stamped it.
  const out = await new Promise<string>((resolve, reject) =>
    execFile(tools.ldapsearch!, ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', ldap.url, '-D', ldap.adminDN, '-w', ldap.adminPassword, '-b', ldap.baseDN, '(objectClass=*)', '1.1'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const dns = out.split('\n').filter((l) => l.startsWith('dn: ')).map((l) => l.slice(4));
  await relaxed(dns.map((dn) => modify(dn, '', -5 * 60_000)).join(''));
});
after(async () => {
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const ahead of [false, true]) test(`changes stamped 5 minutes behind are found${ahead ? ' after one entry was stamped 10 minutes ahead' : ''}`, async () => {
  const config = validateConfig({
    domains: ['example.com', 'example.org'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, `snap-${ahead}`), interval: '1h', incrementalInterval: '1h' },
    log: { level: 'silent' },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger());
  const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes });
  try {
    // Written while one provider's clock ran 10 minutes ahead.
    if (ahead) await relaxed(modify('uid=alice,ou=people,dc=example,dc=com', '', 10 * 60_000));
    await sync.full();
    await sync.incremental();
    // Now the changes come stamped by a clock 5 minutes behind ours.
    await relaxed(modify('uid=bob,ou=people,dc=example,dc=com', `add: mail\nmail: bob.later${ahead}@example.com\n`, -5 * 60_000));
    await sync.incremental();
    assert.equal(sync.current!.get(`bob.later${ahead}@example.com`), 'bob@example.com', "bob's new address is in the snapshot after the next incremental sync");
  } finally {
    await sync.stop();
    await directory.close();
  }
});
