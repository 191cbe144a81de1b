import type { Config } from '../config/schema.js';

/**
 * A DN as text to compare: lowercased, no spaces around its separators. `dc=example, dc=com`
 * (as Postfix's ldap_table(5) examples write it) is the same tree as `dc=example,dc=com`.
 */
export function normalizedDn(dn: string): string {
  return dn.trim().toLowerCase().replace(/\s*([,=+])\s*/g, '$1');
}

/**
 * Identifies the directory a snapshot or answer file was written for (base DN, scope, filter,
 * preset; not the URLs, which replicas share), so a file written for another tree or filter is
 * refused.
 */
export function snapshotSource(config: Readonly<Config>): string {
  const l = config.directory.ldap;
  return `${config.directory.kind}|${l.preset}|${normalizedDn(l.baseDN)}|${l.scope}|${l.filter ?? ''}${l.matchUserPrincipalName ? '|upn' : ''}`;
}

/**
 * Whether a file's `source` names the directory `expected` names. Files written before the base
 * DN was normalized hold it as spelled then (lowercased): it is normalized before comparing, so
 * they are not refused for a space after a comma.
 */
export function sameSource(found: string, expected: string): boolean {
  if (found === expected) return true;
  const m = /^([^|]*\|[^|]*\|)(.*?)(\|(?:base|one|sub)\|.*)$/s.exec(found);
  return m !== null && `${m[1]}${normalizedDn(m[2]!)}${m[3]}` === expected;
}
