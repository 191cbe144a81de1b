/**
 * Milter packet framing and payload parsing (libmilter protocol): every packet is a 4-byte
 * big-endian length, then that many bytes: one command byte and its data. Pure, incremental,
 * capped: a packet longer than `maxPacketBytes` (default 65,536 = one full 65,535-byte body
 * chunk plus its command byte) is a ProtocolError before any of its data is buffered.
 */
import { ErrorCodes, ProtocolError } from '../errors.js';
import { Family, Reply } from './constants.js';

export interface MilterPacket {
  /** Command byte (see Cmd). */
  command: number;
  data: Buffer;
}

export const DEFAULT_MAX_PACKET_BYTES = 65_536;
const HEADER = 4;
const EMPTY = Buffer.alloc(0);

export class MilterPacketDecoder {
  private readonly maxPacketBytes: number;
  /** The length prefix so far (a split prefix is collected here). */
  private readonly head = Buffer.alloc(HEADER);
  private headFilled = 0;
  /**
   * The packet being received, allocated whole once its length is known and filled in place:
   * a packet trickled in one byte per read costs one copy per byte, not a copy of everything
   * held so far per read (64 kB in 1-byte reads took seconds of CPU).
   */
  private packet: Buffer | null = null;
  private filled = 0;
  private failed: ProtocolError | null = null;

  constructor(options: { maxPacketBytes?: number } = {}) {
    this.maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  }

  /** Bytes held between calls: at most one packet plus its length prefix. */
  get bufferedBytes(): number {
    return this.headFilled + this.filled;
  }

  /**
   * Feeds bytes; returns every packet they complete, in order. Throws ProtocolError. With
   * `onPacket`, each packet is handed to it as it completes instead (and [] returned), so the
   * packets before a malformed length are delivered before the throw and can still be answered.
   */
  push(chunk: Uint8Array, onPacket?: (packet: MilterPacket) => void): MilterPacket[] {
    if (this.failed) throw this.failed;
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const list: MilterPacket[] = [];
    const out = onPacket === undefined ? list : { push: onPacket };
    try {
      let i = 0;
      while (i < bytes.length) {
        if (this.packet !== null) {
          i = this.fill(bytes, i, out);
        } else if (this.headFilled === 0 && bytes.length - i >= HEADER) {
          const length = this.checked(bytes.readUInt32BE(i));
          i += HEADER;
          if (bytes.length - i >= length) {
            // Whole in this chunk: copy the data out so a packet never pins a large socket chunk.
            out.push({ command: bytes[i]!, data: Buffer.from(bytes.subarray(i + 1, i + length)) });
            i += length;
          } else {
            this.headFilled = HEADER;
            this.packet = Buffer.allocUnsafe(length);
          }
        } else {
          const n = Math.min(HEADER - this.headFilled, bytes.length - i);
          bytes.copy(this.head, this.headFilled, i, i + n);
          this.headFilled += n;
          i += n;
          if (this.headFilled === HEADER) this.packet = Buffer.allocUnsafe(this.checked(this.head.readUInt32BE(0)));
        }
      }
    } catch (err) {
      this.failed = err as ProtocolError;
      this.packet = null;
      this.headFilled = this.filled = 0;
      throw err;
    }
    return list;
  }

  /** The packet length of a prefix, refused before any of its data is held. */
  private checked(length: number): number {
    if (length === 0) throw new ProtocolError('milter packet without a command byte');
    if (length > this.maxPacketBytes) {
      throw new ProtocolError(`milter packet of ${length} bytes exceeds ${this.maxPacketBytes}`, ErrorCodes.FRAME_TOO_LARGE);
    }
    return length;
  }

  /** Copies what `bytes` has of the packet in progress from `i`; returns the next index. */
  private fill(bytes: Buffer, i: number, out: { push(p: MilterPacket): unknown }): number {
    const packet = this.packet!;
    const n = Math.min(packet.length - this.filled, bytes.length - i);
    bytes.copy(packet, this.filled, i, i + n);
    this.filled += n;
    if (this.filled === packet.length) {
      out.push({ command: packet[0]!, data: packet.subarray(1) });
      this.packet = null;
      this.headFilled = this.filled = 0;
    }
    return i + n;
  }
}

/** One packet on the wire. */
export function encodeMilterPacket(command: number, data: Uint8Array = EMPTY): Buffer {
  const out = Buffer.alloc(HEADER + 1 + data.length);
  out.writeUInt32BE(1 + data.length, 0);
  out[HEADER] = command;
  out.set(data, HEADER + 1);
  return out;
}

export interface OptionNegotiation {
  version: number;
  actions: number;
  protocol: number;
}

/** SMFIC_OPTNEG data: version, actions, protocol flags (uint32 each; extra bytes ignored). */
export function parseOptneg(data: Buffer): OptionNegotiation {
  if (data.length < 12) throw new ProtocolError(`milter OPTNEG of ${data.length} bytes, need 12`);
  return { version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8) };
}

export function encodeOptneg(o: OptionNegotiation): Buffer {
  const data = Buffer.alloc(12);
  data.writeUInt32BE(o.version >>> 0, 0);
  data.writeUInt32BE(o.actions >>> 0, 4);
  data.writeUInt32BE(o.protocol >>> 0, 8);
  return encodeMilterPacket(Reply.OPTNEG, data);
}

/** NUL-terminated strings, as in MAIL/RCPT arguments and macro lists. A missing final NUL is tolerated. */
export function parseStrings(data: Buffer): string[] {
  if (data.length === 0) return [];
  const end = data[data.length - 1] === 0 ? data.length - 1 : data.length;
  return data.subarray(0, end).toString('utf8').split('\0');
}

export interface ConnectInfo {
  hostname: string;
  family: 'inet' | 'inet6' | 'unix' | 'unknown';
  port: number | null;
  /** IP address (inet/inet6), socket path (unix), or null. */
  address: string | null;
}

/** SMFIC_CONNECT data: hostname\0, family byte, then (unless unknown) port uint16 and address\0. */
export function parseConnect(data: Buffer): ConnectInfo {
  const nul = data.indexOf(0);
  if (nul === -1 || nul + 1 >= data.length) throw new ProtocolError('milter CONNECT without hostname or family');
  const hostname = data.subarray(0, nul).toString('utf8');
  const fam = data[nul + 1];
  if (fam === Family.UNKNOWN) return { hostname, family: 'unknown', port: null, address: null };
  const family = fam === Family.INET ? 'inet' : fam === Family.INET6 ? 'inet6' : fam === Family.UNIX ? 'unix' : null;
  if (!family) throw new ProtocolError(`milter CONNECT with unknown address family 0x${(fam ?? 0).toString(16)}`);
  if (data.length < nul + 4) throw new ProtocolError('milter CONNECT without port');
  const port = data.readUInt16BE(nul + 2);
  const rest = data.subarray(nul + 4);
  const end = rest.indexOf(0);
  const address = rest.subarray(0, end === -1 ? rest.length : end).toString('utf8');
  return { hostname, family, port, address };
}

/** SMFIC_MACRO data: the command byte they belong to, then name\0value\0 pairs. */
export function parseMacros(data: Buffer): { forCommand: number; macros: Map<string, string> } {
  if (data.length < 1) throw new ProtocolError('milter MACRO without a command byte');
  const parts = parseStrings(data.subarray(1));
  const macros = new Map<string, string>();
  for (let i = 0; i + 1 < parts.length; i += 2) macros.set(parts[i]!, parts[i + 1]!);
  return { forCommand: data[0]!, macros };
}

/** SMFIR_REPLYCODE: "ddd d.d.d text", NUL-terminated. '%' is doubled: Sendmail reads it as a format. */
export function encodeReplyCode(text: string): Buffer {
  if (!/^[45]\d\d [45]\.\d{1,3}\.\d{1,3} /.test(text) || /[\0\r\n]/.test(text)) {
    throw new TypeError(`not a single-line 4xx/5xx reply with enhanced status: ${JSON.stringify(text)}`);
  }
  return encodeMilterPacket(Reply.REPLYCODE, Buffer.from(`${text.replace(/%/g, '%%')}\0`, 'utf8'));
}
