import type { ConfigIssue } from '../errors.js';
import { checkFilterTemplate } from '../directory/filter.js';
import { normalizeDomain, parseAddress } from '../recipient/address.js';
import { ms } from './duration.js';
import type { Config } from './schema.js';

/** Checks across keys, after the schema: what no single key's type can tell. */

export function crossCheck(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [...directoryChecks(config)];
  const seen = domainChecks(config, issues);
  issues.push(...syncChecks(config));
  // With no domains listed (LDIF), the file decides what is served: nothing to compare with here.
  const served = seen.size > 0 ? new Set([...seen, ...config.catchAllDomains.map(normalizeDomainName)]) : null;
  for (const [i, c] of config.directory.canaries.entries()) {
    const parsed = parseAddress(c);
    if (!parsed.ok) issues.push({ path: `directory.canaries.${i}`, message: `not a valid address: ${parsed.reason}` });
    else if (served && !served.has(parsed.value.domain)) {
      // Never found, so every would-be unknown would be deferred for good.
      issues.push({ path: `directory.canaries.${i}`, message: `${parsed.value.domain} is not a served domain (domains): a canary must be an address the directory holds` });
    }
  }
  issues.push(...listenConflicts(config));
  if (/[\s@"\\]/.test(config.recipientDelimiter)) {
    issues.push({ path: 'recipientDelimiter', message: 'must not contain whitespace, "@", quotes or backslashes' });
  }
  return issues;
}

function directoryChecks(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const ldap = config.directory.ldap;
  if (config.directory.kind === 'ldap') {
    if (ldap.urls.length === 0) issues.push({ path: 'directory.ldap.urls', message: 'at least one URL is required with directory.kind ldap' });
    if (domainList(config).length === 0) issues.push({ path: 'domains', message: 'list the domains to answer for (required with directory.kind ldap)' });
    if (ldap.startTLS && ldap.urls.some((u) => u.startsWith('ldaps:'))) {
      issues.push({ path: 'directory.ldap.startTLS', message: 'StartTLS cannot be combined with ldaps:// URLs' });
    }
  }
  if (ldap.scope === 'base') {
    // A base search looks at the baseDN entry alone: no recipient is ever found.
    issues.push({ path: 'directory.ldap.scope', message: 'base searches only the baseDN entry itself, so every recipient would be unknown: use sub (or one when the entries sit right under baseDN)' });
  }
  // "" stays allowed: a Global Catalog is searched from the forest root.
  if (ldap.baseDN.trim() !== '' && !isDistinguishedName(ldap.baseDN)) {
    issues.push({ path: 'directory.ldap.baseDN', message: 'not a DN: expected attribute=value pairs separated by commas, such as "dc=example,dc=com" (the server answers invalidDNSyntax: every lookup would defer)' });
  }
  if (ldap.filter !== null) {
    const problem = filterProblem(ldap.filter);
    if (problem) issues.push({ path: 'directory.ldap.filter', message: problem });
  }
  return issues;
}

/** Domain lists; returns the served domains, normalized. */
function domainChecks(config: Config, issues: ConfigIssue[]): Set<string> {
  const seen = new Set<string>();
  for (const d of domainList(config)) {
    const n = normalizeDomainName(d);
    if (n === null) issues.push({ path: `domains.${d}`, message: badDomain(d) });
    else if (seen.has(n)) issues.push({ path: `domains.${d}`, message: 'listed twice' });
    else seen.add(n);
  }
  const refusesCatchAll = new Set(Array.isArray(config.domains) ? [] : Object.entries(config.domains).filter(([, r]) => r?.catchAll === false).map(([d]) => normalizeDomainName(d)));
  for (const [i, d] of config.catchAllDomains.entries()) {
    const n = normalizeDomainName(d);
    if (n === null) issues.push({ path: `catchAllDomains.${i}`, message: badDomain(d) });
    // The per-domain rule would silently win: say which one is meant.
    else if (refusesCatchAll.has(n)) issues.push({ path: `catchAllDomains.${i}`, message: `${d} is also under domains with catchAll: false; keep one of the two` });
  }
  return seen;
}

function syncChecks(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.sync.enabled && config.directory.kind !== 'ldap') {
    issues.push({ path: 'sync.enabled', message: 'snapshots need directory.kind ldap' });
  }
  if (config.cache.persistPath !== null && config.cache.persistPath === config.sync.snapshotPath) {
    // Two writers of different formats on one file: each save destroys the other's.
    issues.push({ path: 'cache.persistPath', message: 'the same file as sync.snapshotPath: give each its own file' });
  }
  if (config.sync.enabled && ms(config.sync.maxAge) <= ms(config.sync.interval)) {
    // Age counts from the last full sync: the snapshot would go stale before the next one replaced it.
    issues.push({
      path: 'sync.maxAge',
      message: `${config.sync.maxAge} is not longer than sync.interval (${config.sync.interval}): the snapshot would expire before the next full sync; make it several intervals long`,
    });
  }
  if (config.sync.enabled && config.sync.snapshotPath === null) {
    issues.push({ path: 'sync.snapshotPath', message: 'required when sync.enabled is true' });
  }
  return issues;
}

/** Why the filter template cannot serve, or null; the same parse the LDAP directory does at start. */
function filterProblem(filter: string): string | null {
  // %% is a literal percent sign, not a directive.
  const directives = new Set(filter.match(/%./g)?.filter((d) => d !== '%%'));
  if (!directives.has('%s') && !directives.has('%u')) {
    const need = 'the filter must use %s or %u (the address or its local part)';
    return directives.has('%d') ? `${need}: with %d alone every address of a domain gets the same answer (all valid or all unknown)` : need;
  }
  if (!balancedParens(filter)) return 'unbalanced parentheses';
  return checkFilterTemplate(filter);
}

/** Two listeners on one port would fail the start with EADDRINUSE: same host, or one of them on every address. */
function listenConflicts(config: Config): ConfigIssue[] {
  const wildcard = (h: string) => h === '0.0.0.0' || h === '[::]' || h === '::';
  const loopback = (h: string) => h === 'localhost' || h.startsWith('127.') || h === '[::1]';
  const issues: ConfigIssue[] = [];
  const bound: Array<{ key: string; host: string; port: string; text: string }> = [];
  for (const [key, text] of Object.entries(config.listen)) {
    if (text === null) continue;
    const colon = text.lastIndexOf(':');
    const host = text.slice(0, colon).toLowerCase();
    const port = text.slice(colon + 1);
    if (Number(port) === 0) continue; // any free port
    const other = bound.find(
      (b) => b.port === port && (b.host === host || wildcard(b.host) || wildcard(host) || (b.host === 'localhost' && loopback(host)) || (host === 'localhost' && loopback(b.host))),
    );
    if (other) issues.push({ path: `listen.${key}`, message: `${text} conflicts with listen.${other.key} (${other.text}): two listeners cannot share a port` });
    else bound.push({ key, host, port, text });
  }
  return issues;
}

function balancedParens(filter: string): boolean {
  let depth = 0;
  for (const ch of filter) {
    if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

/** A served domain as the engine keys it (address.ts normalizes); address literals are never served. */
export function normalizeDomainName(domain: string): string | null {
  const d = domain.trim();
  return d.startsWith('[') ? null : normalizeDomain(d);
}

export function domainList(config: Config): string[] {
  return Array.isArray(config.domains) ? config.domains : Object.keys(config.domains);
}

/** RFC 4514: RDNs separated by unescaped commas, each attribute=value pairs joined by "+"; values may hold backslash escapes. */
function isDistinguishedName(dn: string): boolean {
  const parts = dn.split(/(?<!\\)[,+]/);
  return parts.every((p) => /^\s*([A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)+)\s*=/.test(p));
}

/** The usual ways a domain is miswritten, said plainly (no domain here is matched by pattern). */
function badDomain(d: string): string {
  if (d.includes('*')) return 'not a valid domain name: wildcards are not supported, list each domain (subdomains are separate domains)';
  if (d.startsWith('@') || d.includes('@')) return 'not a valid domain name: write the domain alone, without "@"';
  return 'not a valid domain name';
}
