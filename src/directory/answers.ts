import type { Entry } from 'ldapts';
import type { DirectoryEntry } from './types.js';
import type { LdapEntry, LdapSearchPlan } from './presets.js';

/**
 * From search entries to answers: which entry answers an address, and which keys of a batched
 * search each entry answers.
 *
 * Matching back must give exactly what a single search would. The preset filters compare
 * addresses with equality on `mail`, `mailAlternateAddress` (caseIgnoreIA5Match: ASCII case
 * folding, leading and trailing spaces ignored) and AD's `proxyAddresses=smtp:` / `mail` (case
 * folding beyond ASCII, by the server's own tables). So only keys of printable ASCII without
 * spaces ride in a batch — for them ASCII folding is the whole comparison. A value with any
 * non-ASCII character is one we cannot compare: a server that folds compatibility characters
 * (a caseIgnoreMatch schema, AD) finds `ｆｕｌｌ@` or the Kelvin sign's `\u212Aate@` by an ASCII key.
 * So when an entry matches no key by these rules, or holds such a value, the batch cannot say
 * which keys it answers: its unanswered keys are then asked singly, never answered `unknown` on
 * a guess.
 */

/** A key that may ride in a batched search (see above). */
export function batchable(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return key.length > 0;
}

/**
 * ASCII case folding of a value, with leading and trailing spaces (U+0020) dropped as
 * caseIgnoreIA5Match drops them; null for a value we cannot compare: non-ASCII, or holding a
 * control character. A tab is not a space to slapd's IA5 matching (`tab@x<TAB>` is not found by
 * `tab@x`) but is one to RFC 4518 string preparation (AD, caseIgnoreMatch), so neither way is safe.
 */
function foldValue(value: string): string | null {
  let start = 0;
  let end = value.length;
  while (start < end && value.charCodeAt(start) === 0x20) start++;
  while (end > start && value.charCodeAt(end - 1) === 0x20) end--;
  for (let i = start; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f) return null;
  }
  return value.slice(start, end).toLowerCase();
}

export interface BatchMatch {
  /** Entries per folded key. */
  byKey: Map<string, Entry[]>;
  /** Some entry matched no key, or holds a value we cannot compare: the batch cannot vouch for any key it did not answer. */
  unaccounted: boolean;
}

/** Matches a batch's entries to its (batchable) keys; `foldedKeys` are the keys lowercased. */
export function matchBatch(matchValues: (entry: LdapEntry) => (string | null)[], entries: Entry[], foldedKeys: Set<string>): BatchMatch {
  const byKey = new Map<string, Entry[]>();
  let unaccounted = false;
  for (const entry of entries) {
    let matched = false;
    for (const value of matchValues(entry as LdapEntry)) {
      const folded = value === null ? null : foldValue(value);
      if (folded === null) unaccounted = true;
      if (folded === null || !foldedKeys.has(folded)) continue;
      matched = true;
      const list = byKey.get(folded);
      if (list === undefined) byKey.set(folded, [entry]);
      // Two values of one entry folding alike (mail and an alias in other case): listed once.
      else if (list[list.length - 1] !== entry) list.push(entry);
    }
    if (!matched) unaccounted = true;
  }
  return { byKey, unaccounted };
}

/**
 * A key's own search found an entry that does not hold the key among the values returned, or
 * holds a value we cannot compare: what matchBatch() calls unaccounted, for one key. It runs on
 * every single search that finds entries, so without matchBatch's map and set.
 */
export function hidesValues(plan: LdapSearchPlan, key: string, entries: Entry[]): boolean {
  if (plan.matchValues === null || entries.length === 0 || !batchable(key)) return false;
  const folded = key.toLowerCase();
  for (const entry of entries) {
    let matched = false;
    for (const value of plan.matchValues(entry as LdapEntry)) {
      const f = value === null ? null : foldValue(value);
      if (f === null) return true;
      if (f === folded) matched = true;
    }
    if (!matched) return true;
  }
  return false;
}

export interface Picked {
  entry: DirectoryEntry | null;
  /** Every matching DN when there were several (for a warning), else undefined. */
  ambiguous?: string[];
}

/** Several entries: prefer the one whose primary address is the one asked for, then the lowest DN. */
export function pick(plan: LdapSearchPlan, address: string, entries: Entry[]): Picked {
  if (entries.length === 0) return { entry: null };
  if (entries.length === 1) {
    const only = entries[0] as LdapEntry;
    return { entry: { dn: only.dn, canonical: plan.canonical(only) ?? address } };
  }
  const wanted = address.toLowerCase();
  const candidates = entries.map((raw) => {
    const entry = raw as LdapEntry;
    const canonical = plan.canonical(entry) ?? address;
    return { dn: entry.dn, canonical, exact: canonical.toLowerCase() === wanted ? 0 : 1, key: entry.dn.toLowerCase() };
  });
  candidates.sort((a, b) => a.exact - b.exact || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const chosen = candidates[0]!;
  return { entry: { dn: chosen.dn, canonical: chosen.canonical }, ambiguous: candidates.map((c) => c.dn) };
}
