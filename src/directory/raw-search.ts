import { Client, SearchRequest, StatusCodeParser, type Control, type Entry, type Filter, type MessageResponse, type ResultCodeError, type SearchResponse } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';

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
function cheapLogText(this: SearchRequest): string {
  return `SearchRequest #${this.messageId}`;
}

export async function rawSearch(client: Client, options: RawSearchOptions): Promise<RawSearchResult> {
  if (!hasRawSearch(client)) {
    throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'this ldapts version lacks Client._send/_nextMessageId: pin the version in package.json');
  }
  const internals = client as unknown as ClientInternals;
  const request = new SearchRequest({
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
  Object.defineProperty(request, 'toJSON', { value: cheapLogText });
  const response = await internals._send(request);
  if (!response) throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'LDAP search ended without a result message');
  const entries: Entry[] = [];
  for (const entry of response.searchEntries) entries.push(entry.toObject(options.attributes, []));
  return { status: response.status, errorMessage: response.errorMessage, entries, controls: response.controls ?? [] };
}

/** The ldapts error class for a non-success result, so ldap-errors.ts words it like any other. */
export function resultError(result: Pick<RawSearchResult, 'status' | 'errorMessage'>): ResultCodeError {
  return StatusCodeParser.parse({ status: result.status, errorMessage: result.errorMessage } as MessageResponse);
}
