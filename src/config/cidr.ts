import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** "10.0.0.0/8", "::1/128" or a bare address; null when it is neither. */
export function parseCidr(text: string): Cidr | null {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  if (rest.length > 0) return null;
  const version = isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return null;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** An IPv4 peer as a dual-stack socket reports it ("::ffff:10.1.2.3") → "10.1.2.3". */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** A matcher for peer addresses; ranges must already be valid (the config schema checks them). */
export function addressMatcher(ranges: readonly string[]): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const r of ranges) {
    const c = parseCidr(r);
    if (c) list.addSubnet(c.address, c.prefix, c.family);
  }
  return (address) => {
    if (!address) return false;
    const a = unmapIPv4(address);
    const family = isIP(a);
    return family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/** True for a loopback peer address (IPv4-mapped spellings included). */
export const isLoopbackAddress = addressMatcher(['127.0.0.0/8', '::1/128']);

/** True when every address of the range is a loopback address. */
export function isLoopbackRange(text: string): boolean {
  const c = parseCidr(text);
  if (!c) return false;
  return c.family === 'ipv4' ? c.prefix >= 8 && isLoopbackAddress(c.address) : c.prefix === 128 && isLoopbackAddress(c.address);
}

/** True for a listen host that only loopback clients can reach ("localhost" included). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || isLoopbackAddress(h);
}
