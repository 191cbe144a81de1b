/**
 * Incremental syncs against a directory whose clock lags ours by five minutes, on a real slapd.
 *
 * slapd's clock cannot be set here (no faketime), so the test stamps honestly what a lagging
 * server would: every entry's modifyTimestamp is rewritten five minutes into the past (the Relax
 * Rules control lets the rootdn set it, on adds and modifies), and so is every change the test
 * makes. A change made right after a sync is then stamped four minutes before that sync started,
 * by our clock: asked "changed since our last start minus a minute", the directory never lists it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import type { Directory, DirectoryRecord } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotSync } from '../../src/snapshot/sync.js';
import { startApp } from '../helpers/app.js';
import { startCutProxy } from '../helpers/cut-proxy.js';
import { protocolOpOffset, startFaultProxy, withResultCode } from '../helpers/fault-proxy.js';
import { DISABLED_EXCLUDING_FILTER, requireTools, startSlapd, type Slapd } from '../helpers/slapd.js';

const run = promisify(execFile);
const LAG_MS = 5 * 60_000;
const tools = requireTools('ldapsearch', 'ldapmodify');
let ldap: Slapd;
let dir: string;
const closers: Array<() => Promise<void>> = [];

/** The lagging server's time now, as slapd writes it. */
function laggedStamp(): string {
  return new Date(Date.now() - LAG_MS).toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** Applies `ldif` (changetype records) as the rootdn with the Relax Rules control, so a record may carry its own modifyTimestamp. */
const relaxed = (ldif: string): Promise<void> => ldap.modifyRelaxed(ldif);

/** A modify stamped by the lagging clock. */
function lagged(dn: string, body: string): string {
  return `dn: ${dn}\nchangetype: modify\n${body ? `${body}-\n` : ''}replace: modifyTimestamp\nmodifyTimestamp: ${laggedStamp()}\n\n`;
}

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-lagging-clock-'));
  // Every entry as the lagging server would have stamped it.
  const { stdout } = await run(tools.ldapsearch!, ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', ldap.url, '-D', ldap.adminDN, '-w', ldap.adminPassword, '-b', ldap.baseDN, '(objectClass=*)', '1.1']);
  const dns = stdout.split('\n').filter((l) => l.startsWith('dn: ')).map((l) => l.slice(4));
  assert.ok(dns.length > 10, 'the fixture is loaded');
  await relaxed(dns.map((dn) => `dn: ${dn}\nchangetype: modify\nreplace: modifyTimestamp\nmodifyTimestamp: ${laggedStamp()}\n\n`).join(''));
});

after(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function configFor(name: string, detectRemovals: boolean): Config {
  return validateConfig({
    domains: ['example.com', 'example.org'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, name), interval: '1h', incrementalInterval: '1h', detectRemovals },
    log: { level: 'silent' },
  });
}

/**
 * A syncer on the real directory; `listed` counts the entries its incremental listings returned.
 * `now` is our wall clock; `mono` the monotonic clock the directory's is told by.
 */
function syncer(config: Config, now?: () => number, listed: number[] = [], mono?: () => number): SnapshotSync {
  const metrics = new Metrics({ defaultMetrics: false });
  const real = new LdapDirectory({ config: config.directory.ldap, bindPassword: ldap.servicePassword, metrics, logger: silentLogger() });
  const directory = Object.create(real) as Directory;
  directory.listAll = async function* (options) {
    let n = 0;
    for await (const r of real.listAll(options) as AsyncIterable<DirectoryRecord>) {
      n++;
      yield r;
    }
    if (options?.changedSince) listed.push(n);
  };
  const changes = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger(), mono);
  const sync = new SnapshotSync({ config, directory, metrics, logger: silentLogger(), onSnapshot: () => undefined, changes, ...(now ? { now } : {}) });
  const close = async () => {
    await sync.stop();
    await real.close();
  };
  closers.push(close);
  return sync;
}

describe('incremental syncs against a directory whose clock lags ours by five minutes', { concurrency: false }, () => {
  for (const detectRemovals of [true, false]) {
    test(`a user added and an address changed after a sync are in the next incremental one (detectRemovals ${detectRemovals})`, async () => {
      const sync = syncer(configFor(`inc-${detectRemovals}`, detectRemovals));
      await sync.full();
      assert.equal(sync.current!.get('bob@example.com'), 'bob@example.com');
      const n = detectRemovals ? 1 : 2;
      await relaxed(
        `dn: uid=late${n},ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\ncn: Late\nsn: Late\nuid: late${n}\nmail: late${n}@example.com\nmodifyTimestamp: ${laggedStamp()}\ncreateTimestamp: ${laggedStamp()}\n\n` +
          lagged('uid=bob,ou=people,dc=example,dc=com', `add: mail\nmail: bob.new${n}@example.com\n`),
      );
      await sync.incremental();
      assert.equal(sync.current!.get(`late${n}@example.com`), `late${n}@example.com`, 'the user added after the full sync is in the snapshot');
      assert.equal(sync.current!.get(`bob.new${n}@example.com`), 'bob@example.com', "bob's new address is in the snapshot");
      // And the window moves on with the directory's clock: a second change is found too.
      await relaxed(lagged(`uid=late${n},ou=people,dc=example,dc=com`, `add: mail\nmail: later${n}@example.com\n`));
      await sync.incremental();
      assert.equal(sync.current!.get(`later${n}@example.com`), `late${n}@example.com`);
    });
  }

  test('a user disabled, a user renamed and a leaver moved out of the base after a sync drop out at the next incremental one', async () => {
    const base = configFor('moves', true);
    const people = 'ou=people,dc=example,dc=com';
    const config = validateConfig({ ...base, directory: { ...base.directory, ldap: { ...base.directory.ldap, baseDN: people, filter: DISABLED_EXCLUDING_FILTER } } });
    const sync = syncer(config);
    await sync.full();
    for (const u of ['user1', 'user2', 'user3']) assert.equal(sync.current!.get(`${u}@example.com`), `${u}@example.com`);
    await relaxed(`dn: ou=leavers,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: leavers\nmodifyTimestamp: ${laggedStamp()}\n\n`);
    await relaxed(lagged(`uid=user1,${people}`, 'add: employeeType\nemployeeType: disabled\n'));
    // modrdn stamps the entry by slapd's own clock: each is stamped again as the lagging server would have.
    await relaxed(`dn: uid=user2,${people}\nchangetype: modrdn\nnewrdn: uid=user2-renamed\ndeleteoldrdn: 1\n\n` + lagged(`uid=user2-renamed,${people}`, ''));
    await relaxed(`dn: uid=user3,${people}\nchangetype: modrdn\nnewrdn: uid=user3\ndeleteoldrdn: 1\nnewsuperior: ou=leavers,dc=example,dc=com\n\n` + lagged('uid=user3,ou=leavers,dc=example,dc=com', ''));
    await sync.incremental();
    const s = sync.current!;
    assert.equal(s.get('user1@example.com'), undefined, 'the disabled user');
    assert.deepEqual(s.holders('user2@example.com'), [`uid=user2-renamed,${people}`], 'the renamed user, under the new DN only');
    assert.equal(s.get('user3@example.com'), undefined, 'the leaver moved out of the base');
    assert.equal(s.get('user4@example.com'), 'user4@example.com');
  });

  test('the service answers a user added after a sync from its snapshot once an incremental sync ran', async () => {
    const app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com', 'example.org'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
        sync: { enabled: true, snapshotPath: path.join(dir, 'service'), interval: '1h', incrementalInterval: '1s' },
        log: { level: 'silent' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    closers.push(() => app.close());
    const source = async (address: string) => ((await (await fetch(`http://127.0.0.1:${app.addresses.http!.port}/v1/recipients/${address}`)).json()) as { source: string }).source;
    const waitFor = async (address: string): Promise<boolean> => {
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) if ((await source(address)) === 'snapshot') return true;
      return false;
    };
    assert.ok(await waitFor('bob@example.com'), 'the first full sync is served');
    await relaxed(`dn: uid=newcomer,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\ncn: N\nsn: N\nuid: newcomer\nmail: newcomer@example.com\nmodifyTimestamp: ${laggedStamp()}\n\n`);
    assert.ok(await waitFor('newcomer@example.com'), 'the user added after the full sync reached the snapshot within 30 s (incremental syncs every second)');
  });

  test("an idle directory's window moves on with the clocks: its last changes are not re-listed by every incremental sync", async () => {
    // Our clocks jump 3 minutes between syncs (the directory's stamps stay where they are: nothing
    // changes meanwhile), as if the syncs ran minutes apart.
    let shift = 0;
    const listed: number[] = [];
    const sync = syncer(configFor('idle', true), () => Date.now() + shift, listed, () => performance.now() + shift);
    await sync.full();
    await sync.incremental();
    assert.ok(listed[0]! > 0, 'the changes of the last minute are listed');
    for (let i = 0; i < 3; i++) {
      shift += 3 * 60_000;
      await sync.incremental();
    }
    assert.deepEqual(listed.slice(2), [0, 0], `three minutes on, nothing is listed again (${listed.join(', ')})`);
    assert.equal(sync.current!.get('bob@example.com'), 'bob@example.com');
  });

  test('our wall clock stepped forward by ten minutes between syncs hides no change', async () => {
    let shift = 0;
    const sync = syncer(configFor('stepped', true), () => Date.now() + shift);
    await sync.full();
    await sync.incremental();
    shift = 10 * 60_000;
    await sync.incremental();
    await relaxed(lagged('uid=dave,ou=people,dc=example,dc=com', 'add: mail\nmail: dave.new@example.org\n'));
    await sync.incremental();
    assert.equal(sync.current!.get('dave.new@example.org'), 'dave@example.org', 'the change made after the step');
  });

  test('a rootDSE the service account may not read leaves the change stamps to tell the time', async () => {
    // A server that refuses the rootDSE: its entry dropped and the search answered insufficientAccessRights (50).
    const proxy = await startFaultProxy(ldap.port);
    closers.push(() => proxy.close());
    let refuseNextDone = false;
    proxy.transform = (msg) => {
      const op = protocolOpOffset(msg);
      if (msg[op] === 0x64) {
        const name = op + 2 + (msg[op + 1]! & 0x80 ? msg[op + 1]! & 0x7f : 0);
        if (msg[name] === 0x04 && msg[name + 1] === 0x00) {
          refuseNextDone = true;
          return null;
        }
      }
      if (msg[op] === 0x65 && refuseNextDone) {
        refuseNextDone = false;
        return withResultCode(msg, 50);
      }
      return msg;
    };
    const base = configFor('no-rootdse', true);
    const sync = syncer(validateConfig({ ...base, directory: { ...base.directory, ldap: { ...base.directory.ldap, urls: [proxy.url] } } }));
    await sync.full();
    await relaxed(lagged('uid=carol,ou=people,dc=example,dc=com', 'add: mail\nmail: carol.private@example.com\n'));
    await sync.incremental();
    assert.equal(sync.current!.get('carol.private@example.com'), 'Carol.Mixed@example.com', 'the change made after the full sync');
  });

  test('after a restart from the snapshot file, the first incremental sync finds what changed while it was down', async () => {
    const config = configFor('restart', true);
    const first = syncer(config);
    await first.full();
    await first.stop();
    await relaxed(lagged('uid=carol,ou=people,dc=example,dc=com', 'add: mail\nmail: carol.new@example.com\n'));
    const second = syncer(config);
    assert.ok(await second.load(), 'the file is loaded');
    assert.equal(second.current!.get('carol.new@example.com'), undefined);
    await second.incremental();
    assert.equal(second.current!.get('carol.new@example.com'), 'Carol.Mixed@example.com', 'the change made while the service was down');
  });

  test('a base where no entry shows a change stamp is looked through once, not at every sync', async () => {
    await ldap.modify('dn: ou=nobody,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: nobody\n');
    const proxy = await startCutProxy(ldap.port);
    closers.push(() => proxy.close());
    const base = configFor('stampless', true);
    const config = validateConfig({ ...base, directory: { ...base.directory, ldap: { ...base.directory.ldap, urls: [proxy.url], baseDN: 'ou=nobody,dc=example,dc=com', scope: 'one' } } });
    const sync = syncer(config);
    const searches = () => proxy.connections.reduce((n, c) => n + c.searches, 0);
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = searches();
      await assert.rejects(sync.full(), 'a listing of nothing is refused');
      counts.push(searches() - before);
    }
    assert.ok(counts[0]! > 5, `the first sync looked back in steps (${counts[0]} searches)`);
    // Later ones: the rootDSE, the base entry's identifier and the listing.
    assert.ok(counts[1]! <= 3 && counts[2]! <= 3, `later syncs do not (${counts.join(', ')} searches)`);
  });
});
