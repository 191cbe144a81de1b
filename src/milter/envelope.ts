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

import { canonical, isPlainAddress, tokenize, type Token } from '../gate/postfix-address.js';
import { parseAddress } from '../recipient/address.js';

/**
 * The recipient to validate: the RCPT argument read as Postfix does; where that is no address
 * (a quirk of RFC 822 parsing this reader does not copy, such as a trailing ";"), the address
 * the MTA itself resolved, `{rcpt_addr}`, when it sent one with a domain. The argument comes
 * first: Sendmail's `{rcpt_addr}` can be a mailer's target (a bare user name, or a rewritten
 * address) rather than the recipient.
 */
export function milterRecipient(args: readonly string[], rcptAddr: string | undefined): string {
  const envelope = envelopeAddress(args);
  if (rcptAddr === undefined || !rcptAddr.includes('@') || isPlainAddress(envelope) || parseAddress(envelope).ok) return envelope;
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

/** "@a,@b:user@domain" is user@domain (RFC 5321 4.1.1.3: a source route is ignored). */
function withoutSourceRoute(tokens: Token[]): Token[] {
  if (tokens[0]?.kind !== 'special' || tokens[0].text !== '@') return tokens;
  const colon = tokens.findIndex((t) => t.kind === 'special' && t.text === ':');
  return colon < 0 ? tokens : tokens.slice(colon + 1);
}
