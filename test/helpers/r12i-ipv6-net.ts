import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Addresses of one IPv6 /64 on the loopback interface, so that one test can be a client
 * rotating through its network on real sockets (::1 is the only IPv6 loopback address). Needs
 * root and iproute2: without them the test fails loudly. `remove()` takes them away again.
 */
export interface Ipv6Network {
  /** The network, `fd12:12:12:12::/64`. */
  readonly prefix: string;
  /** The addresses added, `fd12:12:12:12::1` first. */
  readonly addresses: string[];
  remove(): Promise<void>;
}

export async function addIpv6Network(count: number, network = 'fd12:12:12:12'): Promise<Ipv6Network> {
  const addresses = Array.from({ length: count }, (_, i) => `${network}::${(i + 1).toString(16)}`);
  const added: string[] = [];
  const remove = async (): Promise<void> => {
    for (const a of added.splice(0)) await run('ip', ['-6', 'addr', 'del', `${a}/128`, 'dev', 'lo']).catch(() => undefined);
  };
  try {
    for (const a of addresses) {
      await run('ip', ['-6', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
      added.push(a);
    }
  } catch (err) {
    await remove();
    throw new Error(`cannot add IPv6 test addresses on lo (root and iproute2 needed): ${String(err)}`);
  }
  return { prefix: `${network}::/64`, addresses, remove };
}
