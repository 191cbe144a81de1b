/**
 * The recipient of a policy request, as Postfix will route it.
 *
 * Postfix gives a policy server the RCPT address in its internal form (comments dropped, quotes
 * removed), but routes by what its resolver then makes of that form: the text after the last "@"
 * read again as RFC 822 tokens (quotes, backslashes, white space and comments dropped), and,
 * where no domain is left, "site!user" read as user@site and "user%site" as user@site
 * (swap_bangpath and allow_percent_hack, both on by default). Taken as raw text,
 * `nobody%example.com`, `example.com!nobody` or `nobody@"example.com "` were no address of ours
 * (DUNNO) while Postfix relayed them to example.com: an unknown user got 250. The milter reads
 * the client's own text (milter/envelope.ts; both read with gate/postfix-address.ts); the socketmap is given the resolved address.
 */
import { parseAddress } from '../recipient/address.js';
import { canonical, isPlainAddress, routeOn, tokenize } from '../gate/postfix-address.js';

/** More rewriting rounds than any address Postfix accepts needs; the input bounds them anyway. */
const MAX_ROUNDS = 16;

export function routedRecipient(internal: string): string {
  if (isPlainAddress(internal) || parseAddress(internal).ok) return internal;
  let s = internal;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const at = s.lastIndexOf('@');
    if (at >= 0) {
      const text = s.slice(at + 1);
      const domain = tokenize(text)?.map((t) => t.text).join('') ?? text;
      if (domain !== '') return canonical(`${s.slice(0, at)}@${domain}`);
      // "user@": Postfix puts its own domain there, strips it as local and reads the rest again.
      s = s.slice(0, at);
      continue;
    }
    // With no domain: the first "!" makes site!user user@site, else the last "%" becomes "@".
    const next = routeOn(s);
    if (next === null) return internal;
    s = `${next.local}@${next.domain}`;
  }
  return internal;
}
