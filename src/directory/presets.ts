import type { Config } from '../config/schema.js';
import { foldAddress } from '../recipient/address.js';
import { listFilterFromTemplate } from './filter.js';

/**
 * What to ask the directory, per kind of server: the lookup filter template, the filter for
 * full listings, the attributes to request, and how to read an entry's addresses.
 */

type LdapConfig = Config['directory']['ldap'];

/** A search result entry as ldapts returns it: attribute name → one value or several. */
export type LdapEntry = { dn: string } & Record<string, unknown>;

export interface LdapSearchPlan {
  preset: LdapConfig['preset'];
  /** Postfix-style template (`%s`, `%u`, `%d`); the user's `filter` when set. */
  lookupFilter: string;
  /** Matches every entry the lookup filter could match (full syncs). */
  listFilter: string;
  /** Attributes to request. */
  attributes: string[];
  /** Primary address of an entry, as the directory spells it; null when it has none. */
  canonical(entry: LdapEntry): string | null;
  /** Every address the entry receives mail for, local parts lowercased (foldAddress), without duplicates. */
  addresses(entry: LdapEntry): string[];
  /**
   * The attribute values the lookup filter compares a key with, as stored (AD: `smtp:` stripped):
   * what lets a batched search's entries be matched back to their keys; a null value is one no
   * batch can compare. null with a configured filter, whose comparisons we cannot know: such
   * lookups are never batched.
   */
  matchValues: ((entry: LdapEntry) => (string | null)[]) | null;
  /** Filter clause selecting entries changed since `date` (incremental syncs). */
  changedSinceClause(date: Date): string;
}

/**
 * Every value of an attribute, whatever case the server used for its name, with the values held
 * under its options (`mail;lang-de`, AD's `proxyAddresses;range=0-1499`): a filter on the type
 * matches those too (RFC 4512 §2.5), so an entry found by one of them must show it. Values of the
 * plain description come first (the primary address).
 */
export function attributeValues(entry: LdapEntry, name: string): string[] {
  const wanted = name.toLowerCase();
  let plain: string[] = [];
  let tagged: string[] | null = null;
  for (const key of Object.keys(entry)) {
    if (key === 'dn') continue;
    const semi = key.indexOf(';');
    const type = semi < 0 ? key : key.slice(0, semi);
    if (type.length !== wanted.length || type.toLowerCase() !== wanted) continue;
    if (semi < 0) plain = texts(entry[key]);
    else (tagged ??= []).push(...texts(entry[key]));
  }
  return tagged === null ? plain : [...plain, ...tagged];
}

/**
 * Every value the entry came back with. We ask only for the attributes the lookup filter
 * compares, so whatever the server returns (those, under options, or their subtypes, which an
 * equality filter on the supertype matches too) is something the filter may have matched.
 */
function everyValue(entry: LdapEntry): string[] {
  const out: string[] = [];
  for (const key of Object.keys(entry)) if (key !== 'dn') out.push(...texts(entry[key]));
  return out;
}

/**
 * An attribute's values as non-empty text, without leading and trailing spaces: the directory's
 * matching ignores them (` bob@example.com ` is found by `bob@example.com`), so a full listing
 * must key the entry by the address too, or a snapshot would miss it.
 */
function texts(raw: unknown): string[] {
  const list: unknown[] = Array.isArray(raw) ? raw : [raw];
  const out: string[] = [];
  for (const v of list) {
    let text = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
    if (text.charCodeAt(0) === 0x20 || text.charCodeAt(text.length - 1) === 0x20) text = text.replace(/^ +| +$/g, '');
    if (text !== '') out.push(text);
  }
  return out;
}

/**
 * Lowercased as every directory folds: true case pairs only (foldAddress). toLowerCase() made the
 * Kelvin sign's `\u212Aate@` `kate@`, which AD does not find by it: a snapshot answered kate@
 * valid from such an entry, and `\u212Aate@` unknown.
 */
function unique(values: string[]): string[] {
  return [...new Set(values.map(foldAddress))];
}

/** LDAP GeneralizedTime in UTC, whole seconds: 20240131235959Z. */
export function generalizedTime(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

const OPENLDAP_FILTER = '(|(mail=%s)(mailAlternateAddress=%s))';

/**
 * AD: the disabled-account bit (ACCOUNTDISABLE, 2) tested with LDAP_MATCHING_RULE_BIT_AND —
 * except Exchange shared, room, equipment and linked mailboxes (msExchRecipientTypeDetails 4, 16,
 * 32, 2) and their hybrid counterparts moved to Exchange Online (remote shared 34359738368, room
 * 8589934592, equipment 17179869184), whose accounts are disabled by design yet receive mail.
 * Without Exchange's schema the extra clauses match nothing.
 */
export const DISABLED_BY_DESIGN: readonly string[] = ['2', '4', '16', '32', '8589934592', '17179869184', '34359738368'];
export const AD_ENABLED_ONLY = `(|(!(userAccountControl:1.2.840.113556.1.4.803:=2))${DISABLED_BY_DESIGN.map((v) => `(msExchRecipientTypeDetails=${v})`).join('')})`;
/**
 * AD: users, mail-enabled groups (Exchange's dynamic distribution groups are a class of their
 * own, derived from `top`), contacts and public folders.
 */
export const AD_RECIPIENT_CLASSES =
  '(|(objectClass=user)(objectClass=group)(objectClass=msExchDynamicDistributionList)(objectClass=contact)(objectClass=publicFolder))';

/** The AD lookup template; `proxyAddresses` compares case-insensitively, so `smtp:` also matches `SMTP:`. */
export function activeDirectoryFilter(matchUserPrincipalName: boolean): string {
  const upn = matchUserPrincipalName ? '(userPrincipalName=%s)' : '';
  return `(&${AD_RECIPIENT_CLASSES}(|(mail=%s)(proxyAddresses=smtp:%s)${upn})${AD_ENABLED_ONLY})`;
}

function openldapPlan(lookupFilter: string, custom: boolean): LdapSearchPlan {
  return {
    preset: 'openldap',
    lookupFilter,
    listFilter: listFilterFromTemplate(lookupFilter),
    attributes: ['mail', 'mailAlternateAddress'],
    canonical: (entry) => attributeValues(entry, 'mail')[0] ?? attributeValues(entry, 'mailAlternateAddress')[0] ?? null,
    addresses: (entry) => unique([...attributeValues(entry, 'mail'), ...attributeValues(entry, 'mailAlternateAddress')]),
    matchValues: custom ? null : everyValue,
    changedSinceClause: (date) => `(modifyTimestamp>=${generalizedTime(date)})`,
  };
}

/**
 * `smtp:`/`SMTP:` proxy addresses without their prefix; X400:, SIP: and the like are skipped. A
 * value with white space after the prefix (`smtp: lead@…`) is left out of `all`: the space is
 * inside the value, so `proxyAddresses=smtp:lead@…` does not find it on Samba, and whether a DC
 * ignores it we cannot know, so `blurred` says a batch cannot compare it.
 */
function smtpProxyAddresses(entry: LdapEntry): { primary: string | null; all: string[]; blurred: boolean } {
  let primary: string | null = null;
  let blurred = false;
  const all: string[] = [];
  for (const value of attributeValues(entry, 'proxyAddresses')) {
    if (value.slice(0, 5).toLowerCase() !== 'smtp:') continue;
    const address = value.slice(5);
    if (address.charCodeAt(0) <= 0x20) {
      blurred = true;
      continue;
    }
    all.push(address);
    if (primary === null && value.startsWith('SMTP:')) primary = address;
  }
  return { primary, all, blurred };
}

/** What the AD filter compares a key with; null for a value no batch can compare. */
function activeDirectoryMatchValues(entry: LdapEntry, matchUserPrincipalName: boolean): (string | null)[] {
  const proxies = smtpProxyAddresses(entry);
  return [
    ...proxies.all,
    ...(proxies.blurred ? [null] : []),
    ...attributeValues(entry, 'mail'),
    ...(matchUserPrincipalName ? attributeValues(entry, 'userPrincipalName') : []),
  ];
}

function activeDirectoryPlan(lookupFilter: string, matchUserPrincipalName: boolean, custom: boolean): LdapSearchPlan {
  return {
    preset: 'activedirectory',
    lookupFilter,
    listFilter: listFilterFromTemplate(lookupFilter),
    attributes: ['mail', 'proxyAddresses', ...(matchUserPrincipalName ? ['userPrincipalName'] : [])],
    canonical: (entry) => smtpProxyAddresses(entry).primary ?? attributeValues(entry, 'mail')[0] ?? smtpProxyAddresses(entry).all[0] ?? null,
    addresses: (entry) =>
      unique([
        ...smtpProxyAddresses(entry).all,
        ...attributeValues(entry, 'mail'),
        ...(matchUserPrincipalName ? attributeValues(entry, 'userPrincipalName') : []),
      ]),
    matchValues: custom ? null : (entry) => activeDirectoryMatchValues(entry, matchUserPrincipalName),
    // whenChanged comes from the DC's clock: incremental syncs overlap the last one by a margin for skew.
    changedSinceClause: (date) => `(whenChanged>=${generalizedTime(date).replace(/Z$/, '.0Z')})`,
  };
}

/** The preset's defaults; a user-set `directory.ldap.filter` replaces the lookup filter. */
export function searchPlan(ldap: Pick<LdapConfig, 'preset' | 'filter' | 'matchUserPrincipalName'>): LdapSearchPlan {
  switch (ldap.preset) {
    case 'activedirectory':
      return activeDirectoryPlan(ldap.filter ?? activeDirectoryFilter(ldap.matchUserPrincipalName), ldap.matchUserPrincipalName, ldap.filter !== null);
    case 'openldap':
      return openldapPlan(ldap.filter ?? OPENLDAP_FILTER, ldap.filter !== null);
  }
}
