/**
 * A directory (or whatever sits in front of it) that answers lookups the way a broken or hostile
 * LDAP server would: result codes slapd gives only under limits, ACLs or load (rewritten by a
 * proxy on slapd's real SearchResultDone), an entry with 100,000 values or one value of 40 MB,
 * answers under a message ID nobody asked. A user who exists is never 550; an address is 550
 * only when the directory really said "no such entry"; everything else is a directory error
 * (tempfail), within the lookup timeout. Real slapd behind the proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { DirectoryError } from '../../src/errors.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { protocolOpOffset, startFaultProxy, withResultCode, type FaultProxy } from '../helpers/fault-proxy.js';
import { messageIdOf, searchDone, searchEntry } from '../helpers/r13k-ber.js';

const TIMEOUT_MS = 4_000;
const ADDRESSES = ['bob@example.com', 'nobody@example.com', 'ally@example.com', 'staff@example.com'];
const TRUTH = ['bob@example.com', null, 'alice@example.com', 'staff@example.com'];
const isEntry = (msg: Buffer): boolean => msg[protocolOpOffset(msg)] === 0x64;

/** How each lookup ended: the canonical address, null (no such entry) or 'error'. */
async function outcomes(directory: LdapDirectory, addresses: string[]): Promise<(string | null)[]> {
  const settled = await Promise.allSettled(addresses.map((a) => directory.lookup(a)));
  return settled.map((s) => {
    if (s.status === 'fulfilled') return s.value.entry?.canonical ?? null;
    assert.ok(s.reason instanceof DirectoryError, `a DirectoryError, not ${String(s.reason)}`);
    return 'error';
  });
}

/** The same asked one after another (single searches, never batched). */
async function alone(directory: LdapDirectory, addresses: string[]): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (const a of addresses) out.push(...(await outcomes(directory, [a])));
  return out;
}

describe('a directory that answers lookups like a broken or hostile server', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 2 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  const healthy = async (what: string): Promise<void> => {
    proxy.transform = null;
    assert.deepEqual(await outcomes(directory, ADDRESSES), TRUTH, `${what}: answers right again once the server is`);
  };

  for (const code of [3, 4, 8, 10, 11, 13, 50, 53, 80]) {
    test(`result code ${code} with no entry: every lookup, batched or alone, is a directory error`, async () => {
      proxy.transform = (msg) => (isEntry(msg) ? null : withResultCode(msg, code));
      try {
        assert.deepEqual(await outcomes(directory, ADDRESSES), ADDRESSES.map(() => 'error'), 'batched');
        assert.deepEqual(await alone(directory, ADDRESSES), ADDRESSES.map(() => 'error'), 'alone');
      } finally {
        await healthy(`code ${code}`);
      }
    });
  }

  for (const code of [3, 4, 11]) {
    test(`result code ${code} after the entries: a user found is never "no such entry", an address not found never either`, async () => {
      proxy.transform = (msg) => withResultCode(msg, code);
      try {
        for (const [label, got] of [['batched', await outcomes(directory, ADDRESSES)], ['alone', await alone(directory, ADDRESSES)]] as const) {
          for (let i = 0; i < ADDRESSES.length; i++) {
            assert.ok(got[i] === TRUTH[i] || got[i] === 'error', `${label} ${ADDRESSES[i]}: ${String(got[i])}`);
            if (TRUTH[i] === null) assert.equal(got[i], 'error', `${label} ${ADDRESSES[i]}: a search cut short proves no absence`);
          }
        }
      } finally {
        await healthy(`code ${code} with entries`);
      }
    });
  }

  test('a time or administrative limit hit after the entry was sent: the user is found, as for a size limit', async () => {
    for (const code of [3, 11, 4]) {
      proxy.transform = (msg) => withResultCode(msg, code);
      try {
        assert.deepEqual(await alone(directory, ['bob@example.com', 'ally@example.com']), ['bob@example.com', 'alice@example.com'], `code ${code}`);
        assert.deepEqual(await alone(directory, ['nobody@example.com']), ['error'], `code ${code}: no entry proves nothing`);
      } finally {
        await healthy(`code ${code}, entry sent`);
      }
    }
  });

  test('answers under a message ID nobody asked are ignored: lookups around them are answered right', async () => {
    for (const conn of proxy.open()) conn.hold();
    const lookups = outcomes(directory, ADDRESSES);
    await sleep(200);
    for (const conn of proxy.open()) {
      conn.inject(Buffer.concat([searchEntry(0x7ffffff0, 'uid=nobody,ou=people,dc=example,dc=com', { mail: ['nobody@example.com'] }), searchDone(0x7ffffff0, 0), searchDone(0x7ffffff1, 32)]));
      conn.release();
    }
    assert.deepEqual(await lookups, TRUTH);
  });

  test('an entry with 100,000 values is read within the timeout: the user is found, the others answered right', async () => {
    const many = Array.from({ length: 100_000 }, (_, i) => `bob.alias${i}@example.com`);
    proxy.transform = (msg) =>
      isEntry(msg) && msg.includes('uid=bob,') ? searchEntry(messageIdOf(msg), 'uid=bob,ou=people,dc=example,dc=com', { mail: ['bob@example.com'], mailAlternateAddress: many }) : msg;
    try {
      const started = performance.now();
      assert.deepEqual(await alone(directory, ['bob@example.com']), ['bob@example.com']);
      assert.deepEqual(await outcomes(directory, ADDRESSES), TRUTH);
      assert.ok(performance.now() - started < TIMEOUT_MS, `took ${Math.round(performance.now() - started)} ms`);
    } finally {
      await healthy('100,000 values');
    }
  });

  test('an entry with a value of 40 MB: a directory error within the timeout, never a crash or a hang; memory given back', async () => {
    const huge = Buffer.alloc(40 * 1024 * 1024, 0x61);
    proxy.transform = (msg) =>
      isEntry(msg) && msg.includes('uid=bob,') ? searchEntry(messageIdOf(msg), 'uid=bob,ou=people,dc=example,dc=com', { mail: ['bob@example.com'], description: [huge] }) : msg;
    try {
      const started = performance.now();
      assert.deepEqual(await alone(directory, ['bob@example.com']), ['error']);
      assert.ok(performance.now() - started < TIMEOUT_MS + 1_000, `took ${Math.round(performance.now() - started)} ms`);
    } finally {
      await healthy('a 40 MB value');
    }
  });
});
