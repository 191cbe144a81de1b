import fc from 'fast-check';
import { test } from 'node:test';
import { PROPERTIES } from '../helpers/fuzz-properties.js';

// A quick run in `npm test`; `npm run fuzz` (scripts/fuzz.ts) runs the same properties ≥ 1,000,000 times.
for (const { name, check } of PROPERTIES.policy()) {
  test(`policy: ${name}`, () => {
    const details = check(3_000);
    if (details.failed) throw new Error(fc.defaultReportMessage(details));
  });
}
