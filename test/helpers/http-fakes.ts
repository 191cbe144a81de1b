/** Fakes for the HTTP front-end tests: a scriptable validator and a health report. */
import type { HealthReport, LookupOptions, LookupResult, RecipientValidator } from '../../src/recipient/types.js';

export type Answer = Omit<LookupResult, 'address'> | 'throw';

/**
 * Answers by lower-cased address from `answers`; anything else is `unknown`. Records every call
 * and the most lookups ever in flight at once.
 */
export class FakeValidator implements RecipientValidator {
  readonly calls: Array<{ address: string; options: LookupOptions }> = [];
  readonly flushed: Array<string | undefined> = [];
  maxInFlight = 0;
  private inFlight = 0;

  constructor(private readonly answers: Record<string, Answer> = {}) {}

  async lookup(address: string, options: LookupOptions): Promise<LookupResult> {
    this.calls.push({ address, options });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((resolve) => setImmediate(resolve)); // let other lookups start
      const answer = this.answers[address.toLowerCase()] ?? { verdict: 'unknown', source: 'directory', ttlSeconds: 300 };
      if (answer === 'throw') throw new Error('fake validator exploded at /secret/internal/path');
      return { address, ...answer };
    } finally {
      this.inFlight--;
    }
  }

  isServedDomain(domain: string): boolean {
    return domain.toLowerCase() === 'example.com';
  }

  servedDomain(domain: string): string | null {
    return this.isServedDomain(domain) ? 'example.com' : null;
  }

  flush(address?: string): number {
    this.flushed.push(address);
    return address === undefined ? 7 : 1;
  }
}

export function healthReport(overrides: Partial<HealthReport> = {}): HealthReport {
  return {
    ready: true,
    draining: false,
    directory: { kind: 'ldap', up: true, lastSuccessAt: new Date(0).toISOString(), lastError: null },
    snapshot: { loaded: false, entries: 0, ageSeconds: null },
    cache: { entries: 42 },
    uptimeSeconds: 3725,
    version: '9.9.9-test',
    ...overrides,
  };
}
