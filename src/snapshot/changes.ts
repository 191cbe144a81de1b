import { setImmediate as nextTurn } from 'node:timers/promises';
import { Control, type Entry } from 'ldapts';
import type { Config } from '../config/schema.js';
import { readSecret } from '../config/load.js';
import { attributeValues, searchPlan, type LdapEntry, type LdapSearchPlan } from '../directory/presets.js';
import type { BindingPlan, DirectoryRecord } from '../directory/types.js';
import type { Logger } from '../log.js';
import { DirectoryClock } from './directory-clock.js';
import { readDirectoryId } from './identity.js';
import { LdapSession } from './ldap-session.js';
import { put, storable } from './storable.js';
import type { SnapshotStore } from './store.js';

/**
 * Removals between full syncs (`sync.detectRemovals`). A timestamp-driven incremental listing
 * (modifyTimestamp / whenChanged with the recipient filter) only returns entries that are still
 * valid; this finds what it cannot:
 *  - entries that changed and no longer match the filter (disabled, mail removed): the DNs
 *    changed in the window that do not match it;
 *  - renamed or moved entries: the new DN arrives as a change; an address it shares with
 *    another DN makes us re-read that DN, which is gone (or no longer valid) after a rename;
 *  - entries moved out of the base (a leaver moved to an OU beside it): changed entries under
 *    the naming context above the base whose addresses the snapshot holds under another DN;
 *  - Active Directory (and Samba) deletions: tombstones under CN=Deleted Objects, read with the
 *    Show Deleted control; the old DN is `CN=<msDS-LastKnownRDN>,<lastKnownParent>`.
 * OpenLDAP deletions leave nothing to read without syncrepl (RFC 4533), which ldapts 9 cannot
 * carry (its message parser rejects the IntermediateResponse, 0x79, that holds syncInfoValue):
 * they wait for the next full sync.
 */
const SHOW_DELETED = '1.2.840.113556.1.4.417';
/** Re-reads per incremental sync; more wait for the full sync. */
const MAX_RECHECKS = 1000;
/** Listed entries handled between two turns of the event loop: lookups are answered meanwhile. */
const ENTRIES_PER_TURN = 4096;

type LdapConfig = Config['directory']['ldap'];

export interface ChangeReport {
  /** Entries dropped from the snapshot. */
  removed: number;
  /** Entries re-read and kept (with their current addresses). */
  refreshed: number;
}

/** LDAP noSuchObject (32), as ldapts throws it or wrapped as the cause of a DirectoryError. */
function isNoSuchObject(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  return e?.code === 32 || e?.cause?.code === 32;
}

/** RFC 4514 escaping of an attribute value inside a DN. */
export function escapeDnValue(v: string): string {
  return v.replace(/[,+"\\<>;=]/g, (c) => `\\${c}`).replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
}

/**
 * A DN attribute value as Active Directory and Samba write it (Samba's ldb_dn_escape_value, after
 * Windows): `#` escaped anywhere, `;`, `=`, CR, LF and NUL as `\XX`. Not RFC 4514: `Sales; Ops`
 * is listed as `CN=Sales\3B Ops`, which escapeDnValue() spells `CN=Sales\; Ops`.
 */
export function escapeAdDnValue(v: string): string {
  return v
    .replace(/[,+"\\<>?#]/g, (c) => `\\${c}`)
    .replace(/[;=\r\n\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
    .replace(/^ /, '\\ ')
    .replace(/(?<=.) $/, '\\ ');
}

/** The DC= suffix of a DN: the naming context a deleted object's tombstone lives in. */
export function domainRoot(dn: string): string {
  const parts = dn.split(/,(?=\s*dc=)/i);
  const at = parts.findIndex((p) => /^\s*dc=/i.test(p));
  return at < 0 ? dn : parts.slice(at).join(',').trim();
}

/**
 * The context above the base when the rootDSE names none (an account not let read it): the base's
 * trailing dc= components, or when that is the base itself and it lies below a two-part suffix
 * (dc=staff,dc=example,dc=com) its parent, so a leaver moved beside it is still listed.
 */
function guessedContext(baseDN: string): string {
  const root = domainRoot(baseDN);
  if (normalizedDn(root) !== normalizedDn(baseDN)) return root;
  const parts = baseDN.split(/,(?=\s*dc=)/i);
  return parts.length > 2 ? parts.slice(1).join(',').trim() : root;
}

/** A DN compared as text: lowercased, no spaces around separators. */
function normalizedDn(dn: string): string {
  return dn.trim().toLowerCase().replace(/\s*([,=+])\s*/g, '$1');
}

/** Whether normalized `dn` is in the `scope` search of normalized `base` (`one`: its children). */
function inScope(dn: string, base: string, scope: 'base' | 'one' | 'sub'): boolean {
  if (dn === base) return scope !== 'one';
  if (scope === 'base' || !dn.endsWith(`,${base}`)) return false;
  return scope === 'sub' || /^(?:[^,\\]|\\.)*$/.test(dn.slice(0, dn.length - base.length - 1));
}

export class ChangeFeed {
  private readonly plan: LdapSearchPlan;
  private tombstonesWork = true;
  private aboveBaseWorks = true;
  /** The rootDSE's naming context of the base (see namingContext); undefined until read. */
  private context: string | null | undefined;
  /** The directory's time, which every sync's window is asked by. */
  readonly clock: DirectoryClock;

  constructor(
    private readonly config: LdapConfig,
    private readonly password: string | null,
    private readonly logger: Logger,
    /** `sync.detectRemovals`; without it the feed only reads the directory's clock. */
    readonly removals = true,
    mono?: () => number, // tests
  ) {
    this.plan = searchPlan(config);
    this.clock = new DirectoryClock(config, this.plan, logger, mono);
  }

  /** A connection bound where the lookup pool would bind (see apply). */
  open(binding?: BindingPlan): Promise<LdapSession> {
    return LdapSession.open(this.config, this.password, binding);
  }

  /** The base entry's identifier (identity.ts) on a connection of its own; null when it cannot be read. */
  async directoryId(binding?: BindingPlan): Promise<string | null> {
    const session = await this.open(binding).catch(() => null);
    if (!session) return null;
    try {
      return await readDirectoryId(session, this.config);
    } finally {
      await session.close();
    }
  }

  /** The directory's time now (see DirectoryClock), on a connection of its own; null when it cannot be read. */
  async now(binding: BindingPlan | undefined, ourNow: number): Promise<number | null> {
    try {
      const session = await this.open(binding);
      try {
        return await this.clock.read(session, ourNow);
      } finally {
        await session.close();
      }
    } catch (err) {
      this.logger.warn({ err: { message: (err as Error).message } }, "cannot read the directory's clock; the next incremental sync goes by an estimate of it");
      return null;
    }
  }

  /**
   * Applies removals since `since` to `store`, given the valid entries the incremental listing
   * returned (already upserted). Nothing is dropped on hearsay: every suspect DN the snapshot
   * holds is re-read with the recipient filter and kept when it is (still, or again) valid, so
   * a change racing with this sync can never turn a valid recipient into `unknown`.
   */
  async apply(store: SnapshotStore, updates: DirectoryRecord[], since: Date, binding?: BindingPlan, open?: LdapSession): Promise<ChangeReport> {
    const report: ChangeReport = { removed: 0, refreshed: 0 };
    // An incremental listing may hold every entry (a bulk change; up to a million): done in one
    // go, the loops below held the event loop for 0.9 s at 300,000 entries, lookups waiting.
    const valid = new Set<string>();
    for (let i = 0; i < updates.length; i++) {
      valid.add(updates[i]!.dn.toLowerCase());
      if (i % ENTRIES_PER_TURN === ENTRIES_PER_TURN - 1) await nextTurn();
    }
    const suspects = new Map<string, string>();
    const suspect = (dn: string): void => {
      const key = dn.toLowerCase();
      if (!valid.has(key) && store.hasDn(dn)) suspects.set(key, dn);
    };
    // The URLs as the lookup pool would bind them: one refusing the bind account is tried last, and
    // not at all while its pause lasts (each refused bind counts towards a lockout).
    const session = open ?? (await this.open(binding));
    try {
      // Changed and no longer matching: the server does the filtering, so a window full of valid
      // changes (a bulk load) costs nothing here.
      const filter = `(&${this.plan.changedSinceClause(since)}(!${this.plan.listFilter}))`;
      const changed = await session.search(this.config.baseDN, this.config.scope, filter, ['1.1'], [], this.config.pageSize);
      for (const e of changed) suspect(e.dn);
      if (this.plan.preset === 'activedirectory') for (const dn of await this.tombstones(session, since)) suspect(dn);
      // After a rename the new DN shares its addresses with the old one, which is gone.
      for (let i = 0; i < updates.length; i++) {
        for (const a of updates[i]!.addresses) for (const dn of store.holders(a)) suspect(dn);
        if (i % ENTRIES_PER_TURN === ENTRIES_PER_TURN - 1) await nextTurn();
      }
      await this.movedOut(session, since, store, suspect);
      let left = MAX_RECHECKS;
      for (const dn of suspects.values()) {
        if (left-- === 0) {
          this.logger.warn({ pending: suspects.size - MAX_RECHECKS }, 'more changed entries than one incremental sync re-reads; the rest wait for the next full sync');
          break;
        }
        const record = await this.reread(session, dn);
        if (record && record.dn.toLowerCase() === dn.toLowerCase()) {
          put(store, record);
          report.refreshed++;
        } else if (store.remove(dn)) {
          report.removed++;
        }
      }
    } finally {
      if (!open) await session.close();
    }
    return report;
  }

  /**
   * Entries changed since `since` under the naming context above the base but outside the
   * searched scope: the holders of their addresses in the snapshot are suspects (a leaver moved
   * out keeps its addresses, and its old DN is gone). Nothing to do when the base is that root.
   */
  private async movedOut(session: LdapSession, since: Date, store: SnapshotStore, suspect: (dn: string) => void): Promise<void> {
    const context = await this.namingContext(session);
    const root = context ?? guessedContext(this.config.baseDN);
    const base = normalizedDn(this.config.baseDN);
    if (normalizedDn(root) === base) return;
    const anyAddress = `(|${this.plan.attributes.map((a) => `(${a}=*)`).join('')})`;
    const filter = `(&${this.plan.changedSinceClause(since)}${anyAddress})`;
    try {
      for await (const page of session.pages(root, 'sub', filter, this.plan.attributes, [], this.config.pageSize)) {
        for (const e of page) {
          if (inScope(normalizedDn(e.dn), base, this.config.scope)) continue; // the listings above saw it
          for (const a of this.plan.addresses(e as LdapEntry)) for (const dn of store.holders(a)) suspect(dn);
        }
        await nextTurn();
      }
      this.aboveBaseWorks = true;
    } catch (err) {
      // A guessed context that does not exist: the base is the top of its tree.
      if (context === null && isNoSuchObject(err)) return;
      // An account that may read only its base: the suspects found so far are still re-read.
      if (this.aboveBaseWorks) this.logger.warn({ root, err: { message: (err as Error).message } }, 'cannot list changes above the search base; entries moved out of it wait for the next full sync');
      this.aboveBaseWorks = false;
    }
  }

  /**
   * The naming context the base lies in: the longest of the rootDSE's namingContexts above it or
   * equal to it; null when the rootDSE cannot be read or names none. The base's trailing dc=
   * components are no substitute: a base dc=staff,dc=example,dc=com (a tenant, a mail domain)
   * was taken for the whole tree, and a leaver moved beside it stayed valid until the full sync.
   */
  private async namingContext(session: LdapSession): Promise<string | null> {
    if (this.context !== undefined) return this.context;
    const rootDse = await session.entry('', ['namingContexts']).catch(() => null);
    if (!rootDse) return null;
    const base = normalizedDn(this.config.baseDN);
    let best: string | null = null;
    for (const context of attributeValues(rootDse as LdapEntry, 'namingContexts')) {
      const n = normalizedDn(context);
      if (n !== '' && (base === n || base.endsWith(`,${n}`)) && n.length > (best === null ? 0 : normalizedDn(best).length)) best = context;
    }
    this.context = best;
    return best;
  }

  /** Old DNs of objects deleted since `since`; an account that may not read them only logs it. */
  private async tombstones(session: LdapSession, since: Date): Promise<string[]> {
    let entries: Entry[];
    try {
      const filter = `(&(isDeleted=TRUE)${this.plan.changedSinceClause(since)})`;
      entries = await session.search(domainRoot(this.config.baseDN), 'sub', filter, ['lastKnownParent', 'msDS-LastKnownRDN'], [new Control(SHOW_DELETED)], this.config.pageSize);
    } catch (err) {
      if (this.tombstonesWork) this.logger.warn({ err: { message: (err as Error).message } }, 'cannot read deleted objects (Show Deleted control); deletions wait for the next full sync');
      this.tombstonesWork = false;
      return [];
    }
    this.tombstonesWork = true;
    const dns: string[] = [];
    for (const e of entries) {
      const parent = attributeValues(e as LdapEntry, 'lastKnownParent')[0];
      if (!parent) continue;
      const rdn = attributeValues(e as LdapEntry, 'msDS-LastKnownRDN')[0];
      // The listing holds the DN as the DC spells it; suspects the snapshot does not hold cost nothing.
      if (rdn) dns.push(`CN=${escapeAdDnValue(rdn)},${parent}`, `CN=${escapeDnValue(rdn)},${parent}`);
      // Without msDS-LastKnownRDN (older schemas; Samba's contacts) the tombstone's own RDN holds the
      // name before "\0ADEL:", already escaped as the DC escapes it: escaping it again made
      // `Doe\, Jane` `Doe\\\, Jane`, and the deleted entry stayed valid until the full sync.
      else {
        const escaped = /^CN=(.*?)\\0ADEL:/i.exec(e.dn)?.[1];
        if (escaped) dns.push(`CN=${escaped},${parent}`);
      }
    }
    return dns;
  }

  /** The entry at `dn` when it exists and is a valid recipient; null otherwise. */
  private async reread(session: LdapSession, dn: string): Promise<DirectoryRecord | null> {
    let entries: Entry[];
    try {
      entries = await session.search(dn, 'base', this.plan.listFilter, this.plan.attributes);
    } catch (err) {
      if (isNoSuchObject(err)) return null;
      throw err;
    }
    const entry = entries[0] as LdapEntry | undefined;
    const addresses = entry ? this.plan.addresses(entry) : [];
    if (!entry || addresses.length === 0) return null;
    return storable({ dn: entry.dn, canonical: this.plan.canonical(entry) ?? addresses[0]!, addresses });
  }
}

/** The feed of an LDAP directory (removals only with `sync.detectRemovals`), or null (LDIF). */
export function createChangeFeed(config: Readonly<Config>, env: NodeJS.ProcessEnv, logger: Logger, mono?: () => number): ChangeFeed | null {
  if (config.directory.kind !== 'ldap') return null;
  const password = readSecret(config.directory.ldap.bindPasswordFile, env.RCPTGATE_LDAP_BIND_PASSWORD, 'bind password');
  return new ChangeFeed(config.directory.ldap, password, logger, config.sync.detectRemovals, mono);
}
