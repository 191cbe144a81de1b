import { ErrorCodes, RcptgateError } from '../errors.js';

/** One LDIF record: DN and attributes (names lowercased, values in file order). */
export interface LdifRecord {
  dn: string;
  attributes: Map<string, string[]>;
  line: number;
}

/**
 * A small RFC 2849 content-record parser: comments, folded lines, base64 (`::`) values.
 * Change records and URL (`:<`) values are refused with the line number.
 */
export function parseLdif(text: string): LdifRecord[] {
  const records: LdifRecord[] = [];
  // An export saved by a Windows editor starts with a UTF-8 byte order mark: not part of line 1.
  const lines = (text.startsWith('\uFEFF') ? text.slice(1) : text).split(/\r?\n/);
  // Unfold: a line starting with one space continues the previous one.
  const logical: Array<{ text: string; line: number }> = [];
  // Comments may be folded too (RFC 2849 note 2): their continuation lines are comment as well.
  let inComment = false;
  for (const [i, raw] of lines.entries()) {
    if (raw.startsWith(' ') && inComment) {
      continue;
    } else if (raw.startsWith(' ') && logical.length > 0 && logical[logical.length - 1]!.text !== '') {
      logical[logical.length - 1]!.text += raw.slice(1);
    } else if (raw.startsWith('#')) {
      inComment = true;
      continue;
    } else {
      inComment = false;
      logical.push({ text: raw, line: i + 1 });
    }
  }
  let current: LdifRecord | null = null;
  const fail = (line: number, message: string): never => {
    throw new RcptgateError(ErrorCodes.LDIF_PARSE, `LDIF line ${line}: ${message}`);
  };
  for (const { text: l, line } of logical) {
    if (l.trim() === '') {
      if (current) records.push(current);
      current = null;
      continue;
    }
    // `::` and `:<` before `:`, or `:<` would never match.
    const m = /^([A-Za-z0-9][A-Za-z0-9;.-]*)(::|:<|:)\s*(.*)$/.exec(l);
    if (!m) fail(line, 'expected "attribute: value"');
    const [, name, sep, rest] = m!;
    if (sep === ':<') fail(line, 'URL values are not supported');
    const value = sep === '::' ? Buffer.from(rest!, 'base64').toString('utf8') : rest!;
    const key = name!.toLowerCase();
    if (key === 'version' && current === null) continue;
    if (key === 'changetype') fail(line, 'change records are not supported; use content records');
    if (current === null) {
      if (key !== 'dn') fail(line, 'a record must start with "dn:"');
      current = { dn: value, attributes: new Map(), line };
      continue;
    }
    const list = current.attributes.get(key);
    if (list) list.push(value);
    else current.attributes.set(key, [value]);
  }
  if (current) records.push(current);
  return records;
}
