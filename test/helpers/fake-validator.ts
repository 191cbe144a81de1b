/**
 * The one scriptable RecipientValidator for front-end unit tests. It answers from a function of
 * the address, records every call, and (with `sync`) also answers through `lookupNow`, the
 * engine's promise-free path that the socket front ends try first.
 */
import type { LookupOptions, LookupResult, RecipientValidator, Verdict } from '../../src/recipient/types.js';

/** An answer: a result (address filled in), a delay before it, or an exception to throw. */
export type FakeAnswer = (Partial<Omit<LookupResult, 'address'>> & { verdict: Verdict; delayMs?: number }) | Error;

export interface FakeValidatorOptions {
  /** Served domains (normalized: lowercased, trailing dot dropped); null = every domain. */
  served?: readonly string[] | null;
  /** Also answer through lookupNow() when the answer needs no delay (the engine's cached path). */
  sync?: boolean;
  /** What flush() reports as removed: all entries / one entry. */
  flushed?: { all: number; one: number };
}

export class FakeValidator implements RecipientValidator {
  readonly calls: Array<{ address: string; options: LookupOptions; sync: boolean }> = [];
  readonly flushed: Array<string | undefined> = [];
  /** Most lookups in flight at once. */
  maxInFlight = 0;
  private inFlight = 0;
  private readonly served: ReadonlySet<string> | null;

  constructor(
    private readonly answer: (address: string) => FakeAnswer = () => ({ verdict: 'unknown' }),
    private readonly options: FakeValidatorOptions = {},
  ) {
    this.served = options.served === null ? null : new Set(options.served ?? ['example.com', 'example.org']);
  }

  /** The addresses asked, in order. */
  get addresses(): string[] {
    return this.calls.map((c) => c.address);
  }

  lookupNow(address: string, options: LookupOptions): LookupResult | undefined {
    if (!this.options.sync) return undefined;
    const a = this.answer(address);
    if (a instanceof Error || a.delayMs) return undefined;
    this.calls.push({ address, options, sync: true });
    return this.result(address, a);
  }

  async lookup(address: string, options: LookupOptions): Promise<LookupResult> {
    this.calls.push({ address, options, sync: false });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((resolve) => setImmediate(resolve)); // let other lookups start
      const a = this.answer(address);
      if (a instanceof Error) throw a;
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      return this.result(address, a);
    } finally {
      this.inFlight--;
    }
  }

  private result(address: string, a: Exclude<FakeAnswer, Error>): LookupResult {
    const { delayMs: _delay, ...rest } = a;
    return { address, source: 'directory', ttlSeconds: 300, ...rest };
  }

  servedDomain(domain: string): string | null {
    const d = domain.toLowerCase().replace(/\.$/, '');
    return this.served === null || this.served.has(d) ? d : null;
  }

  isServedDomain(domain: string): boolean {
    return this.servedDomain(domain) !== null;
  }

  flush(address?: string): number {
    this.flushed.push(address);
    const f = this.options.flushed ?? { all: 0, one: 0 };
    return address === undefined ? f.all : f.one;
  }
}

/** Answers by a table of lowercased addresses; anything else is `unknown`. */
export function byTable(table: Record<string, FakeAnswer>): (address: string) => FakeAnswer {
  return (address) => table[address.toLowerCase()] ?? { verdict: 'unknown' };
}

/**
 * Answers by the local part's prefix: valid…, unknown…, temp…, other… (not_ours), bad… or a
 * quoted local part (invalid); `throw` in it throws, `slow` in it answers after 30 ms.
 */
export function byLocalPart(fallback: Verdict): (address: string) => FakeAnswer {
  return (address) => {
    const local = address.split('@')[0] ?? '';
    if (local.includes('throw')) return new Error('boom');
    const delayMs = local.includes('slow') ? 30 : 0;
    const verdict: Verdict = local.startsWith('valid')
      ? 'valid'
      : local.startsWith('unknown')
        ? 'unknown'
        : local.startsWith('temp')
          ? 'tempfail'
          : local.startsWith('other')
            ? 'not_ours'
            : local.startsWith('bad') || local.startsWith('"')
              ? 'invalid'
              : fallback;
    return { verdict, source: 'static', ttlSeconds: 0, delayMs };
  };
}
