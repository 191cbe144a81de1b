import { isUtf8 } from 'node:buffer';
import type { Entry } from 'ldapts';
import { ENUMERATED, INTEGER, OCTET_STRING, SEARCH_DONE, SEARCH_ENTRY, SEARCH_REFERENCE, SEQUENCE, SET } from './ber.js';
import { referenceMayHoldRecipients } from './references.js';

/**
 * Reads the answers to lookup searches straight off an LDAP connection's byte stream. ldapts
 * parses every message into objects (a reader per message, an Attribute per attribute, a
 * SearchEntry, then `toObject`), and on the cold path that was the largest share of CPU left
 * that was not a system call. Here each message is framed once; the entries and the result of a
 * lookup search (its message ID registered by raw-search.ts) are decoded in one pass into the
 * objects `toObject` would give; every other message (bind, StartTLS, listings, anything
 * unexpected) goes whole to ldapts' own parser, as before.
 *
 * Bytes that are not an LDAP message (RFC 4511 §5.1: a definite-length SEQUENCE starting with
 * its message ID), or a message larger than any answer we ask for, mean the stream cannot be
 * trusted: `broken` is called and nothing more is read, and the connection is closed by its
 * owner, which fails and retries the searches on it. A malformed lookup answer does the same.
 */

/** Far beyond any lookup answer or listing page; bounds what one connection may buffer. */
const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;
/** The same for all the entries of one lookup answer: the size limit bounds their number, not their sum. */
const MAX_ANSWER_BYTES = MAX_MESSAGE_BYTES;


/** Where a lookup search's answer goes while it is read (raw-search.ts). */
export interface LookupSink {
  /** Attributes the search asked for: one the server did not return reads as []. */
  readonly attributes: readonly string[];
  readonly entries: Entry[];
  /** The search's size limit (0: none): a server that sends more entries does not keep to it. */
  readonly maxEntries: number;
  /** Bytes of the entries read so far (MAX_ANSWER_BYTES). */
  bytes: number;
  /** The first continuation reference that may hold recipients (references.ts): the answer is partial. */
  referral?: string | undefined;
  /** The SearchResultDone: result code and diagnostic message. */
  finish(status: number, errorMessage: string): void;
}

export interface MessageStreamHandlers {
  /** The sink of the lookup search outstanding under `id`, if it is one. */
  lookup(id: number): LookupSink | undefined;
  /** Any other message, whole. */
  other(message: Buffer): void;
  /** A message with this ID arrived (0: a Notice of Disconnection). */
  heard(id: number): void;
  /** The stream cannot go on. */
  broken(reason: string): void;
}

class BadAnswer extends Error {}

/** A BER element: its tag and where its contents start and end. */
class Cursor {
  tag = 0;
  start = 0;
  end = 0;

  constructor(private readonly b: Buffer) {}

  /** Reads the element at `at`, which must end by `limit`; returns where its contents end. */
  read(at: number, limit: number, tag?: number): number {
    const b = this.b;
    if (at + 2 > limit) throw new BadAnswer('truncated element');
    this.tag = b[at]!;
    if (tag !== undefined && this.tag !== tag) throw new BadAnswer(`expected tag 0x${tag.toString(16)}, got 0x${this.tag.toString(16)}`);
    let length = b[at + 1]!;
    let start = at + 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0 || n > 4 || start + n > limit) throw new BadAnswer('bad length');
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + b[start + i]!;
      start += n;
    }
    if (start + length > limit) throw new BadAnswer('element overruns its parent');
    this.start = start;
    this.end = start + length;
    return this.end;
  }

  integer(): number {
    const n = this.end - this.start;
    if (n < 1 || n > 4) throw new BadAnswer('bad integer');
    let v = this.b[this.start]! & 0x80 ? -1 : 0;
    for (let i = this.start; i < this.end; i++) v = v * 256 + this.b[i]!;
    return v;
  }

  text(): string {
    return this.b.toString('utf8', this.start, this.end);
  }

  bytes(): Buffer {
    return this.b.subarray(this.start, this.end);
  }
}

/** Size of the message at `at` (header included); 0 while its header is incomplete; -1 when not LDAP. */
function messageSize(b: Buffer, at: number): number {
  if (b[at] !== SEQUENCE) return -1;
  if (at + 2 > b.length) return 0;
  const first = b[at + 1]!;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 4) return -1; // indefinite lengths are not LDAP
  if (at + 2 + n > b.length) return 0;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + b[at + 2 + i]!;
  return length > MAX_MESSAGE_BYTES ? -1 : 2 + n + length;
}

export class LdapMessageStream {
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes the held message needs in all (0: its header is not complete yet). */
  private needed = 0;
  private stopped = false;

  constructor(private readonly h: MessageStreamHandlers) {}

  /** Forgets a partial message (its socket closed). */
  reset(): void {
    this.held = [];
    this.heldBytes = 0;
    this.needed = 0;
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
    let b = chunk;
    if (this.heldBytes > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.needed > 0 && this.heldBytes < this.needed) return;
      b = Buffer.concat(this.held, this.heldBytes);
      this.reset();
    }
    let at = 0;
    while (at < b.length) {
      const size = messageSize(b, at);
      if (size < 0) return this.stop('the directory sent bytes that are not an LDAP message');
      if (size === 0 || at + size > b.length) {
        this.held = [b.subarray(at)];
        this.heldBytes = b.length - at;
        this.needed = size;
        return;
      }
      this.message(b.subarray(at, at + size));
      if (this.stopped) return;
      at += size;
    }
  }

  private stop(reason: string): void {
    this.stopped = true;
    this.reset();
    this.h.broken(reason);
  }

  private message(m: Buffer): void {
    const c = new Cursor(m);
    let id: number;
    let op: number;
    try {
      const end = c.read(0, m.length, SEQUENCE);
      const opAt = c.read(c.start, end, INTEGER);
      id = c.integer();
      c.read(opAt, end);
      op = c.tag;
    } catch {
      return this.stop('the directory sent a malformed LDAP message');
    }
    this.h.heard(id);
    const sink = op === SEARCH_ENTRY || op === SEARCH_DONE || op === SEARCH_REFERENCE ? this.h.lookup(id) : undefined;
    if (sink === undefined) return this.h.other(m);
    try {
      if (op === SEARCH_ENTRY) {
        // Memory stays bounded whatever the server sends: past the size limit asked, stop reading.
        if (sink.maxEntries > 0 && sink.entries.length >= sink.maxEntries) throw new BadAnswer(`more entries than the size limit of ${sink.maxEntries}`);
        sink.bytes += m.length;
        if (sink.bytes > MAX_ANSWER_BYTES) throw new BadAnswer(`entries of more than ${MAX_ANSWER_BYTES} bytes in all`);
        sink.entries.push(readEntry(c, sink.attributes));
      } else if (op === SEARCH_DONE) {
        readDone(c, sink);
      } else if (sink.referral === undefined) {
        // A continuation reference (RFC 4511 §4.5.3) is not followed; it is noted, since the part of
        // the scope it names was not searched.
        readReference(c, sink);
      }
    } catch (err) {
      // Nothing may escape from a socket's data event (the process would stop): a fault of ours
      // past the parse closes this connection like a malformed answer, and its searches retry.
      this.stop(err instanceof BadAnswer ? `the directory sent a malformed search answer (${err.message})` : `internal error while reading a search answer: ${String(err)}`);
    }
  }
}

/** LDAPResult: resultCode, matchedDN, diagnosticMessage (a referral and controls are not read). */
function readDone(c: Cursor, sink: LookupSink): void {
  const end = c.end;
  let at = c.read(c.start, end, ENUMERATED);
  const status = c.integer();
  at = c.read(at, end, OCTET_STRING);
  c.read(at, end, OCTET_STRING);
  sink.finish(status, c.text());
}

/** SearchResultReference: SEQUENCE OF LDAPURL; notes the first that may hold recipients. */
function readReference(c: Cursor, sink: LookupSink): void {
  const end = c.end;
  for (let at = c.start; at < end; ) {
    at = c.read(at, end, OCTET_STRING);
    const uri = c.text();
    if (referenceMayHoldRecipients(uri)) {
      sink.referral = uri;
      return;
    }
  }
}

/**
 * SearchResultEntry as ldapts' `toObject(attributes, [])` gives it: the DN; per attribute one
 * value as itself, several as an array, none as []; every value of an attribute as a Buffer when
 * its type is `;binary` or one value is not UTF-8 (a leading byte-order mark dropped, as the
 * TextDecoder ldapts uses does); a requested attribute not returned as [].
 */
function readEntry(c: Cursor, attributes: readonly string[]): Entry {
  const entryEnd = c.end;
  let at = c.read(c.start, entryEnd, OCTET_STRING);
  const entry: Entry = { dn: c.text() };
  const listEnd = c.read(at, entryEnd, SEQUENCE);
  const returned: string[] = [];
  for (at = c.start; at < listEnd; ) {
    const attributeEnd = c.read(at, listEnd, SEQUENCE);
    const setAt = c.read(c.start, attributeEnd, OCTET_STRING);
    const type = c.text();
    const setEnd = c.read(setAt, attributeEnd, SET);
    const raw: Buffer[] = [];
    for (let v = c.start; v < setEnd; ) {
      v = c.read(v, setEnd, OCTET_STRING);
      raw.push(c.bytes());
    }
    returned.push(type);
    entry[type] = values(type, raw);
    at = attributeEnd;
  }
  for (const name of attributes) {
    if (entry[name] !== undefined) continue;
    const lower = name.toLowerCase();
    if (!returned.some((t) => t.toLowerCase() === lower)) entry[name] = [];
  }
  return entry;
}

function values(type: string, raw: Buffer[]): string | string[] | Buffer | Buffer[] {
  let binary = /;binary$/i.test(type);
  for (let i = 0; i < raw.length && !binary; i++) binary = !isUtf8(raw[i]!);
  if (binary) return raw.length === 1 ? raw[0]! : raw;
  const texts = raw.map((v) => (v.length >= 3 && v[0] === 0xef && v[1] === 0xbb && v[2] === 0xbf ? v.toString('utf8', 3) : v.toString('utf8')));
  return texts.length === 1 ? texts[0]! : texts;
}
