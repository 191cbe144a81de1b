/**
 * Change-driven removals (sync.detectRemovals) after an incremental listing that holds every
 * entry of a large directory (a bulk modify, or a bulk load inside the listing's window): the
 * feed went through the listed entries in one synchronous pass (every DN lowercased into a set,
 * then every address's holders looked up), and lookups waited: 0.9 s at 300,000 entries against
 * a real slapd. It now lets the event loop turn every few thousand entries. Real slapd for the
 * feed's searches; the snapshot and the listing are 300,000 generated entries, as a relisting of
 * that many would hand them over (generating them in slapd would only slow the test down).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { DirectoryRecord } from '../../src/directory/types.js';
import { silentLogger } from '../../src/log.js';
import { createChangeFeed } from '../../src/snapshot/changes.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const ENTRIES = 300_000;
/** Longest the event loop may stand still while the feed works through the listing. */
const MAX_GAP_MS = 150;

let ldap: Slapd;
before(async () => {
  ldap = await startSlapd();
});
after(async () => {
  await ldap?.close();
});

describe('change-driven removals after a listing of 300,000 entries (real slapd)', () => {
  test(`lookups are not held up more than ${MAX_GAP_MS} ms at a time`, async () => {
    const config = validateConfig({
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '10s' } },
      sync: { enabled: true, snapshotPath: '/dev/null', detectRemovals: true },
    });
    const feed = createChangeFeed(config, { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword }, silentLogger())!;
    const listed: DirectoryRecord[] = Array.from({ length: ENTRIES }, (_, k) => ({ dn: `uid=Bulk${k},ou=People,dc=example,dc=com`, canonical: `bulk${k}@example.com`, addresses: [`bulk${k}@example.com`, `b.${k}@example.com`] }));
    const store = SnapshotStore.from(listed, Date.now(), 86_400_000);
    let last = performance.now();
    let longest = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    try {
      last = performance.now();
      const report = await feed.apply(store, listed, new Date(Date.now() - 60_000));
      assert.deepEqual(report, { removed: 0, refreshed: 0 }, 'every listed entry is valid: nothing to remove or re-read');
    } finally {
      clearInterval(timer);
    }
    assert.equal(store.get('bulk299999@example.com'), 'bulk299999@example.com');
    assert.ok(longest < MAX_GAP_MS, `the event loop stood still for ${longest.toFixed(0)} ms`);
  });
});
