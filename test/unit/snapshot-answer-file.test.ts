import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AnswerCache } from '../../src/recipient/answer-cache.js';
import { ANSWERS_MAGIC, loadAnswers, saveAnswers } from '../../src/snapshot/answer-file.js';

const SOURCE = 'ldap|openldap|dc=example,dc=com|sub|';
const HOUR = 3_600_000;
const NOW = 1_700_000_000_000;

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-answers-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function filled(): AnswerCache {
  const c = new AnswerCache(100);
  c.set('alice@example.com', { canonical: 'alice@example.com', dn: 'uid=alice,ou=people,dc=example,dc=com' }, NOW + HOUR);
  c.set('nobody@example.com', null, NOW + HOUR);
  c.set('ally@example.com', { canonical: 'Alice@Example.com', dn: 'uid=alice,ou=people,dc=example,dc=com' }, NOW - 1000);
  c.set('jürgen@xn--bcher-kva.example', { canonical: 'jürgen@xn--bcher-kva.example', dn: 'uid=jürgen,dc=example,dc=com' }, NOW + 5);
  c.set('old@example.com', { canonical: 'old@example.com', dn: 'uid=old,dc=example,dc=com' }, NOW - 2 * HOUR);
  return c;
}

describe('answer file (cache.persistPath)', () => {
  test('round-trips positive answers with their fresh-until times and recency order', async () => {
    const file = path.join(dir, 'roundtrip');
    assert.equal(await saveAnswers(file, SOURCE, filled(), NOW, HOUR), 3);
    const back = new AnswerCache(100);
    assert.equal(await loadAnswers(file, SOURCE, back, NOW, HOUR), 3);
    assert.deepEqual([...back.keysByAge()], ['alice@example.com', 'ally@example.com', 'jürgen@xn--bcher-kva.example']);
    assert.deepEqual(back.get('ally@example.com'), { canonical: 'Alice@Example.com', dn: 'uid=alice,ou=people,dc=example,dc=com', freshUntil: NOW - 1000 });
    assert.deepEqual(back.get('jürgen@xn--bcher-kva.example'), { canonical: 'jürgen@xn--bcher-kva.example', dn: 'uid=jürgen,dc=example,dc=com', freshUntil: NOW + 5 });
  });

  test('never writes a "no such entry" answer, nor one past its stale window', async () => {
    const file = path.join(dir, 'negatives');
    await saveAnswers(file, SOURCE, filled(), NOW, HOUR);
    const body = await readFile(file, 'utf8');
    assert.ok(!body.includes('nobody@example.com'), 'negative answer written');
    assert.ok(!body.includes('old@example.com'), 'answer past staleIfError written');
  });

  test('skips answers whose stale window ran out while the process was down', async () => {
    const file = path.join(dir, 'aged');
    await saveAnswers(file, SOURCE, filled(), NOW, HOUR);
    const back = new AnswerCache(100);
    // An hour later, less 10 ms: ally@ expired 1 s before NOW, so its hour of stale service is over.
    assert.equal(await loadAnswers(file, SOURCE, back, NOW + HOUR - 10, HOUR), 2);
    assert.deepEqual([...back.keysByAge()].sort(), ['alice@example.com', 'jürgen@xn--bcher-kva.example']);
  });

  test('refuses a foreign, truncated, corrupt or missing file and leaves the cache untouched', async () => {
    const file = path.join(dir, 'bad');
    await saveAnswers(file, SOURCE, filled(), NOW, HOUR);
    const empty = new AnswerCache(10);
    await assert.rejects(loadAnswers(file, 'ldap|openldap|dc=other|sub|', empty, NOW, HOUR), /written for another directory/);
    const buf = await readFile(file);
    buf[buf.length - 3] = buf[buf.length - 3]! ^ 0x40;
    await writeFile(file, buf);
    await assert.rejects(loadAnswers(file, SOURCE, empty, NOW, HOUR), /checksum mismatch/);
    await saveAnswers(file, SOURCE, filled(), NOW, HOUR);
    await truncate(file, (await readFile(file)).length - 4);
    await assert.rejects(loadAnswers(file, SOURCE, empty, NOW, HOUR), /truncated or corrupt/);
    await writeFile(file, `${ANSWERS_MAGIC}\n{"source":"x"}\n`);
    await assert.rejects(loadAnswers(file, SOURCE, empty, NOW, HOUR), /incomplete header/);
    await assert.rejects(loadAnswers(path.join(dir, 'missing'), SOURCE, empty, NOW, HOUR), /no such file/);
    assert.equal(empty.size, 0);
  });

  test('answers saved while the clock ran ahead count their lifetimes from the save, not from a time still to come', async () => {
    const file = path.join(dir, 'ahead');
    // Saved at NOW by a clock an hour fast; loaded a minute later by the clock set right.
    await saveAnswers(file, SOURCE, filled(), NOW, HOUR);
    const back = new AnswerCache(100);
    const loadedAt = NOW - HOUR + 60_000;
    assert.equal(await loadAnswers(file, SOURCE, back, loadedAt, HOUR), 3);
    assert.equal(back.get('alice@example.com')!.freshUntil, loadedAt + HOUR, 'fresh for the hour it had left at the save');
    assert.equal(back.get('ally@example.com')!.freshUntil, loadedAt - 1000);
    // A save in the past (the usual restart) keeps the times as written.
    const later = new AnswerCache(100);
    await loadAnswers(file, SOURCE, later, NOW + 60_000, HOUR);
    assert.equal(later.get('alice@example.com')!.freshUntil, NOW + HOUR);
  });

  test('refuses a checksummed body whose lengths run past its end, before touching the cache', async () => {
    const { createHash } = await import('node:crypto');
    const body = Buffer.from([5, 0, 0x61, 0x40]);
    const header = { savedAt: NOW, source: SOURCE, count: 1, sha256: createHash('sha256').update(body).digest('hex') };
    const file = path.join(dir, 'malformed');
    await writeFile(file, Buffer.concat([Buffer.from(`${ANSWERS_MAGIC}\n${JSON.stringify(header)}\n`), body]));
    const cache = new AnswerCache(10);
    await assert.rejects(loadAnswers(file, SOURCE, cache, NOW, HOUR), /malformed answer list/);
    assert.equal(cache.size, 0);
  });
});
