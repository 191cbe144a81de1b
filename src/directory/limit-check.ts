import { DirectoryError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import { deadlineRace, type LdapConnection } from './connection.js';
import { expandFilter, parseFilter } from './filter.js';
import type { LdapSearchPlan } from './presets.js';
import { rawSearch } from './raw-search.js';

/**
 * A server limit that refuses a lookup's search (sizeLimitExceeded with no entry,
 * adminLimitExceeded) is about that address when more entries hold it than the service account
 * may examine: a partial answer, the directory up. It is about every address when the server
 * cannot use the index of the filter's attributes (a server restored without it, an index
 * dropped) and a limit on unindexed searches (slapd `size.unchecked`) refuses them all: that
 * server is failing, and its lookups belong on another URL, the breaker and
 * rcptgate_directory_up. A search for an address no entry holds tells the two apart: with the
 * index it examines nothing. One check per server at a time; its verdict holds for a while.
 */

/** The address the check searches for (RFC 2606 .invalid: no entry holds it). */
const NOBODY = 'limit-check@rcptgate.invalid';
/** How long a verdict holds; then the next limit result asks again. */
const VERDICT_MS = 30_000;

function isLimit(status: number): boolean {
  return status === 4 || status === 11;
}

export interface LimitCheckOptions {
  plan: LdapSearchPlan;
  baseDN: string;
  scope: 'base' | 'one' | 'sub';
  timeoutMs: number;
  log: Logger;
}

export class LimitCheck {
  private readonly verdicts = new Map<string, { everySearch: boolean; at: number }>();
  private readonly checking = new Set<string>();

  constructor(private readonly o: LimitCheckOptions) {}

  /**
   * `status` came back on `conn`: true when it is a limit its server puts on every search (known
   * from a check). The first limit result from a server starts a check and counts as partial.
   */
  refusesEverySearch(conn: LdapConnection, status: number): boolean {
    if (!isLimit(status)) return false;
    const known = this.verdicts.get(conn.url);
    const fresh = known !== undefined && performance.now() - known.at < VERDICT_MS;
    if (!fresh && !this.checking.has(conn.url)) this.check(conn);
    return fresh && known.everySearch;
  }

  private check(conn: LdapConnection): void {
    const url = conn.url;
    this.checking.add(url);
    const filter = parseFilter(expandFilter(this.o.plan.lookupFilter, NOBODY));
    const search = rawSearch(conn.client, { baseDN: this.o.baseDN, scope: this.o.scope, filter, attributes: ['1.1'], sizeLimit: 1, timeLimit: 0 });
    deadlineRace(search, this.o.timeoutMs, () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'limit check timed out'))
      .then(
        (result) => {
          const everySearch = isLimit(result.status);
          if (everySearch && !this.verdicts.get(url)?.everySearch) {
            this.o.log.warn({ url, status: result.status }, 'LDAP server refuses even a search for an address no entry holds with a limit: it refuses every lookup (is the index of the filter attributes missing?); counting it as failing');
          }
          this.verdicts.set(url, { everySearch, at: performance.now() });
        },
        () => undefined, // no verdict: the next limit result asks again
      )
      .finally(() => this.checking.delete(url));
  }
}

/** The error of a limit result from a server that refuses every search: a failure, not a partial answer. */
export function everySearchRefused(err: DirectoryError): DirectoryError {
  return new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `${err.message}; the server refuses a search for an address no entry holds too (is the index of the filter attributes missing?)`, { cause: err });
}
