import { PagedResultsControl, type Control, type Entry, type Filter } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';
import { deadlineRace, type LdapConnection } from './connection.js';
import { toDirectoryError } from './ldap-errors.js';
import { rawSearch, resultError } from './raw-search.js';

/**
 * A paged search (RFC 2696) that follows the server's cookie to the end. A page may come back
 * empty yet carry a cookie (a server that filters after paging, or whose entries on that page
 * were all hidden by ACLs): the listing goes on. ldapts' own paged search stops at the first
 * empty page, which would publish a truncated listing as complete.
 */

export interface PagedOptions {
  baseDN: string;
  scope: 'base' | 'one' | 'sub';
  filter: Filter;
  attributes: string[];
  pageSize: number;
  /** Each page must come back within this. */
  pageTimeoutMs: number;
  timeoutText: string;
  signal?: AbortSignal | undefined;
  /** Sent with every page besides the paging control. */
  controls?: Control[];
  /** A search for hints, not for the whole directory (snapshot/changes.ts): a part referred elsewhere is only not searched. */
  ignoreReferences?: boolean;
}

/** A server that keeps answering empty pages with a cookie is broken, not slow: stop after this many in a row. */
const MAX_EMPTY_PAGES = 1_000;

export async function* pagedSearch(conn: Pick<LdapConnection, 'client' | 'url'>, o: PagedOptions): AsyncGenerator<Entry[]> {
  let cookie: Buffer = Buffer.alloc(0);
  for (let empty = 0; ; ) {
    const control = new PagedResultsControl({ value: { size: o.pageSize, cookie } });
    let page;
    try {
      const search = rawSearch(conn.client, { baseDN: o.baseDN, scope: o.scope, filter: o.filter, attributes: o.attributes, sizeLimit: 0, timeLimit: 0, controls: [...(o.controls ?? []), control] });
      page = await deadlineRace(
        search,
        o.pageTimeoutMs,
        () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP paged search on ${conn.url} got no answer within ${o.timeoutText}`),
        o.signal,
      );
    } catch (err) {
      throw toDirectoryError(err, { operation: 'paged search', url: conn.url });
    }
    // Any non-success ends the listing as a failure: a partial listing must never pass for a whole one.
    if (page.status !== 0) throw toDirectoryError(resultError(page), { operation: 'paged search', url: conn.url });
    // So does a part of the base referred to another server: its entries are not in the listing.
    if (page.referral !== undefined && !o.ignoreReferences) {
      throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `LDAP paged search on ${conn.url} was referred to ${page.referral} for part of the search base (not chased): the listing would lack its entries`);
    }
    if (page.entries.length > 0) yield page.entries;
    const next = page.controls.find((c): c is PagedResultsControl => c instanceof PagedResultsControl)?.value?.cookie;
    if (!next || next.length === 0) return;
    empty = page.entries.length === 0 ? empty + 1 : 0;
    if (empty >= MAX_EMPTY_PAGES) {
      throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `LDAP paged search on ${conn.url}: ${MAX_EMPTY_PAGES} empty pages in a row, each with a cookie; giving up`);
    }
    cookie = next;
  }
}
