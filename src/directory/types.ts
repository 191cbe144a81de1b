import type { DirectoryError } from '../errors.js';

/** What the engine needs from a directory. The directory knows nothing of protocols. */

export interface DirectoryEntry {
  dn: string;
  /** Primary address: AD's `SMTP:` proxy address, otherwise the first `mail` value. */
  canonical: string;
}

export interface DirectoryAnswer {
  /** null: a clean "no such entry". */
  entry: DirectoryEntry | null;
  /** The filter sent, values escaped (for explanations). */
  filter?: string;
  /**
   * The server that answered (LDAP: its URL), when a directory has several. A canary check
   * vouches for a "no such entry" only when that server found the canary (resolver.ts).
   */
  server?: string;
}

/** One entry and every address it receives mail for (lowercased), for full syncs. */
export interface DirectoryRecord {
  dn: string;
  canonical: string;
  addresses: string[];
}

export interface Directory {
  readonly kind: 'ldif' | 'ldap';
  /**
   * Look up one normalized address (lowercase domain; local part as given, compared
   * case-insensitively by the directory). Throws DirectoryError when it cannot answer;
   * resolves `{ entry: null }` only when the directory says the entry does not exist.
   */
  lookup(address: string, signal?: AbortSignal): Promise<DirectoryAnswer>;
  /** Cheap check that the directory answers at all (bind + base search). Throws DirectoryError. */
  probe(signal?: AbortSignal): Promise<void>;
  /** Every valid entry (paged), for snapshots. Throws DirectoryError. */
  listAll(options?: { changedSince?: Date; signal?: AbortSignal }): AsyncIterable<DirectoryRecord>;
  /** The filter a lookup of `address` sends (values escaped), for explanations of cached answers. */
  filterFor?(address: string): string | undefined;
  /** LDAP: where a connection outside the pool binds now (a server that refused the bind last, or not while paused). */
  binding?(): BindingPlan;
  /** Domains present in the data (LDIF: used when `domains` is empty). */
  knownDomains?(): string[];
  close(): Promise<void>;
}

/** The URLs to bind to now, in order, and where a refused bind is reported (it pauses binds there). */
export interface BindingPlan {
  urls: readonly string[];
  refused(url: string, err: DirectoryError): void;
}
