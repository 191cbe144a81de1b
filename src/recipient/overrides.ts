import { normalizeDomain } from './address.js';
import { parseServedAddress } from './rules.js';
import { readRegularFileSync } from '../config/regular-file.js';
import { ErrorCodes, RcptgateError } from '../errors.js';

/** Static allow/deny lists checked before the directory (README "Rolling out"). */
export interface Overrides {
  allow: ReadonlySet<string>;
  deny: ReadonlySet<string>;
}

export const NO_OVERRIDES: Overrides = { allow: new Set(), deny: new Set() };

/**
 * The line without its comment. `#` is also a character of local parts (RFC 5322 atext:
 * `ops#oncall@example.com`), so it starts a comment only at the start of the line, after white
 * space, after an `@`, or where no `@` follows (`bob@example.com#left`).
 */
function withoutComment(line: string): string {
  for (let i = line.indexOf('#'); i >= 0; i = line.indexOf('#', i + 1)) {
    // After the address's own "@" a "#" can only start a comment (a domain holds none):
    // `bob@example.com#moved to carol@example.com`, written before "#" could be in a local part.
    if (i === 0 || /\s/.test(line[i - 1]!) || !line.includes('@', i) || line.lastIndexOf('@', i) >= 0) return line.slice(0, i);
  }
  return line;
}

/** One address per line; comments and blank lines ignored; a bad line is an error with its number. */
export function readAddressList(path: string): Set<string> {
  let text: string;
  try {
    text = readRegularFileSync(path, 'utf8');
  } catch (err) {
    throw new RcptgateError(ErrorCodes.CONFIG_READ, `cannot read address list ${path}: ${(err as Error).message}`, { cause: err });
  }
  const out = new Set<string>();
  // Domains already in normal form: their addresses skip the full parse (a list of a million
  // lines took 2.6 s, every front end stalled, at each reload).
  const plain = new Set<string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = withoutComment(raw).trim();
    if (line === '') continue;
    const domain = line.slice(line.lastIndexOf('@') + 1);
    if (!plain.has(domain) && normalizeDomain(domain) === domain) plain.add(domain);
    const parsed = parseServedAddress(line, plain);
    if (!parsed.ok) throw new RcptgateError(ErrorCodes.CONFIG_INVALID, `${path} line ${i + 1}: ${parsed.reason}`);
    out.add(parsed.value.address);
  }
  return out;
}
