import { Client, SearchRequest, StatusCodeParser, type Control, type Entry, type Filter, type MessageResponse, type ResultCodeError, type SearchEntry, type SearchResponse } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';
import type { LookupSink } from './lookup-reader.js';
import { recipientReference } from './references.js';
import { DEREF_ALIASES, ENCODED_FILTER, type LookupEncoder } from './search-encoder.js';

/**
 * One LDAP search whose whole answer we see: result code, entries and response controls.
 *
 * ldapts' public `search()` hides two things a mail gate must see. With a client size limit it
 * treats sizeLimitExceeded (4) as success, so a search cut off before its first entry looks like
 * "no such entry"; and it never returns response controls, while its paged search stops at the
 * first empty page even when that page carries a cookie. So we send the SearchRequest through
 * the client's own message path (`_send`: message IDs, demultiplexing, socket errors all stay
 * ldapts'), and judge the result ourselves. The internals used are checked on every call and by
 * a unit test, so an ldapts upgrade that renames them fails loudly, never silently.
 */

export interface RawSearchOptions {
  baseDN: string;
  scope: 'base' | 'one' | 'sub';
  filter: Filter;
  attributes: string[];
  /** Entries the server may return; 0 = no client limit. */
  sizeLimit: number;
  /** Seconds the server may spend; 0 = no client limit. */
  timeLimit: number;
  controls?: Control[];
}

export interface RawSearchResult {
  /** LDAP result code (0 success). */
  status: number;
  errorMessage: string;
  entries: Entry[];
  controls: Control[];
  /** A continuation reference that may hold recipients (references.ts): the entries are not all there are. */
  referral?: string | undefined;
}

/** What ldapts keeps per outstanding message ID: its parser answers it, a closing socket fails it. */
interface MessageDetails {
  message: SearchRequest;
  resolve(response: SearchResponse | undefined): void;
  reject(err: unknown): void;
  timeoutTimer: null;
  socket: unknown;
}

interface ClientInternals {
  _nextMessageId(): number;
  _send(message: SearchRequest): Promise<SearchResponse | undefined>;
  messageDetailsByMessageId: Map<string, MessageDetails>;
  socket?: { write(bytes: Buffer): boolean };
  connected: boolean;
}

/** True when this ldapts exposes the message path we rely on. */
export function hasRawSearch(client: Client): boolean {
  const c = client as unknown as Partial<ClientInternals>;
  return typeof c._send === 'function' && typeof c._nextMessageId === 'function' && c.messageDetailsByMessageId instanceof Map;
}

/** `_send` logs `JSON.stringify(message)` eagerly (even with debug logging off): keep that cheap. */
class QuietSearchRequest extends SearchRequest {
  toJSON(): string {
    return `SearchRequest #${this.messageId}`;
  }
}

/** A lookup search whose bytes search-encoder.ts wrote; ldapts only frames and demultiplexes it. */
class EncodedSearchRequest extends QuietSearchRequest {
  constructor(
    messageId: number,
    private readonly bytes: Buffer,
  ) {
    super({ messageId, filter: ENCODED_FILTER });
  }

  override write(): Buffer {
    return this.bytes;
  }
}

function internalsOf(client: Client): ClientInternals {
  if (!hasRawSearch(client)) {
    throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'this ldapts version lacks Client._send/_nextMessageId/messageDetailsByMessageId: pin the version in package.json');
  }
  return client as unknown as ClientInternals;
}

export async function rawSearch(client: Client, options: RawSearchOptions): Promise<RawSearchResult> {
  const internals = internalsOf(client);
  const request = new QuietSearchRequest({
    messageId: internals._nextMessageId(),
    baseDN: options.baseDN,
    scope: options.scope,
    filter: options.filter,
    attributes: options.attributes,
    sizeLimit: options.sizeLimit,
    timeLimit: options.timeLimit,
    derefAliases: DEREF_ALIASES,
    ...(options.controls ? { controls: options.controls } : {}),
  });
  return result(await internals._send(request), options.attributes);
}

/**
 * Sends a lookup search for `keys` (their OR when several), written by `encoder`; `done` or
 * `failed` is called once. It registers the message ID as ldapts' `_send` does, so a socket that
 * closes or errs still fails it, but without what `_send` adds per message on the cold path: a
 * promise and its `finally`, a write callback, a debug line built eagerly. The answer is handed
 * over by lookup-reader.ts from the connection's data, with no promise between.
 */
export function sendLookupSearch(
  client: Client,
  encoder: LookupEncoder,
  keys: readonly string[],
  sizeLimit: number,
  done: (result: RawSearchResult) => void,
  failed: (err: unknown) => void,
): void {
  const internals = internalsOf(client);
  const socket = internals.socket;
  if (!internals.connected || !socket) {
    // `_send`'s own words (a lost connection: retried elsewhere), never within the caller's turn.
    queueMicrotask(() => failed(new Error('Socket connection not established')));
    return;
  }
  const messageId = internals._nextMessageId();
  const request = new EncodedSearchRequest(messageId, encoder.encode(messageId, keys, sizeLimit));
  const registry = internals.messageDetailsByMessageId;
  registry.set(String(messageId), new LookupDetails(request, socket, encoder.attributes, sizeLimit, registry, done, failed));
  socket.write(request.write());
}

/**
 * A lookup search outstanding on a connection, kept where ldapts keeps its messages, so a socket
 * that closes or fails fails it like any other. lookup-reader.ts reads its answer into it (ldapts'
 * parser does where that reader is not in front of the socket).
 */
class LookupDetails implements MessageDetails, LookupSink {
  readonly timeoutTimer = null;
  readonly entries: Entry[] = [];
  referral: string | undefined = undefined;
  bytes = 0;

  constructor(
    readonly message: EncodedSearchRequest,
    readonly socket: unknown,
    readonly attributes: readonly string[],
    readonly maxEntries: number,
    private readonly registry: Map<string, MessageDetails>,
    private readonly done: (result: RawSearchResult) => void,
    readonly reject: (err: unknown) => void,
  ) {}

  finish(status: number, errorMessage: string): void {
    this.registry.delete(String(this.message.messageId));
    this.done({ status, errorMessage, entries: this.entries, controls: [], referral: this.referral });
  }

  resolve(response: SearchResponse | undefined): void {
    let answer: RawSearchResult;
    try {
      answer = result(response, this.attributes);
    } catch (err) {
      this.reject(err);
      return;
    }
    this.done(answer);
  }
}

/** The lookup search outstanding under message `id` on `client`, if that is what it is. */
export function lookupSinkOf(client: Client, id: number): LookupSink | undefined {
  const details = (client as unknown as ClientInternals).messageDetailsByMessageId.get(String(id));
  return details instanceof LookupDetails ? details : undefined;
}

function result(response: SearchResponse | undefined, attributes: readonly string[]): RawSearchResult {
  if (!response) throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'LDAP search ended without a result message');
  const entries: Entry[] = [];
  for (const entry of response.searchEntries) entries.push(entryObject(entry, attributes));
  const referral = response.searchReferences.length === 0 ? undefined : recipientReference(response.searchReferences.flatMap((r) => r.uris));
  return { status: response.status, errorMessage: response.errorMessage, entries, controls: response.controls ?? [], referral };
}

/**
 * What ldapts' `SearchEntry.toObject(attributes, [])` returns, built without its per-entry set
 * and locale-aware lowercasing (a share of the cold path's CPU): one value as itself, several
 * as an array, none as []; every value as a Buffer when one is not text; a requested attribute
 * the server did not return as []. A unit test holds the two to the same output.
 */
export function entryObject(entry: SearchEntry, attributes: readonly string[]): Entry {
  const out: Entry = { dn: entry.name };
  const returned = entry.attributes;
  for (const attribute of returned) {
    const values = attribute.values;
    let binary = false;
    for (let i = 0; i < values.length && !binary; i++) binary = Buffer.isBuffer(values[i]);
    if (binary) {
      const buffers = attribute.parsedBuffers;
      out[attribute.type] = buffers.length === 1 ? buffers[0]! : buffers;
    } else {
      const texts = values as string[];
      out[attribute.type] = texts.length === 1 ? texts[0]! : texts;
    }
  }
  for (const name of attributes) {
    if (out[name] !== undefined) continue;
    const lower = name.toLowerCase();
    if (!returned.some((a) => a.type.toLowerCase() === lower)) out[name] = [];
  }
  return out;
}

/** The ldapts error class for a non-success result, so ldap-errors.ts words it like any other. */
export function resultError(result: Pick<RawSearchResult, 'status' | 'errorMessage'>): ResultCodeError {
  return StatusCodeParser.parse({ status: result.status, errorMessage: result.errorMessage } as MessageResponse);
}
