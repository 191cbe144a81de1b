import { Client, SearchRequest, StatusCodeParser, type Control, type Entry, type Filter, type MessageResponse, type ResultCodeError, type SearchResponse } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';
import { ENCODED_FILTER, type LookupEncoder } from './search-encoder.js';

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
}

interface ClientInternals {
  _nextMessageId(): number;
  _send(message: SearchRequest): Promise<SearchResponse | undefined>;
}

/** True when this ldapts exposes the message path we rely on. */
export function hasRawSearch(client: Client): boolean {
  const c = client as unknown as Partial<ClientInternals>;
  return typeof c._send === 'function' && typeof c._nextMessageId === 'function';
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
    throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'this ldapts version lacks Client._send/_nextMessageId: pin the version in package.json');
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
    derefAliases: 'never',
    ...(options.controls ? { controls: options.controls } : {}),
  });
  return result(await internals._send(request), options.attributes);
}

/** A lookup search for `keys` (their OR when several), written by `encoder`. */
export async function lookupSearch(client: Client, encoder: LookupEncoder, keys: readonly string[], sizeLimit: number): Promise<RawSearchResult> {
  const internals = internalsOf(client);
  const messageId = internals._nextMessageId();
  const request = new EncodedSearchRequest(messageId, encoder.encode(messageId, keys, sizeLimit));
  return result(await internals._send(request), encoder.attributes);
}

function result(response: SearchResponse | undefined, attributes: readonly string[]): RawSearchResult {
  if (!response) throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'LDAP search ended without a result message');
  const entries: Entry[] = [];
  const wanted = attributes as string[];
  for (const entry of response.searchEntries) entries.push(entry.toObject(wanted, []));
  return { status: response.status, errorMessage: response.errorMessage, entries, controls: response.controls ?? [] };
}

/** The ldapts error class for a non-success result, so ldap-errors.ts words it like any other. */
export function resultError(result: Pick<RawSearchResult, 'status' | 'errorMessage'>): ResultCodeError {
  return StatusCodeParser.parse({ status: result.status, errorMessage: result.errorMessage } as MessageResponse);
}
