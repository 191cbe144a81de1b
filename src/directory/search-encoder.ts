import { OrFilter, PresenceFilter, SearchRequest, type BerWriter, type Filter } from 'ldapts';
import { BOOLEAN, ENUMERATED, OCTET_STRING, SEARCH_REQUEST, SEQUENCE, element, intSize, lengthSize, writeInt, writeLength } from './ber.js';
import { ADDRESS_MARKS, compileFilter, parseMarked, splitAddress } from './filter.js';

/**
 * The wire bytes of a lookup search, written directly. ldapts builds a filter object tree per
 * search and encodes every message through a fresh 1 KB zero-filled buffer whose sequence lengths
 * are fixed up by shifting bytes; on the cold path that was a large share of our CPU per lookup.
 * Here the filter template is compiled once into constant byte runs and the places where the
 * address goes; a search is then measured and written in one pass into one exact-size buffer.
 *
 * The bytes are exactly ldapts' own encoding of the same request (minimal BER lengths and
 * integers): compile() checks that on a sample address and falls back to ldapts' objects when they
 * differ, and the unit tests compare both encodings on many addresses and batch sizes.
 */

/** Which part of the address a value piece takes. */
const PART = { address: 0, local: 1, domain: 2 } as const;

/** A run of constant bytes, an element with a substituted text value, or a sequence of these. */
type Node = { kind: 'bytes'; bytes: Buffer } | { kind: 'value'; tag: number; pieces: (string | number)[] } | { kind: 'seq'; tag: number; children: Node[] };

/** Records what a filter writes (the subset of BerWriter that ldapts' filters use) as a tree. */
class Recorder {
  private readonly stack: { tag: number; items: Item[] }[] = [{ tag: 0, items: [] }];

  get items(): Item[] {
    if (this.stack.length !== 1) throw new Error('unended sequence');
    return this.stack[0]!.items;
  }

  startSequence(tag = SEQUENCE): void {
    this.stack.push({ tag, items: [] });
  }

  endSequence(): void {
    const done = this.stack.pop();
    if (!done || this.stack.length === 0) throw new Error('no sequence to end');
    this.top.push({ seq: done.tag, items: done.items });
  }

  writeString(value: string, tag = OCTET_STRING): void {
    this.top.push({ tag, text: value });
  }

  writeBuffer(value: Buffer, tag: number): void {
    this.top.push({ raw: element(tag, value) });
  }

  writeByte(value: number): void {
    this.top.push({ raw: Buffer.from([value]) });
  }

  writeBoolean(value: boolean, tag = BOOLEAN): void {
    this.top.push({ raw: Buffer.from([tag, 0x01, value ? 0xff : 0x00]) });
  }

  private get top(): Item[] {
    return this.stack[this.stack.length - 1]!.items;
  }
}

type Item = { raw: Buffer } | { tag: number; text: string } | { seq: number; items: Item[] };

const MARKS: readonly (readonly [string, number])[] = [
  [ADDRESS_MARKS.address, PART.address],
  [ADDRESS_MARKS.local, PART.local],
  [ADDRESS_MARKS.domain, PART.domain],
];

/** A text split at the address marks: constant strings and part numbers. */
function pieces(text: string): (string | number)[] {
  const out: (string | number)[] = [];
  let rest = text;
  for (;;) {
    let at = -1;
    let mark: readonly [string, number] | undefined;
    for (const m of MARKS) {
      const i = rest.indexOf(m[0]);
      if (i >= 0 && (at < 0 || i < at)) [at, mark] = [i, m];
    }
    if (!mark) break;
    if (at > 0) out.push(rest.slice(0, at));
    out.push(mark[1]);
    rest = rest.slice(at + mark[0].length);
  }
  if (rest !== '') out.push(rest);
  return out;
}

function toNode(item: Item): Node {
  if ('raw' in item) return { kind: 'bytes', bytes: item.raw };
  if ('text' in item) {
    const p = pieces(item.text);
    return p.some((x) => typeof x === 'number') ? { kind: 'value', tag: item.tag, pieces: p } : { kind: 'bytes', bytes: element(item.tag, Buffer.from(item.text, 'utf8')) };
  }
  const children = merge(item.items.map(toNode));
  if (children.every((c) => c.kind === 'bytes')) return { kind: 'bytes', bytes: element(item.seq, Buffer.concat(children.map((c) => (c as { bytes: Buffer }).bytes))) };
  return { kind: 'seq', tag: item.seq, children };
}

/** Adjacent constant runs as one. */
function merge(nodes: Node[]): Node[] {
  const out: Node[] = [];
  for (const n of nodes) {
    const last = out[out.length - 1];
    if (n.kind === 'bytes' && last?.kind === 'bytes') out[out.length - 1] = { kind: 'bytes', bytes: Buffer.concat([last.bytes, n.bytes]) };
    else out.push(n);
  }
  return out;
}

/** The template as a tree of constant runs and address values; null when it is not one filter we can record. */
function compileTree(template: string): Node | null {
  try {
    const recorder = new Recorder();
    parseMarked(template).write(recorder as unknown as BerWriter);
    const items = recorder.items;
    return items.length === 1 ? toNode(items[0]!) : null;
  } catch {
    return null;
  }
}

export interface LookupSearchShape {
  baseDN: string;
  scope: 'base' | 'one' | 'sub';
  attributes: readonly string[];
  /** Seconds the server may spend. */
  timeLimit: number;
}

const SCOPES = { base: 0, one: 1, sub: 2 } as const;

/**
 * derefFindingBaseObj: a base DN that is an alias (a renamed OU, its old name left pointing at the
 * new one) is searched where it points. With "never", slapd searched the alias entry itself and
 * answered success with no entries: every address unknown. Aliases below the base are not followed.
 */
export const DEREF_ALIASES = 'find';
const DEREF_FIND = 2;

/** Encodes lookup searches of one filter template; see the file comment. */
export class LookupEncoder {
  private root: Node | null;
  /** baseDN, scope and derefAliases (DEREF_ALIASES): everything before sizeLimit. */
  private readonly head: Buffer;
  /** timeLimit and typesOnly (false): between sizeLimit and the filter. */
  private readonly middle: Buffer;
  /** The attribute list: after the filter. */
  private readonly tail: Buffer;
  /** ldapts' objects, for a template we cannot encode ourselves. */
  private readonly filterOf: (address: string) => Filter;
  /** Per-search scratch: texts and lengths in the order write() consumes them. */
  private readonly texts: string[] = [];
  private readonly lengths: number[] = [];
  private readonly cursor = { text: 0, length: 0 };
  /** The last key split into its parts (templates with %u or %d). */
  private split = { key: '', local: '', domain: '' };

  constructor(
    template: string,
    private readonly shape: LookupSearchShape,
  ) {
    this.filterOf = compileFilter(template);
    this.head = Buffer.concat([element(OCTET_STRING, Buffer.from(shape.baseDN, 'utf8')), Buffer.from([ENUMERATED, 0x01, SCOPES[shape.scope], ENUMERATED, 0x01, DEREF_FIND])]);
    const time = Buffer.alloc(6);
    this.middle = Buffer.concat([time.subarray(0, writeInt(time, 0, shape.timeLimit)), Buffer.from([BOOLEAN, 0x01, 0x00])]);
    this.tail = element(SEQUENCE, Buffer.concat(shape.attributes.map((a) => element(OCTET_STRING, Buffer.from(a, 'utf8')))));
    this.root = compileTree(template);
    // The proof: an address with every kind of character, against ldapts' own bytes.
    const sample = ['Ab.c+d*(x)\\@bücher.example', 'é@x'];
    if (this.root !== null && !this.encode(7, sample, 32).equals(this.viaLdapts(7, sample, 32))) this.root = null;
  }

  /** The attributes every search asks for. */
  get attributes(): readonly string[] {
    return this.shape.attributes;
  }

  /** True when searches are written here, not by ldapts (for tests). */
  get direct(): boolean {
    return this.root !== null;
  }

  /** The whole LDAPMessage of a search for `keys` (one: its filter; several: their OR). */
  encode(messageId: number, keys: readonly string[], sizeLimit: number): Buffer {
    if (this.root === null || !this.usable(keys)) return this.viaLdapts(messageId, keys, sizeLimit);
    this.texts.length = 0;
    this.lengths.length = 0;
    let filter = 0;
    for (let i = 0; i < keys.length; i++) filter += this.measure(this.root, keys[i]!);
    const filterSize = keys.length === 1 ? filter : 1 + lengthSize(filter) + filter;
    const op = this.head.length + 2 + intSize(sizeLimit) + this.middle.length + filterSize + this.tail.length;
    const message = 2 + intSize(messageId) + 1 + lengthSize(op) + op;
    const buf = Buffer.allocUnsafe(1 + lengthSize(message) + message);
    let off = 0;
    buf[off++] = SEQUENCE;
    off = writeLength(buf, off, message);
    off = writeInt(buf, off, messageId);
    buf[off++] = SEARCH_REQUEST;
    off = writeLength(buf, off, op);
    off += this.head.copy(buf, off);
    off = writeInt(buf, off, sizeLimit);
    off += this.middle.copy(buf, off);
    if (keys.length > 1) {
      buf[off++] = 0xa1;
      off = writeLength(buf, off, filter);
    }
    const cursor = this.cursor;
    cursor.text = 0;
    cursor.length = 0;
    for (let i = 0; i < keys.length; i++) off = this.write(this.root, buf, off, cursor);
    off += this.tail.copy(buf, off);
    if (off !== buf.length) throw new Error(`LDAP search encoding wrote ${off} of ${buf.length} bytes`);
    return buf;
  }

  /** ldapts' encoding of the same search: the reference, and the fallback. */
  viaLdapts(messageId: number, keys: readonly string[], sizeLimit: number): Buffer {
    const filter = keys.length === 1 ? this.filterOf(keys[0]!) : new OrFilter({ filters: keys.map(this.filterOf) });
    const { baseDN, scope, attributes, timeLimit } = this.shape;
    return new SearchRequest({ messageId, baseDN, scope, filter, attributes: [...attributes], sizeLimit, timeLimit, derefAliases: DEREF_ALIASES }).write();
  }

  /**
   * ldapts omits an empty substring part (`if (this.initial)`): with an empty address part the
   * shape could differ, so such keys go through ldapts. Real addresses have both parts.
   */
  private usable(keys: readonly string[]): boolean {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const at = key.lastIndexOf('@');
      if (at <= 0 || at === key.length - 1) return false;
    }
    return true;
  }

  private measure(node: Node, key: string): number {
    if (node.kind === 'bytes') return node.bytes.length;
    if (node.kind === 'value') {
      const text = this.text(node.pieces, key);
      const size = Buffer.byteLength(text, 'utf8');
      this.texts.push(text);
      this.lengths.push(size);
      return 1 + lengthSize(size) + size;
    }
    const slot = this.lengths.length;
    this.lengths.push(0);
    let content = 0;
    for (let i = 0; i < node.children.length; i++) content += this.measure(node.children[i]!, key);
    this.lengths[slot] = content;
    return 1 + lengthSize(content) + content;
  }

  private write(node: Node, buf: Buffer, off: number, cursor: { text: number; length: number }): number {
    if (node.kind === 'bytes') return off + node.bytes.copy(buf, off);
    buf[off++] = node.tag;
    off = writeLength(buf, off, this.lengths[cursor.length++]!);
    if (node.kind === 'value') return off + buf.write(this.texts[cursor.text++]!, off, 'utf8');
    for (let i = 0; i < node.children.length; i++) off = this.write(node.children[i]!, buf, off, cursor);
    return off;
  }

  private text(pieces: (string | number)[], key: string): string {
    if (pieces.length === 1 && pieces[0] === PART.address) return key;
    if (this.split.key !== key) this.split = { key, ...splitAddress(key) };
    let out = '';
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      out += typeof p === 'string' ? p : p === PART.address ? key : p === PART.local ? this.split.local : this.split.domain;
    }
    return out;
  }
}

/** A placeholder for SearchRequest's `filter`: an encoded request never writes it. */
export const ENCODED_FILTER = new PresenceFilter({ attribute: 'objectClass' });
