import { domainToASCII, domainToUnicode } from 'node:url';

/**
 * Recipient address parsing and normalization (README "Verdicts"): RFC 5321 limits, dot-atom or
 * quoted local parts, UTF-8 local parts (SMTPUTF8), IDN domains to A-labels, a trailing dot on
 * the domain dropped, case folded. Never throws: bad input is a reason, which the engine turns
 * into the `invalid` verdict.
 */

export interface ParsedAddress {
  /** Local part as compared: lowercased, quotes dropped when they were not needed. */
  local: string;
  /** Domain: lowercased A-label form without trailing dot (or a bracketed address literal). */
  domain: string;
  /** `local@domain` as used for lookups and cache keys. */
  address: string;
}

export type ParseResult = { ok: true; value: ParsedAddress } | { ok: false; reason: string };

/** RFC 5321 limits. */
export const MAX_LOCAL_OCTETS = 64;
export const MAX_ADDRESS_OCTETS = 254;
// atext of RFC 5322 plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;
// Printable ASCII except `"` and `\`, plus UTF-8, inside quotes; `\` escapes any printable character.
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"$/u;
// C0, DEL and C1 (U+0080-U+009F): control characters are never part of an address.
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
// A surrogate not in a pair (only JSON's \ud800 escapes make one) has no UTF-8 form: no mailbox has it.
const LONE_SURROGATE = /\p{Cs}/u;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isDotAtom(s: string): boolean {
  return s.split('.').every((atom) => atom.length > 0 && ATOM.test(atom));
}

function octets(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Normalizes a domain: lowercase, trailing dot dropped, IDN to A-label. Null when invalid. */
export function normalizeDomain(input: string): string | null {
  let d = input.endsWith('.') ? input.slice(0, -1) : input;
  if (d.length === 0) return null;
  if (d.startsWith('[')) {
    // Address literal: syntactically fine, never a served domain.
    return /^\[[0-9A-Za-z:.\-]+\]$/.test(d) ? d.toLowerCase() : null;
  }
  if (/[\s@\[\]\\"]/.test(d)) return null;
  d = d.toLowerCase();
  const ascii = /^[\x20-\x7e]*$/.test(d) ? d : domainToASCII(d);
  if (!ascii || ascii.length > 253) return null;
  const labels = ascii.split('.');
  if (!labels.every((l) => LABEL.test(l))) return null;
  return ascii;
}

/**
 * Case folding of a local part, as the directory folds: a letter to its lowercase only when that
 * is a case pair both ways (the lowercase uppercases back to it). `toLowerCase()` alone maps the
 * Kelvin sign U+212A to "k", the ohm sign U+2126 to ω, the angstrom sign U+212B to å, ϴ to θ, ẞ
 * to ß and "İ" to "i" + U+0307, none of which the DC matches with those letters: "\u212Aate"
 * would match "kate", "\u2126mega" "ωmega".
 */
export function foldLocal(local: string): string {
  if (/^[\x00-\x7f]*$/.test(local)) return local.toLowerCase();
  let out = '';
  for (const ch of local) {
    // ς and σ are one letter to every directory (Σ uppercased; RFC 4518 case folding): one key.
    const lower = ch === 'ς' ? 'σ' : ch.toLowerCase();
    out += lower === ch || lower.toUpperCase() === ch.toUpperCase() ? lower : ch;
  }
  return out;
}

/**
 * foldLocal() on the local part, only ASCII letters lowercased in the domain: IDNA keeps ς apart
 * from σ (and JavaScript lowercases a final Σ to ς), so folding a domain as a local part would name
 * another domain. normalizeDomain() does the rest.
 */
export function foldAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? foldLocal(address) : foldLocal(address.slice(0, at)) + address.slice(at).replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

export function parseAddress(input: string): ParseResult {
  if (typeof input !== 'string') return { ok: false, reason: 'not a string' };
  let s = input;
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  if (s.length === 0) return { ok: false, reason: 'empty address' };
  if (CONTROL.test(s)) return { ok: false, reason: 'control characters are not allowed' };
  if (LONE_SURROGATE.test(s)) return { ok: false, reason: 'not valid Unicode (a lone surrogate)' };
  if (octets(s) > MAX_ADDRESS_OCTETS + 1) return { ok: false, reason: `address longer than ${MAX_ADDRESS_OCTETS} octets` };
  const at = s.lastIndexOf('@');
  if (at < 0) return { ok: false, reason: 'missing "@"' };
  let local = s.slice(0, at);
  const rawDomain = s.slice(at + 1);
  if (local.length === 0) return { ok: false, reason: 'empty local part' };
  if (rawDomain.length === 0) return { ok: false, reason: 'empty domain' };

  if (local.startsWith('"')) {
    if (!QUOTED.test(local)) return { ok: false, reason: 'malformed quoted local part' };
    // "john.doe" and john.doe are the same mailbox, and so are "a\ b" and "a b": quotes and
    // escapes are kept only where they are needed, as Postfix writes the address to its tables.
    const inner = local.slice(1, -1).replace(/\\(.)/g, '$1');
    local = isDotAtom(inner) ? inner : `"${inner.replace(/["\\]/g, '\\$&')}"`;
  } else if (!isDotAtom(local)) {
    return { ok: false, reason: 'local part has characters that need quoting, or misplaced dots' };
  }
  // Fold case before measuring: some characters grow when lowercased.
  local = foldLocal(local);
  if (octets(local) > MAX_LOCAL_OCTETS) return { ok: false, reason: `local part longer than ${MAX_LOCAL_OCTETS} octets` };

  const domain = normalizeDomain(rawDomain);
  if (domain === null) return { ok: false, reason: 'malformed domain' };
  const address = `${local}@${domain}`;
  if (octets(address) > MAX_ADDRESS_OCTETS) return { ok: false, reason: `address longer than ${MAX_ADDRESS_OCTETS} octets` };
  return { ok: true, value: { local, domain, address } };
}

/**
 * `directory.canaries` as lookups ask for them (normalized; one that does not parse as written,
 * which config checks refuse). Every user of the list must get this form: failback got them as
 * written, and never found `info@bücher.example`, which the directory holds as an A-label.
 */
export function canaryKeys(canaries: readonly string[]): string[] {
  return canaries.map((c) => {
    const parsed = parseAddress(c);
    return parsed.ok ? parsed.value.address : c;
  });
}

/**
 * A normalized address at an IDN domain with the domain as a U-label, or null (no A-label in it):
 * a directory may store either form, and lookups ask for both (rules.ts), so canary checks must too.
 */
export function withUnicodeDomain(address: string): string | null {
  const at = address.lastIndexOf('@');
  const domain = address.slice(at + 1);
  if (at < 0 || !/(^|\.)xn--/.test(domain)) return null;
  const unicode = domainToUnicode(domain);
  return unicode !== '' && unicode !== domain ? `${address.slice(0, at)}@${unicode}` : null;
}

/** Local parts Postfix never splits, whatever the delimiter (its split_addr). */
const UNSPLIT = new Set(['postmaster', 'mailer-daemon', 'double-bounce']);

/**
 * The local part without its sub-address, following Postfix: cut at the first character that is
 * one of `delimiters`; null when there is none or nothing would be left. As in Postfix
 * (`owner_request_special`), with `-` among the delimiters `owner-foo` and `foo-request` are
 * mailing-list addresses of their own, not sub-addresses of `owner` and `foo`: accepting them
 * because `owner` exists would be a wrong `valid`.
 */
export function stripSubaddress(local: string, delimiters: string): string | null {
  if (delimiters.length === 0 || local.startsWith('"')) return null;
  const lower = local.toLowerCase();
  if (UNSPLIT.has(lower)) return null;
  if (delimiters.includes('-') && (lower.startsWith('owner-') || (lower.length > 8 && lower.endsWith('-request')))) return null;
  for (let i = 0; i < local.length; i++) {
    if (delimiters.includes(local[i]!)) return i > 0 ? local.slice(0, i) : null;
  }
  return null;
}

/**
 * The engine's lookup key for an address from the directory (snapshot entries): the normalized
 * address, or the input as it is when it does not parse (it then never matches a lookup). Only
 * what the directory's own search also looks past is normalized: case, and a U-label domain
 * (lookups ask for both forms). A stored `"alice"@…`, `<bob@…>` or `carol@….` is found by no
 * search for alice@, bob@ or carol@, so the snapshot must not answer them either.
 */
export function addressKey(address: string): string {
  // Fast path for plain ASCII; anything else (e.g. U+212A, which toLowerCase() makes "k") goes
  // through parseAddress() and its case folding.
  if (/^[A-Za-z0-9._%+=&'-]+@[A-Za-z0-9.-]+$/.test(address)) return address.toLowerCase();
  // A catch-all value (`@Example.COM`), which lookups ask for last as `@example.com`.
  if (address.startsWith('@') && !address.endsWith('.')) {
    const domain = normalizeDomain(address.slice(1));
    if (domain !== null) return `@${domain}`;
  }
  const parsed = parseAddress(address);
  if (!parsed.ok || address.endsWith('.')) return address;
  return foldLocal(address.slice(0, address.lastIndexOf('@'))) === parsed.value.local ? parsed.value.address : address;
}
