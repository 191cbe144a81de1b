/**
 * The benchmark's own instruments, against the real things they measure: the C tools compiled
 * with the system compiler (do-nothing responder, socketmap / LDAP / flood clients) against the
 * C responder and a real slapd, the Postfix log tally against a real Postfix driven by
 * smtp-source, the CPU-profile window and the key supply. A wrong instrument makes every
 * figure of `npm run bench` wrong, so each is checked for exact counts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { KeySupply } from '../../bench/lib/context.js';
import { topSelfTime } from '../../bench/lib/cpuprofile.js';
import { smtpSource, startMx, tallyReplies, countReplies } from '../../bench/lib/mx.js';
import { compileTools, flood, keyFile, ldapSeq, socketmapSeq, startNullSocketmap, type NativeTools } from '../../bench/lib/native.js';
import type { Child } from '../../bench/lib/procs.js';

let dir: string;
let tools: NativeTools;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-tools-'));
  tools = compileTools(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('C tools', () => {
  let responder: Child;
  let port: number;
  before(async () => {
    port = await freePort();
    responder = await startNullSocketmap(tools, port);
  });
  after(async () => {
    await responder.stop();
  });

  it('the sequential socketmap client asks every key once and the responder answers OK to each', async () => {
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}@example.com`);
    const r = await socketmapSeq(tools, port, 4, 30, await keyFile(dir, 'seq', keys));
    assert.equal(r.requests, 500);
    assert.deepEqual(r.replies, { OK: 500 });
    assert.equal(r.unanswered, 0);
    assert.ok(r.p50 > 0 && r.p99 >= r.p50);
  });

  it('binds the client side to another loopback address when asked', async () => {
    const r = await socketmapSeq(tools, port, 1, 30, await keyFile(dir, 'src', ['a@example.com']), '127.0.0.2');
    assert.deepEqual(r.replies, { OK: 1 });
  });

  it('the flood client pipelines and counts every reply', async () => {
    const r = await flood(tools, port, 3, 1, 42);
    assert.ok(r.answered > 100, `answered ${r.answered}`);
    assert.ok(r.sent >= r.answered);
    assert.equal(r.replies.OK, r.answered);
    assert.equal(r.closedByServer, 0);
  });
});

describe('C LDAP client against a real slapd', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 200, fixture: false });
  });
  after(async () => {
    await slapd.close();
  });

  it('sends the preset search and tells found from not found exactly', async () => {
    const keys = [...Array.from({ length: 150 }, (_, i) => `user${i + 1}@example.com`), ...Array.from({ length: 50 }, (_, i) => `nouser${i}@example.com`)];
    const r = await ldapSeq(tools, slapd.port, slapd.baseDN, 8, 30, await keyFile(dir, 'ldap', keys));
    assert.equal(r.requests, 200);
    assert.deepEqual(r.replies, { found: 150, notFound: 50 });
  });
});

describe('Postfix log tally', () => {
  it('counts accepted and rejected recipients of a real MX driven by smtp-source', async () => {
    const mx = await startMx('inline:{1@example.com=ok, 3@example.com=ok, 5@example.com=ok}');
    try {
      await smtpSource(mx.port, 2, 4, 3); // recipients 1..12, one message per session
      const counts = await countReplies(mx, 0, 12, (n) => (n % 2 === 1 && n <= 5 ? 250 : 550));
      assert.equal(counts.rcpts, 12);
      assert.deepEqual(counts.codes, { 250: 3, 550: 9 });
      assert.equal(counts.wrong, 0);
      assert.ok((await mx.cpuMillis()) >= 0);
    } finally {
      await mx.instance.close();
    }
  });

  it('marks replies that differ from the expected one as wrong', () => {
    const log = [
      'Nov 29 20:52:14 mx postfix/smtpd[1]: NOQUEUE: warn: RCPT from localhost[127.0.0.1]: ; from=<a@b> to=<2@example.com> proto=SMTP helo=<vm>',
      'Nov 29 20:52:14 mx postfix/smtpd[1]: AB12: reject: RCPT from localhost[127.0.0.1]: 451 4.3.0 <3@example.com>: Temporary lookup failure; from=<a@b> to=<3@example.com> proto=SMTP helo=<vm>',
      'Nov 29 20:52:14 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <4@example.com>: Recipient address rejected: User unknown in relay recipient table; from=<a@b> to=<4@example.com> proto=SMTP helo=<vm>',
    ].join('\n');
    const counts = tallyReplies(log, (n) => (n % 2 === 1 ? 250 : 550));
    assert.deepEqual(counts.codes, { 250: 1, 451: 1, 550: 1 });
    assert.equal(counts.wrong, 2);
    assert.deepEqual(counts.examples, ['2@example.com → 250', '3@example.com → 451']);
  });
});

describe('bench helpers', () => {
  it('cuts a CPU profile to a time window', async () => {
    const file = path.join(dir, 'p.cpuprofile');
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
        { id: 2, callFrame: { functionName: 'early', url: 'file:///x/src/a.ts', lineNumber: 0 } },
        { id: 3, callFrame: { functionName: 'late', url: 'file:///x/src/b.ts', lineNumber: 9 } },
      ],
      startTime: 1_000,
      samples: [2, 2, 3, 3, 3],
      timeDeltas: [0, 100, 1_000, 100, 100],
    };
    await writeFile(file, JSON.stringify(profile));
    const all = topSelfTime(file);
    assert.equal(all.samples, 5);
    const late = topSelfTime(file, 10, { fromMicros: 2_000, toMicros: 3_000 });
    assert.deepEqual(late, { samples: 3, frames: [{ percent: 100, fn: 'late src/b.ts:10' }] });
  });

  it('hands out disjoint keys, 70 % existing users', () => {
    const supply = new KeySupply(1_000);
    const a = supply.mixed(100, 1);
    const b = supply.valid(50);
    assert.equal(a.filter((k) => k.startsWith('user')).length, 70);
    assert.equal(new Set([...a, ...b]).size, 150);
    assert.ok(b.every((k) => /^user\d+@example\.com$/.test(k)));
    assert.throws(() => supply.valid(1_000), /ran out of generated users/);
  });
});
