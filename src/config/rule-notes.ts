import type { ConfigIssue } from '../errors.js';
import { foldLocal, normalizeDomain, parseAddress } from '../recipient/address.js';
import type { Config } from './schema.js';

/** RFC 5321 4.5.1: every domain accepts mail for postmaster. */
const REQUIRED = 'postmaster';

/**
 * Settings that work as written but do not what they seem to: `config check` and the start-up
 * log point them out (warning: deferred or refused mail; note: a probable slip).
 */
export function ruleNotes(config: Config): Array<ConfigIssue & { level: 'warning' | 'note' }> {
  const out: Array<ConfigIssue & { level: 'warning' | 'note' }> = [];
  const rules = Array.isArray(config.domains) ? {} : config.domains;
  const perDomain = new Map<string, string[]>();
  for (const [domain, rule] of Object.entries(rules)) {
    if (rule?.alwaysValid === undefined) continue;
    perDomain.set(normalizeDomain(domain) ?? domain, rule.alwaysValid.map(foldLocal));
    if (!rule.alwaysValid.some((l) => foldLocal(l) === REQUIRED)) {
      out.push({
        level: 'note',
        path: `domains.${domain}.alwaysValid`,
        message: `replaces the global alwaysValid list and lacks ${REQUIRED} (RFC 5321 requires it): ${REQUIRED}@${domain} is asked of the directory, and deferred while it is down; list ${REQUIRED} and abuse again`,
      });
    }
  }
  const global = config.alwaysValid.map(foldLocal);
  for (const [i, canary] of config.directory.canaries.entries()) {
    const parsed = parseAddress(canary);
    if (!parsed.ok) continue; // crossCheck refuses it
    const { local, domain } = parsed.value;
    if (!(perDomain.get(domain) ?? global).includes(foldLocal(local))) continue;
    out.push({
      level: 'warning',
      path: `directory.canaries.${i}`,
      message:
        `${canary} is in alwaysValid, valid without a directory entry, but a canary is looked up in the directory: ` +
        'if no entry holds it, the directory counts as down and every would-be unknown is deferred; use a real mailbox',
    });
  }
  return out;
}
