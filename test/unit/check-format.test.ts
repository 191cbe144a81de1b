import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExitCode, EXIT, formatCheckLine } from '../../src/cli/check.js';
import type { LookupResult, Verdict } from '../../src/recipient/types.js';

const r = (over: Partial<LookupResult>): LookupResult => ({ address: 'a@example.com', verdict: 'valid', source: 'directory', ttlSeconds: 60, ...over });

describe('check output lines', () => {
  it('prints ADDRESS<TAB>VERDICT<TAB>detail with exactly two tabs', () => {
    const cases: LookupResult[] = [
      r({ address: 'Alice@Example.com', verdict: 'valid', canonical: 'alice@example.com' }),
      r({ address: 'postmaster@example.com', verdict: 'valid', source: 'static' }),
      r({ address: 'nobody@example.com', verdict: 'unknown' }),
      r({ address: 'x@elsewhere.example', verdict: 'not_ours', source: 'static' }),
      r({ address: 'b@example.com', verdict: 'tempfail', reason: 'directory unavailable' }),
      r({ address: 'not-an-address', verdict: 'invalid', reason: 'missing "@"' }),
    ];
    for (const c of cases) {
      const line = formatCheckLine(c);
      const parts = line.split('\t');
      assert.equal(parts.length, 3, line);
      assert.equal(parts[0], c.address);
      assert.equal(parts[1], c.verdict);
      assert.ok(parts[2]!.length > 0, line);
      assert.doesNotMatch(line, /\n/);
    }
  });

  it('details: canonical and source, reasons, shadow', () => {
    assert.equal(formatCheckLine(r({ canonical: 'Alice@Example.com' })), 'a@example.com\tvalid\tAlice@Example.com (directory)');
    assert.equal(formatCheckLine(r({ verdict: 'unknown', source: 'cache' })), 'a@example.com\tunknown\tno such recipient (cache)');
    assert.equal(formatCheckLine(r({ verdict: 'not_ours' })), 'a@example.com\tnot_ours\tdomain not served');
    assert.equal(formatCheckLine(r({ verdict: 'tempfail', reason: 'timeout' })), 'a@example.com\ttempfail\ttimeout');
    assert.equal(formatCheckLine(r({ verdict: 'invalid', reason: 'empty address' })), 'a@example.com\tinvalid\tempty address');
    assert.match(formatCheckLine(r({ shadow: true, enforcedVerdict: 'unknown' })), /\tvalid\t.*shadow mode; enforce would say unknown/);
  });
});

describe('check exit codes (most serious first)', () => {
  const cases: Array<[Verdict[], number]> = [
    [['valid'], 0],
    [['valid', 'valid'], 0],
    [['unknown'], 1],
    [['valid', 'not_ours'], 1],
    [['invalid', 'unknown'], 64],
    [['valid', 'invalid'], 64],
    [['tempfail', 'invalid', 'unknown'], 75],
    [['valid', 'tempfail'], 75],
  ];
  for (const [verdicts, code] of cases) {
    it(`${verdicts.join(', ')} → ${code}`, () => assert.equal(checkExitCode(verdicts), code));
  }
  it('uses the sysexits values', () => {
    assert.deepEqual(EXIT, { OK: 0, REJECTED: 1, USAGE: 64, TEMPFAIL: 75, CONFIG: 78 });
  });
});
