/**
 * The recipient a milter is asked about, read the way Postfix routes it.
 *
 * A milter receives the RCPT argument as the client wrote it (RFC 5321/822 external form), while
 * Postfix routes by its internal form: RFC 822 tokens without comments or white space, quoted
 * strings and backslash escapes unquoted, split at the last "@". Read as raw text,
 * `<"nobody@example.com">`, `<nobody@example.com (x)>` or `<nobody@example.com >` looked like
 * foreign or broken domains, so the milter let them pass while Postfix relayed them to
 * example.com: unknown users got through the backup MX. The policy and socketmap front ends are
 * given the internal form by Postfix already.
 */

import { parseAddress } from '../recipient/address.js';

export type Token = { kind: 'text' | 'special'; text: string };

/**
 * The recipient to validate: the RCPT argument read as Postfix does; where that is no address
 * (a quirk of RFC 822 parsing this reader does not copy, such as a trailing ";"), the address
 * the MTA itself resolved, `{rcpt_addr}`, when it sent one with a domain. The argument comes
 * first: Sendmail's `{rcpt_addr}` can be a mailer's target (a bare user name, or a rewritten
 * address) rather than the recipient.
 */
export function milterRecipient(args: readonly string[], rcptAddr: string | undefined): string {
  const envelope = envelopeAddress(args);
  if (rcptAddr === undefined || !rcptAddr.includes('@') || parseAddress(envelope).ok) return envelope;
  // Postfix gives it in external form, quoted where needed ("a b"@example.com).
  return envelopeAddress([`<${rcptAddr}>`]);
}

/** The address of the first RCPT argument (ESMTP parameters dropped), as Postfix will route it. */
export function envelopeAddress(args: readonly string[]): string {
  const arg = (args[0] ?? '').replace(/^\s+/, '');
  const path = (comments: boolean) => (arg.startsWith('<') ? bracketed(arg, comments) : (arg.split(/\s+/)[0] ?? ''));
  const tokens = tokenize(path(true));
  // Unbalanced quotes, comments or brackets: no address. The raw path (a "(" read as text) fails
  // to parse, and in a served domain (text after the last "@") it is refused for its syntax.
  if (tokens === null) return path(false);
  // Postfix ignores angle brackets around the address: <<alice@example.com>> is alice@example.com.
  const address = withoutSourceRoute(tokens).filter((t) => t.kind !== 'special' || (t.text !== '<' && t.text !== '>'));
  return canonical(address.map((t) => t.text).join(''));
}

/** The text inside `<...>`, up to the '>' that is outside quotes (and comments, if `comments`). */
function bracketed(arg: string, comments: boolean): string {
  let quoted = false;
  let comment = 0;
  for (let i = 1; i < arg.length; i++) {
    const c = arg[i];
    if (c === '\\') i++;
    else if (quoted) quoted = c !== '"';
    else if (c === '(' && comments) comment++;
    else if (comment > 0) comment -= c === ')' ? 1 : 0;
    else if (c === '"') quoted = true;
    else if (c === '>') return arg.slice(1, i);
  }
  return arg.slice(1);
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

/** "@a,@b:user@domain" is user@domain (RFC 5321 4.1.1.3: a source route is ignored). */
function withoutSourceRoute(tokens: Token[]): Token[] {
  if (tokens[0]?.kind !== 'special' || tokens[0].text !== '@') return tokens;
  const colon = tokens.findIndex((t) => t.kind === 'special' && t.text === ':');
  return colon < 0 ? tokens : tokens.slice(colon + 1);
}

// RFC 5322 atext (plus UTF-8 for SMTPUTF8) and dots: no quotes; misplaced dots stay invalid.
const UNQUOTED = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\u{10FFFF}]+$/u;

/** The internal form split at its last "@", the local part quoted where it needs it ("a b"). */
export function canonical(internal: string): string {
  const at = internal.lastIndexOf('@');
  if (at <= 0) return internal;
  const local = internal.slice(0, at);
  const quoted = UNQUOTED.test(local) ? local : `"${local.replace(/["\\]/g, '\\$&')}"`;
  return `${quoted}@${internal.slice(at + 1)}`;
}
