import { isIP } from 'node:net';

/**
 * An IPv6 client as the network it sends from, for the harvest guard: one host or customer holds
 * at least a /64 and may use any address of it. Parsed by hand: this runs for every recipient of
 * an IPv6 client.
 */

/** The eight 16-bit groups of a valid IPv6 address without a zone (any spelling, dotted tail included). */
function groupsOf(address: string): number[] {
  let s = address;
  const v4: number[] = [];
  if (s.includes('.')) {
    const colon = s.lastIndexOf(':');
    const [a, b, c, d] = s.slice(colon + 1).split('.').map(Number) as [number, number, number, number];
    v4.push((a << 8) | b, (c << 8) | d);
    s = s.endsWith('::', colon + 1) ? s.slice(0, colon + 1) : s.slice(0, colon);
  }
  const part = (t: string): number[] => (t === '' ? [] : t.split(':').map((g) => parseInt(g, 16)));
  const cut = s.indexOf('::');
  const head = part(cut < 0 ? s : s.slice(0, cut));
  const rest = cut < 0 ? [] : part(s.slice(cut + 2));
  const zeros = 8 - head.length - rest.length - v4.length;
  return [...head, ...new Array<number>(zeros).fill(0), ...rest, ...v4];
}

/** RFC 5952 spelling: lower-case hex, the first longest run of two or more zero groups as `::`. */
function spell(groups: number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** A valid IPv6 address without a zone in one spelling: RFC 5952, as the URL parser writes it. */
export function canonicalIpv6(address: string): string {
  return spell(groupsOf(address));
}

/**
 * Addresses that carry an IPv4 client in their low bits: IPv4-compatible (`::a.b.c.d`, and the
 * unspecified and loopback addresses with them), IPv4-mapped, IPv4-translated (`::ffff:0:a.b.c.d`)
 * and the NAT64 prefixes `64:ff9b::/96` and `64:ff9b:1::/48`. Behind a translator every IPv4
 * sender shares one /64: each is counted by its own address instead.
 */
function embedsIpv4(g: number[]): boolean {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0) return (g[4] === 0 && (g[5] === 0 || g[5] === 0xffff)) || (g[4] === 0xffff && g[5] === 0);
  return g[0] === 0x64 && g[1] === 0xff9b && (g[2] === 1 || (g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0));
}

/**
 * `address` as its network of `bits` leading bits in one spelling (`2001:db8:1:2::/64`), or null
 * when it is no IPv6 address, embeds an IPv4 client (embedsIpv4), or bits is 128. A zone
 * (`fe80::1%eth0`, as a link-local peer's address reads) is dropped.
 */
export function ipv6Network(address: string, bits: number): string | null {
  if (bits >= 128 || address.length > 64) return null;
  const zone = address.indexOf('%');
  const a = zone < 0 ? address : address.slice(0, zone);
  if (isIP(a) !== 6) return null;
  const groups = groupsOf(a);
  if (embedsIpv4(groups)) return null;
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, bits - i * 16));
    groups[i] = groups[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${spell(groups)}/${bits}`;
}
