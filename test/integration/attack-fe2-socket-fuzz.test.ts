/**
 * Property-based fuzzing of the three socket front ends on their real listening sockets (the
 * codecs alone are fuzzed in test/unit/fuzz-*.test.ts). Each case opens a connection, writes
 * well-formed requests with known answers, then odd or broken input (random and mutated
 * netstrings, policy blocks with duplicated names, NUL bytes, CR LF and huge attribute counts,
 * milter packets with every command byte, odd option negotiations and macros, commands out of
 * order), half-closes, and reads until the server closes. Invariants:
 *  - the known requests are answered first, in order, with their right answers;
 *  - everything the server writes is well-formed for its protocol (a protocol error is a clear
 *    reply or a closed connection, never garbage);
 *  - the server closes within a bound after the client's FIN;
 *  - an honest client on another connection is answered correctly after every case.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { App } from '../../src/app/app.js';
import { MilterPacketDecoder, encodeMilterPacket } from '../../src/milter/codec.js';
import { Cmd, Family } from '../../src/milter/constants.js';
import { milterOptneg, milterRcpt, netstring, policyRequest } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

const RUNS = 60;
const CLOSE_WITHIN_MS = 5_000;

/** Writes `input` in the given pieces, half-closes, and returns what came back before the close. */
async function exchange(port: number, pieces: Buffer[]): Promise<{ out: Buffer; closedInTime: boolean }> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), CLOSE_WITHIN_MS);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  await new Promise<void>((resolve) => s.once('connect', () => resolve()).once('close', () => resolve()));
  for (const p of pieces) if (!s.destroyed) s.write(p);
  if (!s.destroyed) s.end();
  const closedInTime = await closed;
  s.destroy();
  return { out: Buffer.concat(chunks), closedInTime };
}

/** Splits `data` at the given fractions. */
function split(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * data.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of [...points, data.length]) {
    if (p > last) out.push(data.subarray(last, p));
    last = Math.max(last, p);
  }
  return out;
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
const text = (alphabet: string, maxLength: number) =>
  fc.array(fc.constantFrom(...alphabet), { maxLength }).map((a) => a.join(''));

/** Known requests and their answers: the first part of every case. */
const KNOWN = [
  ['alice@example.com', true],
  ['nobody@example.com', false],
  ['bob@example.com', true],
] as const;
const known = fc.array(fc.constantFrom(...KNOWN), { maxLength: 3 });

/** Netstring payloads of `buf`; throws on anything that is no netstring. */
function netstringsStrict(buf: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < buf.length) {
    const m = /^(0|[1-9]\d{0,5}):/.exec(buf.subarray(i, i + 8).toString('latin1'));
    assert.ok(m, `not a netstring at byte ${i}: ${JSON.stringify(buf.subarray(i, i + 40).toString('latin1'))}`);
    const start = i + m[0].length;
    const len = Number(m[1]);
    assert.equal(buf[start + len], 0x2c, 'netstring ends with ","');
    out.push(buf.subarray(start, start + len).toString('utf8'));
    i = start + len + 1;
  }
  return out;
}

const SOCKETMAP_REPLY = /^(OK [^\r\n\0]+|NOTFOUND |TEMP [\x20-\x7e]+|PERM [\x20-\x7e]+)$/;
const POLICY_ACTION = /^action=[^\r\n]+$/;

/** Milter replies of `buf` as 'c', 'O', 'y:<text>'; throws on a broken packet or unknown reply. */
function milterRepliesStrict(buf: Buffer): string[] {
  const packets = new MilterPacketDecoder().push(buf);
  const framed = packets.reduce((n, p) => n + 5 + p.data.length, 0);
  assert.equal(framed, buf.length, 'the milter output is whole packets');
  return packets.map((p) => {
    const c = String.fromCharCode(p.command);
    assert.ok('cOy'.includes(c), `unexpected milter reply ${JSON.stringify(c)}`);
    if (c === 'y') {
      const t = p.data.toString('utf8');
      assert.match(t, /^[45]\d\d [45]\.\d+\.\d+ [^\r\n\0]+\0$/);
      return `y:${t.slice(0, -1)}`;
    }
    return c;
  });
}

describe('socket front ends under fuzzed clients (real sockets, real engine)', () => {
  let app: App;

  before(async () => {
    app = await startApp({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
      // The bundled example directory. Harvest protection off: cases would wait out its tarpit.
      policy: { harvest: { maxUnknown: 0 } },
      server: { requestTimeout: '2s' },
      log: { level: 'warn' },
    });
  });
  after(async () => {
    await app?.close();
  });

  async function honestSocketmap(): Promise<void> {
    const { out } = await exchange(app.addresses.socketmap!.port, [Buffer.from(netstring('recipients alice@example.com') + netstring('recipients nobody@example.com'))]);
    assert.deepEqual(netstringsStrict(out), ['OK alice@example.com', 'NOTFOUND ']);
  }

  test('socketmap: known requests answered in order, then any junk gets PERM or a close', async () => {
    const request = fc.oneof(
      text('0123456789:,', 12),
      text('recipients domains access acces @.aex', 40).map(netstring),
      bytes(60).map((b) => Buffer.concat([Buffer.from(`${b.length}:`), b, Buffer.from(',')]).toString('latin1')),
      fc.constantFrom('10001:', '00:,', '1:a;', ':,', '3:abc', '99999999999999999999:', '0:,', '-1:,', ' 1:a,'),
    );
    await fc.assert(
      fc.asyncProperty(known, fc.array(request, { maxLength: 6 }), bytes(40), cuts, async (first, junk, tail, c) => {
        const good = first.map(([a]) => netstring(`recipients ${a}`)).join('');
        const input = Buffer.concat([Buffer.from(good, 'utf8'), Buffer.from(junk.join(''), 'latin1'), tail]);
        const { out, closedInTime } = await exchange(app.addresses.socketmap!.port, split(input, c));
        assert.ok(closedInTime, 'closed after the client FIN');
        const replies = netstringsStrict(out);
        assert.deepEqual(replies.slice(0, first.length), first.map(([a, valid]) => (valid ? `OK ${a}` : 'NOTFOUND ')));
        for (const r of replies) assert.match(r, SOCKETMAP_REPLY);
        await honestSocketmap();
      }),
      { numRuns: RUNS },
    );
  });

  test('policy: known requests answered in order, then odd attribute blocks get an action or a close', async () => {
    const line = fc.oneof(
      fc.constantFrom('request=smtpd_access_policy', 'protocol_state=RCPT', 'protocol_state=rcpt', 'protocol_state=DATA', 'recipient=', 'client_address=', 'client_address=::ffff:7f00:1', '=x', 'noequals', 'recipient=a\0b@example.com', 'recipient=alice@example.com\r', 'a b=c'),
      fc.tuple(text('abcdefghijklmnopqrstuvwxyz_', 12), text('abc@.%!"\\ <>()\0\r\t', 40)).map(([k, v]) => `${k}=${v}`),
      fc.constantFrom('x=y').chain((l) => fc.integer({ min: 0, max: 3000 }).map((n) => Array(n).fill(l).join('\n'))),
    );
    const block = fc.array(line, { maxLength: 8 }).map((ls) => `${ls.join('\n')}\n\n`);
    await fc.assert(
      fc.asyncProperty(known, fc.array(block, { maxLength: 4 }), bytes(30), cuts, async (first, junk, tail, c) => {
        const good = first.map(([a]) => policyRequest(a, '192.0.2.1')).join('');
        const input = Buffer.concat([Buffer.from(good + junk.join(''), 'latin1'), tail]);
        const { out, closedInTime } = await exchange(app.addresses.policy!.port, split(input, c));
        assert.ok(closedInTime, 'closed after the client FIN');
        const textOut = out.toString('utf8');
        assert.match(textOut, /^(action=[^\r\n]+\n\n)*$/, 'only whole policy replies');
        const actions = textOut.split('\n\n').filter((a) => a !== '');
        for (const a of actions) assert.match(a, POLICY_ACTION);
        assert.deepEqual(actions.slice(0, first.length), first.map(([, valid]) => (valid ? 'action=DUNNO' : 'action=550 5.1.1 User unknown')));
        const honest = await exchange(app.addresses.policy!.port, [Buffer.from(policyRequest('alice@example.com') + policyRequest('nobody@example.com'))]);
        assert.equal(honest.out.toString(), 'action=DUNNO\n\naction=550 5.1.1 User unknown\n\n');
      }),
      { numRuns: RUNS },
    );
  });

  test('milter: a known session answered in order, then any packet gets a reply, nothing, or a close', async () => {
    const commands = [...Object.values(Cmd), 0x00, 0x7f, 0xff, 0x61, 0x63];
    const optneg = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), bytes(4)).map(([v, a, p, extra]) => {
      const d = Buffer.alloc(12);
      d.writeUInt32BE(v, 0);
      d.writeUInt32BE(a, 4);
      d.writeUInt32BE(p, 8);
      return encodeMilterPacket(Cmd.OPTNEG, Buffer.concat([d, extra]));
    });
    const packet = fc.oneof(
      fc.tuple(fc.constantFrom(...commands), bytes(40)).map(([cmd, data]) => encodeMilterPacket(cmd, data)),
      optneg,
      fc.tuple(fc.constantFrom(...commands), text('{}_abcdefghijklmnopqrstuvwxyz@.<>\0\xff', 40)).map(([cmd, t]) => encodeMilterPacket(Cmd.MACRO, Buffer.concat([Buffer.from([cmd]), Buffer.from(t, 'latin1')]))),
      fc.tuple(text('<>"@.\\() abcxyz\0', 30), fc.constantFrom(Family.INET, Family.INET6, Family.UNIX, Family.UNKNOWN, 0x00)).map(([t, fam]) => encodeMilterPacket(Cmd.CONNECT, Buffer.concat([Buffer.from('h\0'), Buffer.from([fam, 0, 25]), Buffer.from(`${t}\0`, 'latin1')]))),
      text('<>"@.\\() abcxyz\0', 30).map((t) => encodeMilterPacket(Cmd.RCPT, Buffer.from(t, 'latin1'))),
      fc.constantFrom(Buffer.from([0, 0, 0, 0]), Buffer.from([0, 0, 0, 1]), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from([0, 1, 0, 1, 0x42]), encodeMilterPacket(Cmd.QUIT_NC), encodeMilterPacket(Cmd.ABORT)),
    );
    await fc.assert(
      fc.asyncProperty(known, fc.array(packet, { maxLength: 8 }), cuts, async (first, junk, c) => {
        const good = Buffer.concat([milterOptneg(), ...first.map(([a]) => milterRcpt(a))]);
        const input = Buffer.concat([good, ...junk]);
        const { out, closedInTime } = await exchange(app.addresses.milter!.port, split(input, c));
        assert.ok(closedInTime, 'closed after the client FIN');
        const replies = milterRepliesStrict(out);
        assert.deepEqual(replies.slice(0, 1 + first.length), ['O', ...first.map(([, valid]) => (valid ? 'c' : 'y:550 5.1.1 User unknown'))]);
        const honest = await exchange(app.addresses.milter!.port, [Buffer.concat([milterOptneg(), milterRcpt('alice@example.com'), milterRcpt('nobody@example.com'), encodeMilterPacket(Cmd.QUIT)])]);
        assert.deepEqual(milterRepliesStrict(honest.out), ['O', 'c', 'y:550 5.1.1 User unknown']);
      }),
      { numRuns: RUNS },
    );
  });

  test('socketmap and policy: well-framed requests of every kind, pipelined in any chunking and pace, are answered one each, in order', async () => {
    // [socketmap request, its reply] and [policy attributes, its action]: lookups (answered
    // later) mixed with requests answered at once, so a slow answer must hold back quick ones.
    const socketmapCases = fc.constantFrom(
      ['recipients alice@example.com', 'OK alice@example.com'],
      ['recipients nobody@example.com', 'NOTFOUND '],
      ['access nobody@example.com', 'OK 550 5.1.1 User unknown'],
      ['access alice@example.com', 'OK DUNNO'],
      ['domains example.com', 'OK example.com'],
      ['domains elsewhere.example', 'NOTFOUND '],
      ['recipients example.com', 'NOTFOUND '],
      ['nomap x@example.com', 'PERM unknown map "nomap": expected one of recipients, domains, access'],
      ['recipients', 'PERM malformed request: expected "NAME KEY"'],
    );
    const policyCases = fc.constantFrom(
      [policyRequest('alice@example.com'), 'DUNNO'],
      [policyRequest('nobody@example.com'), '550 5.1.1 User unknown'],
      [policyRequest('a..b@example.com'), '501 5.1.3 Bad recipient address syntax'],
      [policyRequest('someone@elsewhere.example'), 'DUNNO'],
      ['request=smtpd_access_policy\nprotocol_state=DATA\nrecipient=nobody@example.com\n\n', 'DUNNO'],
      ['protocol_state=RCPT\nrecipient=nobody@example.com\nrecipient=bob@example.com\n\n', 'DUNNO'],
      ['x=1\r\nprotocol_state=RCPT\r\nrecipient=nobody@example.com\r\n\r\n', '550 5.1.1 User unknown'],
    );
    const pace = fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 4 });
    const paced = async (port: number, input: Buffer, c: number[], delays: number[]) => {
      const pieces = split(input, c);
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      for (const [i, p] of pieces.entries()) {
        s.write(p);
        await new Promise((r) => setTimeout(r, delays[i % Math.max(1, delays.length)] ?? 0));
      }
      s.end();
      await closed;
      return Buffer.concat(chunks);
    };
    await fc.assert(
      fc.asyncProperty(fc.array(socketmapCases, { minLength: 1, maxLength: 20 }), cuts, pace, async (cases, c, delays) => {
        const out = await paced(app.addresses.socketmap!.port, Buffer.from(cases.map(([r]) => netstring(r)).join('')), c, delays);
        assert.deepEqual(netstringsStrict(out), cases.map(([, reply]) => reply));
      }),
      { numRuns: RUNS },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(policyCases, { minLength: 1, maxLength: 20 }), cuts, pace, async (cases, c, delays) => {
        const out = await paced(app.addresses.policy!.port, Buffer.from(cases.map(([r]) => r).join('')), c, delays);
        assert.equal(out.toString(), cases.map(([, a]) => `action=${a}\n\n`).join(''));
      }),
      { numRuns: RUNS },
    );
  });

  // Found by the properties above: the decoders returned a read's requests as one array and
  // threw it away at a malformed one, so requests of the same read before it went unanswered.
  test('requests in the same read before a malformed one are answered, then the connection closes', async () => {
    const policy = await exchange(app.addresses.policy!.port, [Buffer.from(`${policyRequest('alice@example.com')}\n`)]);
    assert.equal(policy.out.toString(), 'action=DUNNO\n\n');
    const milter = await exchange(app.addresses.milter!.port, [Buffer.concat([milterOptneg(), milterRcpt('nobody@example.com'), Buffer.from([0, 0, 0, 0])])]);
    assert.deepEqual(milterRepliesStrict(milter.out), ['O', 'y:550 5.1.1 User unknown']);
  });

  test('milter: packets after QUIT in the same read are neither answered nor looked up', async () => {
    const lookups = async () => {
      const text = await app.metrics.registry.metrics();
      return [...text.matchAll(/^rcptgate_lookups_total\{[^}]*frontend="milter"[^}]*\} (\S+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const before = await lookups();
    const after = [milterRcpt('nobody@example.com'), milterRcpt('alice@example.com')];
    const { out, closedInTime } = await exchange(app.addresses.milter!.port, [Buffer.concat([milterOptneg(), encodeMilterPacket(Cmd.QUIT), ...after])]);
    assert.ok(closedInTime);
    assert.deepEqual(milterRepliesStrict(out), ['O']);
    assert.equal((await lookups()) - before, 0);
  });
});
