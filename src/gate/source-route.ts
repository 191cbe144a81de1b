/**
 * Where a source-routed recipient ends up, when that is in a served domain.
 *
 * Postfix strips a domain it counts as its own (mydestination, its own address literal such as
 * [127.0.0.1]) and routes what is left of the address: `"nobody@example.com"@[127.0.0.1]` and
 * `"nobody%example.com"@localhost` both go to nobody@example.com, and since the address that is
 * finally routed has no routing operator left, reject_unauth_destination lets them through. The
 * policy and milter front ends see the outer address, a domain that is not ours: an unknown user
 * got 250. rcptgate cannot know which domains the MTA counts as its own, so a recipient outside
 * the served domains whose local part routes on ("@", "!" or "%") into a served domain is judged
 * as that inner address. Through any domain the MTA does not strip, Postfix refuses such a
 * recipient from an untrusted client as source-routed, so this refuses nothing it would deliver.
 */
import { normalizeDomain } from '../recipient/address.js';
import { canonical, routeOn, tokenize } from './postfix-address.js';

/** More hops than any real address has; each one shortens the address, so it ends anyway. */
const MAX_HOPS = 8;

/** The inner address, or `address` itself when it does not route on into a served domain. */
export function servedTarget(address: string, isServed: (domain: string) => boolean): string {
  if (!mayRoute(address)) return address;
  let current = address;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const at = current.lastIndexOf('@');
    const domain = at < 0 ? null : normalizeDomain(current.slice(at + 1));
    if (domain === null) return address;
    // An inner address in a served domain is ours to judge, even one that is no valid address
    // (refused for its syntax, as the same address asked directly would be).
    if (isServed(domain)) return current;
    // The outer address need not be valid either: Postfix routes "<55 letters>@example.com"@[127.0.0.1]
    // on, though its local part is over 64 octets.
    const inner = routeOn(unquoted(current.slice(0, at)));
    if (inner === null) return address;
    // Postfix reads the new domain again as RFC 822 tokens (white space, quotes and comments
    // dropped: "nobody@ example.com " goes to example.com); an empty local part is `""`.
    const next = tokenize(inner.domain)?.map((t) => t.text).join('') ?? inner.domain;
    if (next === '') return address;
    current = canonical(`${inner.local}@${next}`);
  }
  return address;
}

/** A quoted local part's content, quotes and escapes removed; any other as it is. */
function unquoted(local: string): string {
  return local.length >= 2 && local.startsWith('"') && local.endsWith('"') ? local.slice(1, -1).replace(/\\(.)/g, '$1') : local;
}

/** Cheap test first: a routing operator before the last "@". */
function mayRoute(address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const local = address.slice(0, at);
  return local.includes('@') || local.includes('%') || local.includes('!');
}
