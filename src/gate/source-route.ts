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
import { parseAddress } from '../recipient/address.js';

/** More hops than any real address has; each one shortens the address, so it ends anyway. */
const MAX_HOPS = 8;

/** The inner address, or `address` itself when it does not route on into a served domain. */
export function servedTarget(address: string, isServed: (domain: string) => boolean): string {
  if (!mayRoute(address)) return address;
  let current = address;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const parsed = parseAddress(current);
    if (!parsed.ok) return address;
    const { local, domain } = parsed.value;
    if (isServed(domain)) return current;
    const inner = innerAddress(local.startsWith('"') ? local.slice(1, -1).replace(/\\(.)/g, '$1') : local);
    if (inner === null) return address;
    current = inner;
  }
  return address;
}

/** Cheap test first: a routing operator before the last "@". */
function mayRoute(address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const local = address.slice(0, at);
  return local.includes('@') || local.includes('%') || local.includes('!');
}

/** As Postfix reads a local part: "a@b" is an address; else "site!user" and "user%site" are. */
function innerAddress(local: string): string | null {
  const at = local.lastIndexOf('@');
  if (at >= 0) return quoted(local.slice(0, at), local.slice(at + 1));
  const bang = local.indexOf('!');
  if (bang >= 0) return quoted(local.slice(bang + 1), local.slice(0, bang));
  const percent = local.lastIndexOf('%');
  if (percent >= 0) return quoted(local.slice(0, percent), local.slice(percent + 1));
  return null;
}

const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+)*$/u;

function quoted(local: string, domain: string): string | null {
  if (local === '' || domain === '') return null;
  return `${DOT_ATOM.test(local) ? local : `"${local.replace(/["\\]/g, '\\$&')}"`}@${domain}`;
}
