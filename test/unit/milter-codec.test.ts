import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.js';
import { Cmd, Reply } from '../../src/milter/constants.js';
import {
  MilterPacketDecoder,
  DEFAULT_MAX_PACKET_BYTES,
  encodeMilterPacket,
  encodeOptneg,
  encodeReplyCode,
  parseConnect,
  parseMacros,
  parseOptneg,
  parseStrings,
} from '../../src/milter/codec.js';
import { envelopeAddress, milterRecipient } from '../../src/milter/envelope.js';

const z = (...parts: string[]) => Buffer.from(parts.map((p) => p + '\0').join(''));

describe('milter packet decoder', () => {
  it('splits a stream into command packets', () => {
    const bytes = Buffer.concat([encodeMilterPacket(Cmd.RCPT, z('<a@example.com>')), encodeMilterPacket(Cmd.ABORT)]);
    const packets = new MilterPacketDecoder().push(bytes);
    assert.deepEqual(packets.map((p) => p.command), [Cmd.RCPT, Cmd.ABORT]);
    assert.deepEqual(parseStrings(packets[0]!.data), ['<a@example.com>']);
    assert.equal(packets[1]!.data.length, 0);
  });

  it('waits for the rest of a packet', () => {
    const d = new MilterPacketDecoder();
    const bytes = encodeMilterPacket(Cmd.HELO, z('mx.example.net'));
    assert.deepEqual(d.push(bytes.subarray(0, 3)), []);
    assert.deepEqual(d.push(bytes.subarray(3, 9)), []);
    assert.equal(d.push(bytes.subarray(9)).length, 1);
    assert.equal(d.bufferedBytes, 0);
  });

  it('holds a packet trickled in one byte per read with one copy per byte (each read copied all held before: seconds of CPU)', () => {
    const d = new MilterPacketDecoder();
    const bytes = encodeMilterPacket(Cmd.HELO, Buffer.alloc(65_535, 0x61));
    const started = process.hrtime.bigint();
    const packets: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      for (const p of d.push(bytes.subarray(i, i + 1))) packets.push(p.data.length);
      if (i === 1 || i === 4 || i === 40_000) assert.equal(d.bufferedBytes, i + 1, 'a started packet counts as partial');
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.deepEqual(packets, [65_535]);
    assert.equal(d.bufferedBytes, 0);
    // About 20 ms now, 4.5 s before; the margin is for a loaded machine.
    assert.ok(ms < 1_000, `took ${ms.toFixed(0)} ms`);
  });

  it('refuses a zero length', () => {
    assert.throws(() => new MilterPacketDecoder().push(Buffer.from([0, 0, 0, 0])), ProtocolError);
  });

  it('refuses an oversized packet from its length prefix alone', () => {
    const d = new MilterPacketDecoder({ maxPacketBytes: 1000 });
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1001);
    assert.throws(() => d.push(head), (e: unknown) => e instanceof ProtocolError && e.code === 'RCPTGATE_FRAME_TOO_LARGE');
    assert.throws(() => d.push(encodeMilterPacket(Cmd.ABORT)), ProtocolError);
  });

  it('payload parsers throw nothing but ProtocolError on garbage', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
        const data = Buffer.from(raw);
        for (const parse of [parseOptneg, parseConnect, parseMacros, parseStrings]) {
          try {
            parse(data);
          } catch (err) {
            assert.ok(err instanceof ProtocolError, String(err));
          }
        }
      }),
    );
  });
});

describe('milter payloads', () => {
  it('round-trips option negotiation', () => {
    const packet = encodeOptneg({ version: 6, actions: 0, protocol: 0x1ff7ff });
    const [p] = new MilterPacketDecoder().push(packet);
    assert.equal(p!.command, Reply.OPTNEG);
    assert.deepEqual(parseOptneg(p!.data), { version: 6, actions: 0, protocol: 0x1ff7ff });
  });

  it('parses an IPv4 CONNECT', () => {
    const port = Buffer.alloc(2);
    port.writeUInt16BE(40123);
    const data = Buffer.concat([z('client.example.net'), Buffer.from('4'), port, z('192.0.2.7')]);
    assert.deepEqual(parseConnect(data), { hostname: 'client.example.net', family: 'inet', port: 40123, address: '192.0.2.7' });
  });

  it('parses a CONNECT of unknown family without address', () => {
    assert.deepEqual(parseConnect(Buffer.concat([z('localhost'), Buffer.from('U')])), { hostname: 'localhost', family: 'unknown', port: null, address: null });
  });

  it('refuses a CONNECT with a bad family', () => {
    assert.throws(() => parseConnect(Buffer.concat([z('h'), Buffer.from('X\0\0')])), ProtocolError);
  });

  it('parses macros with the command they belong to', () => {
    const m = parseMacros(Buffer.concat([Buffer.from('C'), z('{client_addr}', '198.51.100.1', 'j', 'mx.example.com')]));
    assert.equal(m.forCommand, Cmd.CONNECT);
    assert.equal(m.macros.get('{client_addr}'), '198.51.100.1');
    assert.equal(m.macros.get('j'), 'mx.example.com');
  });

  it('encodes a reply code with a NUL and doubles "%"', () => {
    const [p] = new MilterPacketDecoder().push(encodeReplyCode('550 5.1.1 User unknown 100%'));
    assert.equal(p!.command, Reply.REPLYCODE);
    assert.equal(p!.data.toString(), '550 5.1.1 User unknown 100%%\0');
  });

  it('refuses a reply code that is not 4xx/5xx with enhanced status', () => {
    assert.throws(() => encodeReplyCode('250 ok'), TypeError);
    assert.throws(() => encodeReplyCode('550 User unknown'), TypeError);
  });
});

describe('envelope address from RCPT arguments', () => {
  it('strips angle brackets', () => assert.equal(envelopeAddress(['<a@example.com>']), 'a@example.com'));
  it('drops ESMTP parameters given as separate strings', () => assert.equal(envelopeAddress(['<a@example.com>', 'NOTIFY=NEVER']), 'a@example.com'));
  it('drops ESMTP parameters in the same string', () => assert.equal(envelopeAddress(['<a@example.com> ORCPT=rfc822;a@example.com']), 'a@example.com'));
  it('accepts a bare address', () => assert.equal(envelopeAddress(['a@example.com']), 'a@example.com'));
  it('drops a source route', () => assert.equal(envelopeAddress(['<@relay.example:a@example.com>']), 'a@example.com'));
  it('gives an empty string for no arguments', () => assert.equal(envelopeAddress([]), ''));
  // What Postfix routes by (its internal form), checked against a real Postfix in milter-postfix.test.ts.
  for (const [raw, routed] of [
    ['<nobody@example.com >', 'nobody@example.com'],
    ['< nobody@example.com>', 'nobody@example.com'],
    ['<"nobody@example.com">', 'nobody@example.com'],
    ['<"nobody"@example.com>', 'nobody@example.com'],
    ['<nobody(comment)@example.com>', 'nobody@example.com'],
    ['<nobody@example.com(a (nested) comment)>', 'nobody@example.com'],
    ['<nobody\\@example.com>', 'nobody@example.com'],
    ['<"no body"@example.com>', '"no body"@example.com'],
    ['<"a\\"b"@example.com>', '"a\\"b"@example.com'],
    ['<"a>b"@example.com> NOTIFY=NEVER', '"a>b"@example.com'],
    ['<@a.example,@b.example:nobody@example.com>', 'nobody@example.com'],
    ['<nobody@[192.0.2.1]>', 'nobody@[192.0.2.1]'],
  ] as const) {
    it(`reads ${raw} as Postfix routes it: ${routed}`, () => assert.equal(envelopeAddress([raw]), routed));
  }
  it('reads a stray ")" as text (it once looped forever)', () => assert.equal(envelopeAddress(['<a)b@example.com>']), '"a)b"@example.com'));
  it('leaves an unbalanced quote or comment unparseable', () => {
    assert.equal(envelopeAddress(['<"nobody@example.com>']), '"nobody@example.com>');
    assert.equal(envelopeAddress(['<nobody(@example.com>']), 'nobody(@example.com');
  });
  it("falls back to the MTA's {rcpt_addr} only where the argument is no address", () => {
    assert.equal(milterRecipient(['<nobody@example.com;>'], 'nobody@example.com'), 'nobody@example.com');
    assert.equal(milterRecipient(['<nobody@example.com:x>'], '"nobody@example.com:x"@example.com'), '"nobody@example.com:x"@example.com');
    // Sendmail: {rcpt_addr} can be a mailer's target; the recipient as given wins.
    assert.equal(milterRecipient(['<alice@example.com>'], 'alice@internal.example'), 'alice@example.com');
    assert.equal(milterRecipient(['<bad..dots@example.com>'], 'alice'), 'bad..dots@example.com');
    assert.equal(milterRecipient(['<alice@example.com>'], undefined), 'alice@example.com');
  });
});
