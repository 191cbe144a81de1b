import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics.js';
import type { LookupResult, Verdict } from '../recipient/types.js';

/** `ADDRESS<TAB>VERDICT<TAB>detail` (README "Command line"). */
export function formatCheckLine(r: LookupResult): string {
  return `${printable(r.address)}\t${r.verdict}\t${printable(detail(r))}`;
}

/**
 * Control characters as `\xNN`: an address given with a line break and a tab (or a directory
 * value holding them) printed a second line of its own choosing, `someone@example.com<TAB>valid`,
 * to a script reading one line per address; an escape sequence could rewrite the terminal.
 */
function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function detail(r: LookupResult): string {
  const shadow = r.shadow ? ` (shadow mode; enforce would say ${r.enforcedVerdict})` : '';
  switch (r.verdict) {
    case 'valid':
      return `${r.canonical ?? (r.explain?.rule ?? r.source)}${r.canonical ? ` (${r.source})` : ''}${shadow}`;
    case 'unknown':
      return `no such recipient (${r.source})`;
    case 'not_ours':
      return 'domain not served';
    case 'tempfail':
      return r.reason ?? 'directory unavailable';
    case 'invalid':
      return r.reason ?? 'invalid address';
  }
}

export const EXIT = { OK: 0, REJECTED: 1, USAGE: 64, TEMPFAIL: 75, CONFIG: 78 } as const;

/** Most serious first: tempfail 75, invalid 64, unknown/not_ours 1, all valid 0. */
export function checkExitCode(verdicts: Verdict[]): number {
  if (verdicts.includes('tempfail')) return EXIT.TEMPFAIL;
  if (verdicts.includes('invalid')) return EXIT.USAGE;
  if (verdicts.includes('unknown') || verdicts.includes('not_ours')) return EXIT.REJECTED;
  return EXIT.OK;
}

/** Lookups the directory's pool holds at once (connections × searches × keys), within what it accepts. */
export function lookupsAtOnce(config: Readonly<Config>): number {
  const l = config.directory.ldap;
  return Math.min(l.poolSize * l.maxInFlightPerConnection * l.batchSize, l.maxInFlight);
}

/**
 * Whether check's tempfail is the bind account's fault: a server refused it and none accepted it
 * in this run. A search sent means a server accepted the account: one replica refusing it (the
 * new password not there yet, a lockout there that expires) beside it is a passing failure, and
 * 78 made supervisors give up and told the operator to change a password that works.
 */
export async function bindAccountRefused(app: { bindRefused(): boolean; metrics: Metrics }): Promise<boolean> {
  if (!app.bindRefused()) return false;
  const searches = await app.metrics.directorySearches.get();
  return searches.values.every((v) => v.value === 0);
}
