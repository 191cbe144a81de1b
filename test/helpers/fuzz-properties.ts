/**
 * Property definitions shared by the small fuzz runs in `npm test` (test/unit/fuzz-*.test.ts)
 * and the long run in `npm run fuzz` (scripts/fuzz.ts). For every codec: arbitrary bytes fed in
 * arbitrary chunks raise nothing but ProtocolError and never buffer past the codec's cap, and
 * well-formed input survives any chunking unchanged. The address parser never throws and only
 * accepts what RFC 5321 allows.
 */
import fc from 'fast-check';
import { parseAddress, stripSubaddress } from '../../src/recipient/address.js';
import { ProtocolError } from '../../src/errors.js';
import {
  MilterPacketDecoder,
  encodeMilterPacket,
  parseConnect,
  parseMacros,
  parseOptneg,
  parseStrings,
  type MilterPacket,
} from '../../src/milter/codec.js';
import { envelopeAddress } from '../../src/milter/envelope.js';
import { NetstringDecoder } from '../../src/socketmap/netstring.js';
import { framesOf, netstring } from './netstring.js';
import { PolicyRequestDecoder, type PolicyRequest } from '../../src/policy/codec.js';

export type Codec = 'netstring' | 'policy' | 'milter' | 'address';

export interface NamedProperty {
  name: string;
  /** Runs the property `runs` times; the details say whether (and how) it failed. */
  check(runs: number, seed?: number): fc.RunDetails<unknown>;
}

/** Hides each property's own tuple type so a codec can list several. */
function named<T>(name: string, property: fc.IProperty<T>): NamedProperty {
  return {
    name,
    check: (runs, seed) => fc.check(property, { numRuns: runs, ...(seed === undefined ? {} : { seed }) }) as fc.RunDetails<unknown>,
  };
}

/** Cuts `data` at the given fractions (any chunking a socket could produce). */
function chunked(data: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * data.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of [...points, data.length]) {
    if (p > last) out.push(Buffer.from(data.subarray(last, p)));
    last = Math.max(last, p);
  }
  return out;
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });
/** Mostly protocol-looking bytes, some noise: random bytes alone rarely get past the first check. */
const noisyBytes = (alphabet: number[]) =>
  fc
    .array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...alphabet) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }), { maxLength: 300 })
    .map((a) => Uint8Array.from(a));

/** Feeds chunks; returns what came out. Any exception but ProtocolError fails the property. */
function feed<T>(chunks: Buffer[], push: (c: Buffer) => T[], check: () => void): { out: T[]; error: ProtocolError | null } {
  const out: T[] = [];
  for (const c of chunks) {
    try {
      out.push(...push(c));
    } catch (err) {
      if (err instanceof ProtocolError) return { out, error: err };
      throw err;
    }
    check();
  }
  return { out, error: null };
}

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

function netstringProperties(): NamedProperty[] {
  const anyInput = fc.property(fc.integer({ min: 0, max: 64 }), noisyBytes(ascii('0123456789:,recipients @a.b')), cuts, (max, data, c) => {
    const d = new NetstringDecoder(max);
    const { out, error } = feed(chunked(data, c), (b) => framesOf(d, b), () => {
      if (d.buffered > max) throw new Error(`netstring decoder holds ${d.buffered} bytes, cap ${max}`);
    });
    for (const frame of out) if (frame.length > max) throw new Error('frame over the cap');
    // After a ProtocolError the decoder must keep refusing, never resync on garbage.
    if (error) {
      try {
        framesOf(d, ',');
        throw new Error('a failed netstring decoder accepted more input');
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
      }
    }
  });
  const roundTrip = fc.property(fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 6 }), cuts, (payloads, c) => {
    const d = new NetstringDecoder(120);
    const wire = Buffer.concat(payloads.map((p) => netstring(p)));
    const { out, error } = feed(chunked(wire, c), (b) => framesOf(d, b), () => undefined);
    if (error) throw error;
    if (out.length !== payloads.length || out.some((f, i) => !f.equals(Buffer.from(payloads[i]!)))) throw new Error('netstring round trip changed the frames');
    if (!d.atBoundary) throw new Error('decoder not at a boundary after whole frames');
  });
  return [
    named('arbitrary bytes: only ProtocolError, buffer ≤ maxPayload', anyInput),
    named('encoded frames survive any chunking', roundTrip),
  ];
}

function policyProperties(): NamedProperty[] {
  const limits = fc.record({ maxLineBytes: fc.integer({ min: 1, max: 64 }), maxRequestBytes: fc.integer({ min: 1, max: 256 }) });
  const anyInput = fc.property(limits, noisyBytes(ascii('request=smtpd_access_policy\nrecipient=a@b\r\n=')), cuts, (lim, data, c) => {
    const d = new PolicyRequestDecoder(lim);
    feed(chunked(data, c), (b) => d.push(b), () => {
      if (d.bufferedBytes > lim.maxLineBytes) throw new Error(`policy decoder holds ${d.bufferedBytes} bytes, line cap ${lim.maxLineBytes}`);
    });
  });
  const name = fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/);
  const value = fc.string({ maxLength: 40 }).filter((v) => !v.includes('\n') && !v.endsWith('\r'));
  const request = fc.uniqueArray(fc.tuple(name, value), { minLength: 1, maxLength: 8, selector: ([n]) => n });
  const roundTrip = fc.property(fc.array(request, { minLength: 1, maxLength: 4 }), cuts, (requests, c) => {
    const d = new PolicyRequestDecoder();
    const wire = Buffer.from(requests.map((r) => r.map(([n, v]) => `${n}=${v}\n`).join('') + '\n').join(''), 'utf8');
    const { out, error } = feed<PolicyRequest>(chunked(wire, c), (b) => d.push(b), () => undefined);
    if (error) throw error;
    const same = out.length === requests.length && out.every((m, i) => m.size === requests[i]!.length && requests[i]!.every(([n, v]) => m.get(n) === v));
    if (!same) throw new Error('policy round trip changed the requests');
  });
  return [
    named('arbitrary bytes: only ProtocolError, buffer ≤ maxLineBytes', anyInput),
    named('encoded requests survive any chunking', roundTrip),
  ];
}

function milterProperties(): NamedProperty[] {
  const header = fc.tuple(fc.integer({ min: 0, max: 80 }), fc.constantFrom(0x4f, 0x52, 0x43, 0x44, 0x51, 0x00)).map(([len, cmd]) => {
    const b = Buffer.alloc(5);
    b.writeUInt32BE(len, 0);
    b[4] = cmd;
    return [...b];
  });
  const stream = fc
    .array(fc.oneof(header, fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 })), { maxLength: 8 })
    .map((parts) => Uint8Array.from(parts.flat()));
  const anyInput = fc.property(fc.integer({ min: 1, max: 64 }), fc.oneof(stream, fc.uint8Array({ maxLength: 200 })), cuts, (max, data, c) => {
    const d = new MilterPacketDecoder({ maxPacketBytes: max });
    const { out } = feed<MilterPacket>(chunked(data, c), (b) => d.push(b), () => {
      if (d.bufferedBytes > max + 4) throw new Error(`milter decoder holds ${d.bufferedBytes} bytes, cap ${max + 4}`);
    });
    // Every payload parser on whatever came out: ProtocolError or a value, nothing else.
    for (const p of out) {
      for (const parse of [parseOptneg, parseConnect, parseMacros, parseStrings, (b: Buffer) => envelopeAddress(parseStrings(b))]) {
        try {
          parse(p.data);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }
    }
  });
  const packets = fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 100 })), { maxLength: 6 });
  const roundTrip = fc.property(packets, cuts, (list, c) => {
    const d = new MilterPacketDecoder();
    const wire = Buffer.concat(list.map(([cmd, data]) => encodeMilterPacket(cmd, data)));
    const { out, error } = feed<MilterPacket>(chunked(wire, c), (b) => d.push(b), () => undefined);
    if (error) throw error;
    const same = out.length === list.length && out.every((p, i) => p.command === list[i]![0] && p.data.equals(Buffer.from(list[i]![1])));
    if (!same || d.bufferedBytes !== 0) throw new Error('milter round trip changed the packets');
  });
  return [
    named('arbitrary bytes and payloads: only ProtocolError, buffer ≤ maxPacketBytes + 4', anyInput),
    named('encoded packets survive any chunking', roundTrip),
  ];
}

const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

function addressProperties(): NamedProperty[] {
  const piece = fc.oneof(
    fc.constantFrom('@', '.', '"', '\\', '+', '-', ' ', '<', '>', '[', ']', '*', '(', ')', '\0', '\u0130', 'ü', 'xn--', 'example.com', 'alice'),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 6 }),
  );
  const input = fc.oneof(fc.array(piece, { maxLength: 12 }).map((a) => a.join('')), fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 80 }));
  const parse = fc.property(input, fc.string({ maxLength: 3 }), (s, delimiters) => {
    const r = parseAddress(s);
    if (!r.ok) {
      if (typeof r.reason !== 'string' || r.reason.length === 0) throw new Error('a refusal without a reason');
      return;
    }
    const { local, domain, address } = r.value;
    if (Buffer.byteLength(address) > 254 || Buffer.byteLength(local) > 64) throw new Error(`over the RFC 5321 limits: ${address}`);
    if (CONTROL.test(address)) throw new Error(`control character accepted: ${JSON.stringify(address)}`);
    if (domain !== domain.toLowerCase() || domain.endsWith('.')) throw new Error(`domain not normalized: ${domain}`);
    if (address !== `${local}@${domain}`) throw new Error('address is not local@domain');
    const again = parseAddress(address);
    if (!again.ok || again.value.address !== address) throw new Error(`normalization not idempotent: ${JSON.stringify(address)} → ${JSON.stringify(again)}`);
    const base = stripSubaddress(local, delimiters);
    if (base !== null && (base.length === 0 || !local.startsWith(base))) throw new Error('sub-address stripping invented a local part');
  });
  return [named('never throws; accepted addresses are within limits, normalized and stable', parse)];
}

export const PROPERTIES: Record<Codec, () => NamedProperty[]> = {
  netstring: netstringProperties,
  policy: policyProperties,
  milter: milterProperties,
  address: addressProperties,
};

/** Runs every property of one codec with `runs` cases each (throws on the first counterexample). */
export function fuzzCodec(codec: Codec, runs: number, seed?: number): number {
  let cases = 0;
  for (const { name, check } of PROPERTIES[codec]()) {
    const details = check(runs, seed);
    if (details.failed) throw new Error(`${codec}: ${name}\n${fc.defaultReportMessage(details)}`);
    cases += details.numRuns;
  }
  return cases;
}
