/** Fakes for the HTTP front-end tests: the shared validator with a table script, and a health report. */
import type { HealthReport, LookupResult } from '../../src/recipient/types.js';
import { FakeValidator as SharedFake, byTable, type FakeAnswer } from './fake-validator.js';

export type Answer = Omit<LookupResult, 'address'> | 'throw';

/**
 * The shared FakeValidator with the HTTP tests' script: answers by lower-cased address from
 * `answers` (anything else `unknown`), serves example.com only, and reports 7 / 1 flushed entries.
 */
export class FakeValidator extends SharedFake {
  constructor(answers: Record<string, Answer> = {}) {
    const table: Record<string, FakeAnswer> = {};
    for (const [address, a] of Object.entries(answers)) table[address] = a === 'throw' ? new Error('fake validator exploded at /secret/internal/path') : a;
    super(byTable(table), { served: ['example.com'], flushed: { all: 7, one: 1 } });
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
