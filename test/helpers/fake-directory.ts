import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import type { Directory, DirectoryAnswer, DirectoryRecord } from '../../src/directory/types.js';

/**
 * A scripted Directory for engine tests: a table of known addresses, switchable failure,
 * per-call scripted outcomes, optional delays or manual release, and call counts per key.
 */
export type Script = 'found' | 'not_found' | 'error' | Error;

export class FakeDirectory implements Directory {
  readonly kind = 'ldap' as const;
  /** Normalized address → canonical. */
  readonly entries = new Map<string, string>();
  /** Every lookup, in order (also counts failed ones). */
  readonly calls: string[] = [];
  /** When set, every lookup throws this (a DirectoryError unless replaced). */
  failure: Error | null = null;
  /** Delay before answering, in ms of real time (for overlapping requests). */
  delayMs = 0;
  /** One-shot outcomes consumed in order before the table is consulted. */
  private readonly script: Script[] = [];
  /** Lookups held until release() when `hold` is true. */
  hold = false;
  private readonly held: Array<() => void> = [];
  private readonly domains: string[] | null;
  /** Present only when built with `knownDomains` (like LdifDirectory; LdapDirectory has none). */
  knownDomains?: () => string[];

  constructor(entries: Record<string, string> | string[] = {}, options: { knownDomains?: string[] } = {}) {
    const list = Array.isArray(entries) ? Object.fromEntries(entries.map((a) => [a, a])) : entries;
    for (const [a, c] of Object.entries(list)) this.entries.set(a.toLowerCase(), c);
    this.domains = options.knownDomains ?? null;
    if (this.domains) this.knownDomains = () => [...this.domains!];
  }

  /** Makes the directory fail (down) or answer again (up). */
  down(err: Error = new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'connection refused')): void {
    this.failure = err;
  }

  up(): void {
    this.failure = null;
  }

  /** Queues outcomes for the next lookups (not named `then`: that would make this a thenable). */
  queue(...outcomes: Script[]): this {
    this.script.push(...outcomes);
    return this;
  }

  callsFor(address: string): number {
    return this.calls.filter((c) => c === address).length;
  }

  /** Lets every held lookup proceed. */
  release(): void {
    this.hold = false;
    for (const go of this.held.splice(0)) go();
  }

  get pending(): number {
    return this.held.length;
  }

  async lookup(address: string): Promise<DirectoryAnswer> {
    this.calls.push(address);
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const scripted = this.script.shift();
    if (scripted instanceof Error) throw scripted;
    if (scripted === 'error') throw new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'scripted timeout');
    if (scripted === 'not_found') return { entry: null, filter: `(mail=${address})` };
    if (this.failure && scripted === undefined) throw this.failure;
    const canonical = this.entries.get(address.toLowerCase()) ?? (scripted === 'found' ? address : undefined);
    return {
      entry: canonical === undefined ? null : { dn: `uid=${address.split('@')[0]},dc=test`, canonical },
      filter: `(mail=${address})`,
    };
  }

  /** The filter lookup() reports, as LdapDirectory.filterFor() does. */
  filterFor(address: string): string {
    return `(mail=${address})`;
  }

  async probe(): Promise<void> {
    if (this.failure) throw this.failure;
  }

  async *listAll(): AsyncIterable<DirectoryRecord> {
    for (const [a, c] of this.entries) yield { dn: `uid=${a},dc=test`, canonical: c, addresses: [a] };
  }

  async close(): Promise<void> {}
}

/** A clock tests move by hand. */
export class FakeClock {
  constructor(public t = 1_700_000_000_000) {}
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}
