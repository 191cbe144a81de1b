/**
 * The directory a snapshot or answer file names: the base DN compared as a DN (case, spaces
 * around its separators), everything else as written. A file from a release that kept the
 * spaces (`dc=example, dc=com`) is still read by one that drops them; another tree, scope or
 * filter is still refused.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { AnswerCache } from '../../src/recipient/answer-cache.js';
import { loadAnswers, saveAnswers } from '../../src/snapshot/answer-file.js';
import { readSnapshot, writeSnapshot } from '../../src/snapshot/file.js';
import { sameSource, snapshotSource } from '../../src/snapshot/source.js';

const ldap = (baseDN: string, filter: string | null = null) =>
  validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1'], baseDN, filter } } });
/** As releases before the normalization wrote it: the base DN lowercased, spaces kept. */
const OLD_SPACED = 'ldap|openldap|dc=example, dc=com|sub|';
const RECORD = { dn: 'uid=alice,ou=people,dc=example,dc=com', canonical: 'alice@example.com', addresses: ['alice@example.com'] };

let dir: string;
before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-source-'))));
after(async () => rm(dir, { recursive: true, force: true }));

describe('the source a data file names', () => {
  test('one tree however its base DN is spelled', () => {
    const a = snapshotSource(ldap('dc=example,dc=com'));
    assert.equal(snapshotSource(ldap('dc=example, dc=com')), a);
    assert.equal(snapshotSource(ldap(' DC=Example ,  DC=com ')), a);
    assert.ok(sameSource(OLD_SPACED, a));
  });

  test('another tree, scope or filter is another directory', () => {
    const a = snapshotSource(ldap('dc=example,dc=com'));
    assert.ok(!sameSource(snapshotSource(ldap('ou=people,dc=example,dc=com')), a));
    assert.ok(!sameSource('ldap|openldap|dc=example, dc=com|one|', a));
    assert.ok(!sameSource('ldap|openldap|dc=example, dc=org|sub|', a));
    const f = snapshotSource(ldap('dc=example,dc=com', '(|(mail=%s)(uid=%u))'));
    assert.ok(sameSource('ldap|openldap|dc=example, dc=com|sub|(|(mail=%s)(uid=%u))', f));
    assert.ok(!sameSource('ldap|openldap|dc=example, dc=com|sub|(|(mail=%s)(uid= %u))', f), 'the filter is compared as written');
    assert.ok(!sameSource(OLD_SPACED, f));
  });

  test('a snapshot and an answer file written with the spaced spelling are read', async () => {
    const expected = snapshotSource(ldap('dc=example,dc=com'));
    const snap = path.join(dir, 'snapshot');
    await writeSnapshot(snap, OLD_SPACED, Date.now(), [RECORD]);
    assert.deepEqual((await readSnapshot(snap, expected)).records, [RECORD]);
    const cache = new AnswerCache(10);
    cache.set('alice@example.com', { canonical: 'alice@example.com', dn: RECORD.dn }, Date.now() + 60_000);
    const answers = path.join(dir, 'answers');
    await saveAnswers(answers, OLD_SPACED, cache, Date.now(), 60_000);
    const loaded = new AnswerCache(10);
    assert.equal(await loadAnswers(answers, expected, loaded, Date.now(), 60_000), 1);
    await assert.rejects(loadAnswers(answers, snapshotSource(ldap('dc=example,dc=org')), new AnswerCache(10), Date.now(), 60_000), /another directory/);
  });
});
