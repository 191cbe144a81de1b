import type { Control, Entry } from 'ldapts';
import type { Config } from '../config/schema.js';
import { ms } from '../config/duration.js';
import { readRegularFileSync } from '../config/regular-file.js';
import { DirectoryError, ErrorCodes, RcptgateError } from '../errors.js';
import { startTlsOptions } from '../directory/connect.js';
import { deadlineRace, LdapConnection } from '../directory/connection.js';
import { parseFilter } from '../directory/filter.js';
import { pagedSearch } from '../directory/paged.js';
import { isAuthResult, toDirectoryError } from '../directory/ldap-errors.js';
import type { BindingPlan } from '../directory/types.js';

type LdapConfig = Config['directory']['ldap'];

/**
 * One short-lived LDAP connection per sync for the directory's clock and the change-driven
 * sync (src/snapshot/directory-clock.ts, changes.ts): the searches they need (the rootDSE, change
 * stamps, DNs only, base-scope re-reads, AD tombstones with the Show Deleted control) are not
 * part of the lookup directory's interface. Tries `urls` in order, StartTLS when
 * configured, simple bind; every request is bounded by `directory.ldap.timeout`. Its messages are
 * read as the lookups' are (connection.ts): one over 32 MB or bytes that are not LDAP close it,
 * where ldapts alone would keep buffering whatever length a server announced until the timeout.
 */
export class LdapSession {
  private constructor(
    private readonly conn: LdapConnection,
    private readonly url: string,
    private readonly timeoutMs: number,
    private readonly timeoutText: string,
  ) {}

  /** Search bases as the server finds them: an alias at the base followed (derefBase). */
  private readonly bases = new Map<string, string>();

  static async open(config: LdapConfig, password: string | null, binding?: BindingPlan): Promise<LdapSession> {
    const timeoutMs = ms(config.timeout);
    const ca = config.tls.caFile ? readCa(config.tls.caFile) : undefined;
    const tlsOptions = { ...(ca ? { ca } : {}), rejectUnauthorized: config.tls.rejectUnauthorized };
    let last: unknown = new DirectoryError(ErrorCodes.DIRECTORY_AUTH, 'every LDAP server refused the bind account lately: no bind until the pause ends');
    for (const url of binding?.urls ?? config.urls) {
      const conn = new LdapConnection(url, timeoutMs, url.startsWith('ldaps:') ? tlsOptions : undefined, timeoutMs);
      const client = conn.client;
      const handshake = (async () => {
        if (config.startTLS && url.startsWith('ldap:')) await client.startTLS(startTlsOptions(url, tlsOptions));
        if (config.bindDN) await client.bind(config.bindDN, password ?? '');
      })();
      try {
        // ldapts times each request, not the TLS handshake after StartTLS: a server that stalls it
        // would hold this sync, and every sync after it, for ever.
        await deadlineRace(handshake, timeoutMs, () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP ${config.startTLS ? 'StartTLS and bind' : 'bind'} on ${url} got no answer within ${config.timeout}`));
        conn.guardErrors();
        return new LdapSession(conn, url, timeoutMs, config.timeout);
      } catch (err) {
        last = err;
        if (isAuthResult((err as { code?: unknown }).code as number)) binding?.refused(url, toDirectoryError(err, { operation: 'bind', url, bindDN: config.bindDN }));
        conn.destroy();
      }
    }
    throw last;
  }

  /** Every entry under `base` matching `filter` (paged), with the given attributes. */
  async search(base: string, scope: 'base' | 'one' | 'sub', filter: string, attributes: string[], controls: Control[] = [], pageSize = 500): Promise<Entry[]> {
    const out: Entry[] = [];
    for await (const page of this.pages(base, scope, filter, attributes, controls, pageSize)) out.push(...page);
    return out;
  }

  /**
   * The same, a page at a time: a listing that may be large is not held whole. Paged as full
   * listings are (directory/paged.ts): ldapts' own paged search stopped at the first empty page
   * even when it carried a cookie (Active Directory sends such pages), and the changes after it
   * were never seen: a user disabled or deleted stayed valid until the next full sync.
   */
  async *pages(base: string, scope: 'base' | 'one' | 'sub', filter: string, attributes: string[], controls: Control[] = [], pageSize = 500): AsyncGenerator<Entry[]> {
    if (scope !== 'base') base = await this.derefBase(base);
    yield* pagedSearch({ client: this.conn.client, url: this.url }, {
      baseDN: base, scope, filter: parseFilter(filter), attributes, pageSize, controls,
      pageTimeoutMs: this.timeoutMs, timeoutText: this.timeoutText, ignoreReferences: true,
    });
  }

  /**
   * `base`, or where it points when it is an alias (an OU renamed, its old name left pointing at
   * the new one), as lookups and full listings find it (derefFindingBaseObj). ldapts 9.2 sends
   * its searches with aliases never followed whatever derefAliases says, so the incremental sync
   * searched the alias entry itself and saw no change under such a base: a user who lost their
   * address stayed valid in the snapshot until the next full sync. One base read per session.
   */
  private async derefBase(base: string): Promise<string> {
    let found = this.bases.get(base);
    if (found !== undefined) return found;
    found = base;
    // A chain of aliases is followed a few steps; a loop ends there and the search says why. A
    // base that cannot be read (a missing entry, a timeout) is searched as given: it says why.
    for (let hop = 0; hop < 4; hop++) {
      let entry: Entry | null;
      try {
        entry = await this.entry(found, ['aliasedObjectName']);
      } catch {
        return found;
      }
      const target = entry?.aliasedObjectName;
      if (typeof target !== 'string' || target === '') break;
      found = target;
    }
    this.bases.set(base, found);
    return found;
  }

  /** The entry at `dn` (a base search, unpaged: the rootDSE takes no paging), or null; `binary` attributes as Buffers. */
  async entry(dn: string, attributes: string[], binary: string[] = []): Promise<Entry | null> {
    const { searchEntries } = await this.conn.client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes, explicitBufferAttributes: binary, timeLimit: Math.ceil(this.timeoutMs / 1000) });
    return searchEntries[0] ?? null;
  }

  async close(): Promise<void> {
    await this.conn.unbind();
  }
}

function readCa(file: string): Buffer {
  try {
    return readRegularFileSync(file);
  } catch (err) {
    throw new RcptgateError(ErrorCodes.CONFIG_READ, `cannot read directory.ldap.tls.caFile ${file}: ${(err as Error).message}`, { cause: err });
  }
}
