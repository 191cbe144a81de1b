/** The engine when it cannot know: canaries, overload, Unicode case folding (README "What rcptgate answers when it cannot know"). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { addressKey, foldLocal, parseAddress } from '../../src/recipient/address.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { FakeClock, FakeDirectory } from '../helpers/fake-directory.js';

function setup(raw: Record<string, unknown> = {}) {
  const config = validateConfig({ domains: ['example.com'], ...raw });
  const dir = new FakeDirectory({ 'alice@example.com': 'alice@example.com', 'canary@example.com': 'canary@example.com', 'kate@example.com': 'kate@example.com' });
  const clock = new FakeClock();
  const metrics = new Metrics({ defaultMetrics: false });
  const v = new RecipientValidatorImpl({ config, directory: dir, metrics, logger: silentLogger(), now: clock.now });
  return { v, dir, clock, metrics };
}

const ask = (v: RecipientValidatorImpl, a: string) => v.lookup(a, { frontend: 'http' });
const up = async (m: Metrics) => (await m.directoryUp.get()).values[0]?.value;

describe('directory.canaries', () => {
  it('answers unknown while every canary is found', async () => {
    const { v } = setup({ directory: { canaries: ['canary@example.com'] } });
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'unknown');
    assert.equal(v.state.up, true);
  });

  it('turns every would-be unknown into tempfail while a canary is missing, and counts the directory as down', async () => {
    const { v, dir, metrics } = setup({ directory: { canaries: ['canary@example.com'] } });
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'unknown');
    // The bind account lost its read rights: the directory answers "no such entry" for everyone.
    const saved = new Map(dir.entries);
    dir.entries.clear();
    const r = await ask(v, 'alice@example.com');
    assert.equal(r.verdict, 'tempfail');
    assert.equal(v.state.up, false);
    assert.deepEqual(v.state.missingCanaries, ['canary@example.com']);
    assert.equal(await up(metrics), 0);
    // The negative cached before the loss is dropped: it may come from the same broken directory.
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'tempfail');
    for (const [k, c] of saved) dir.entries.set(k, c);
    await v.checkCanaries();
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'valid');
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'unknown');
    assert.equal(v.state.up, true);
    assert.equal(await up(metrics), 1);
  });

  it('does not cache negative answers while a canary is missing', async () => {
    const { v, dir } = setup({ directory: { canaries: ['canary@example.com'] } });
    dir.entries.delete('canary@example.com');
    assert.equal((await ask(v, 'nobody@example.com')).verdict, 'tempfail');
    dir.entries.set('canary@example.com', 'canary@example.com');
    await v.checkCanaries();
    const calls = dir.callsFor('nobody@example.com');
    await ask(v, 'nobody@example.com');
    assert.equal(dir.callsFor('nobody@example.com'), calls + 1);
  });

  it('checks the canaries after a negative answer, so a revocation between probes never yields unknown', async () => {
    const { v, dir } = setup({ directory: { canaries: ['canary@example.com'] } });
    await v.checkCanaries();
    dir.entries.clear();
    const answers = await Promise.all(['a', 'b', 'c', 'd'].map((l) => ask(v, `${l}@example.com`)));
    assert.deepEqual(answers.map((a) => a.verdict), ['tempfail', 'tempfail', 'tempfail', 'tempfail']);
    // One check before, at most two for the four concurrent negatives, one for their shared `@domain` request.
    assert.ok(dir.callsFor('canary@example.com') <= 4, 'concurrent negatives share canary checks');
  });

  it('rejects a canary that is not an address', () => {
    assert.throws(() => validateConfig({ directory: { canaries: ['not-an-address'] } }), /directory\.canaries\.0/);
  });
});

describe('directory health', () => {
  it('never marks the directory down for our own overload refusals', async () => {
    const { v, dir, metrics } = setup();
    assert.equal((await ask(v, 'alice@example.com')).verdict, 'valid');
    dir.queue(new DirectoryError(ErrorCodes.DIRECTORY_OVERLOADED, 'too many requests in flight'));
    assert.equal((await ask(v, 'bob@example.com')).verdict, 'tempfail');
    assert.equal(v.state.up, true);
    assert.equal(await up(metrics), 1);
    dir.queue(new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'timeout'));
    await ask(v, 'carol@example.com');
    assert.equal(v.state.up, false);
    assert.equal(await up(metrics), 0);
  });
});

describe('Unicode case folding', () => {
  it('does not fold the Kelvin sign U+212A into ASCII k', () => {
    const r = parseAddress('\u212Aate@example.com');
    assert.ok(r.ok);
    assert.notEqual(r.value.address, 'kate@example.com');
    assert.equal(foldLocal('\u212Aate'), '\u212Aate');
  });

  it('keys a directory address with U+212A as itself in the snapshot, not as kate', () => {
    assert.equal(addressKey('\u212Aate@Example.com'), '\u212Aate@example.com');
    assert.equal(addressKey('Kate@Example.com'), 'kate@example.com');
  });

  it('still folds ASCII, and non-ASCII that stays non-ASCII', () => {
    assert.equal(foldLocal('KATE'), 'kate');
    assert.equal(foldLocal('ÄRGER'), 'ärger');
    assert.equal(foldLocal('\u0130nci'), '\u0130nci', 'İ lowercases to i + U+0307: not folded');
  });

  it('looks up \\u212Aate as itself, never as kate (cache, snapshot and directory key)', async () => {
    const { v, dir } = setup();
    await ask(v, 'KATE@example.com');
    const r = await ask(v, '\u212Aate@example.com');
    assert.notEqual(r.source, 'cache', 'not the cached answer of kate');
    assert.ok(dir.calls.includes('\u212Aate@example.com'));
    v.setSnapshot({ get: (a) => (a === 'kate@example.com' ? a : undefined), isFresh: () => true, listedAt: -Infinity, hasDn: () => true });
    assert.notEqual((await ask(v, '\u212Aate@example.com')).source, 'snapshot');
  });
});
