/**
 * The old-against-new verdict of `npm run bench -- --only regress` (bench/scenarios/regress.ts):
 * the sign-test interval of the median and the "no worse" rule, on made-up rounds whose answer
 * is known. A wrong rule would pass a regression or fail on noise alone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { figure, median, medianInterval, sameBuildSpread } from '../../bench/scenarios/regress.js';

/** Deterministic scatter in [-1, 1). */
function scatter(n: number, seed: number): number[] {
  let a = seed >>> 0;
  return Array.from({ length: n }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 31 - 1;
  });
}

describe('median and its interval', () => {
  it('medians of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });

  it('21 rounds: the 6th smallest to the 6th largest (P(Binomial(21, ½) ≤ 5) = 1.3 %, ≤ 6 would be 3.9 %)', () => {
    const xs = Array.from({ length: 21 }, (_, i) => 21 - i); // 21..1, unsorted on purpose
    assert.deepEqual(medianInterval(xs), [6, 16]);
  });

  it('too few rounds for a 95 % interval: unbounded, so no verdict can pass on them', () => {
    assert.deepEqual(medianInterval([1, 2, 3, 4, 5]), [-Infinity, Infinity]);
    assert.equal(figure([1, 1, 1, 1, 1], [1, 1, 1, 1, 1], true).pass, false);
  });

  it('same-build spread: the median change between consecutive rounds', () => {
    assert.ok(Math.abs(sameBuildSpread([100, 110, 99, 99]) - 0.1) < 1e-12); // changes 10 %, 10 %, 0
  });
});

describe('"no worse" verdict', () => {
  const rounds = 61;
  const old = scatter(rounds, 1).map((e) => 1000 * (1 + 0.15 * e)); // 15 % load scatter between rounds

  it('the same build against itself, scattered by load that falls on both in a round: passes', () => {
    const same = old.map((x, i) => x * (1 + 0.03 * scatter(rounds, 2)[i]!));
    const f = figure(old, same, true);
    assert.ok(f.pass, JSON.stringify(f));
    assert.ok(f.interval[0] <= 1 && f.interval[1] >= 1);
  });

  it('15 % fewer lookups/s in every round: fails as worse beyond the noise', () => {
    const slower = old.map((x, i) => x * 0.85 * (1 + 0.03 * scatter(rounds, 3)[i]!));
    const f = figure(old, slower, true);
    assert.equal(f.pass, false);
    assert.equal(f.reaches, false);
  });

  it('5 % more CPU per lookup in every round, little noise: fails (the interval excludes 1)', () => {
    const more = old.map((x, i) => x * 1.05 * (1 + 0.01 * scatter(rounds, 4)[i]!));
    const f = figure(old, more, false);
    assert.equal(f.pass, false);
    assert.equal(f.reaches, false);
  });

  it('rounds too scattered to rule out a 10 % regression: fails, though the median is 1', () => {
    const noisy = old.map((x, i) => x * (1 + 0.6 * scatter(rounds, 5)[i]!));
    const f = figure(old, noisy, true);
    assert.equal(f.reaches, true);
    assert.equal(f.bounded, false);
    assert.equal(f.pass, false);
  });

  it('CPU is judged the other way round: less CPU passes, the same figures as lookups/s would not', () => {
    const less = old.map((x, i) => x * 0.8 * (1 + 0.01 * scatter(rounds, 6)[i]!));
    assert.equal(figure(old, less, false).pass, true);
    assert.equal(figure(old, less, true).pass, false);
  });
});
