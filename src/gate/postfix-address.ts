/**
 * Addresses as Postfix reads them, for the front ends that see them before Postfix has routed
 * them (milter: the client's own text; policy: Postfix's internal form; the gate: source routes).
 * RFC 822 tokens without comments or white space, quoted strings and escapes unquoted, split at
 * the last "@"; "site!user" and "user%site" (swap_bangpath, allow_percent_hack) name user@site.
 */

export type Token = { kind: 'text' | 'special'; text: string };

/**
 * Nearly every recipient: dot-atom ASCII local part and a plain domain, which every reading
 * below leaves as it is. Lets the front ends skip a full parse that the engine repeats anyway.
 */
const PLAIN = /^[A-Za-z0-9._+=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?$/;
export function isPlainAddress(address: string): boolean {
  return PLAIN.test(address) && !address.startsWith('.') && !address.includes('..') && !address.includes('.@');
}

/** RFC 822 tokens with comments and white space dropped; null when something is left open. */
export function tokenize(s: string): Token[] | null {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === '(') {
      const end = skipComment(s, i);
      if (end < 0) return null;
      i = end;
    } else if (c === '"') {
      let text = '';
      for (i++; i < s.length && s[i] !== '"'; i++) text += s[i] === '\\' ? (s[++i] ?? '') : s[i];
      if (i >= s.length) return null;
      i++;
      out.push({ kind: 'text', text });
    } else if (c === '[') {
      const end = s.indexOf(']', i);
      if (end < 0) return null;
      out.push({ kind: 'text', text: s.slice(i, end + 1) });
      i = end + 1;
    } else if (c === '\\') {
      out.push({ kind: 'text', text: s[i + 1] ?? '' });
      i += 2;
    } else if ('<>@,;:.'.includes(c)) {
      out.push({ kind: 'special', text: c });
      i++;
    } else {
      // An atom runs to the next special; a stray ")" is text (always at least one character).
      let j = i + 1;
      while (j < s.length && !' \t("[\\<>@,;:.'.includes(s[j]!)) j++;
      out.push({ kind: 'text', text: s.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** The index after the comment opened at `start` (comments nest); -1 when it never closes. */
function skipComment(s: string, start: number): number {
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return -1;
}

// RFC 5322 atext (plus UTF-8 for SMTPUTF8) and dots: no quotes; misplaced dots stay invalid.
const UNQUOTED = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\u{10FFFF}]+$/u;

/**
 * The internal form split at its last "@", the local part quoted where it needs it ("a b"); an
 * empty one is `""`, as Postfix writes it (`<@example.com>` is `""@example.com`, which a catch-all
 * entry answers in Postfix's own tables).
 */
export function canonical(internal: string): string {
  const at = internal.lastIndexOf('@');
  if (at < 0) return internal;
  const local = internal.slice(0, at);
  const quoted = UNQUOTED.test(local) ? local : `"${local.replace(/["\\]/g, '\\$&')}"`;
  return `${quoted}@${internal.slice(at + 1)}`;
}

/**
 * A local part that routes on, as Postfix reads it: "a@b" (last "@"), else "site!user" (first
 * "!"), else "user%site" (last "%"); the parts unquoted, either may be empty. Null: none of them.
 */
export function routeOn(local: string): { local: string; domain: string } | null {
  const at = local.lastIndexOf('@');
  if (at >= 0) return { local: local.slice(0, at), domain: local.slice(at + 1) };
  const bang = local.indexOf('!');
  if (bang >= 0) return { local: local.slice(bang + 1), domain: local.slice(0, bang) };
  const percent = local.lastIndexOf('%');
  if (percent >= 0) return { local: local.slice(0, percent), domain: local.slice(percent + 1) };
  return null;
}
