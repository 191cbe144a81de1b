/**
 * `npm run fuzz`: the codec and address properties of test/unit/fuzz-properties.ts, at least
 * 1,000,000 cases per codec (split over its properties). Bounded: inputs are small and capped,
 * the run count is fixed. Prints the cases run per codec; exits 1 with the counterexample on
 * the first failure.
 *
 *   npm run fuzz                         # 1,000,000 per codec
 *   npm run fuzz -- --cases 50000 --seed 42 --codec netstring
 */
import { parseArgs } from 'node:util';
import { PROPERTIES, fuzzCodec, type Codec } from '../test/helpers/fuzz-properties.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '1000000' },
    seed: { type: 'string' },
    codec: { type: 'string', multiple: true },
  },
});
const target = Number(values.cases);
if (!Number.isSafeInteger(target) || target < 1) throw new Error(`--cases must be a positive integer, got ${values.cases}`);
const codecs = (values.codec ?? Object.keys(PROPERTIES)) as Codec[];
for (const c of codecs) if (!(c in PROPERTIES)) throw new Error(`unknown codec ${c}; one of ${Object.keys(PROPERTIES).join(', ')}`);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);

console.log(`fuzzing ${codecs.join(', ')}: ${target.toLocaleString('en')} cases per codec, seed ${seed}`);
let failed = false;
for (const codec of codecs) {
  const perProperty = Math.ceil(target / PROPERTIES[codec]().length);
  const started = Date.now();
  try {
    const cases = fuzzCodec(codec, perProperty, seed);
    const s = (Date.now() - started) / 1000;
    console.log(`${codec.padEnd(10)} ${cases.toLocaleString('en').padStart(11)} cases  ${s.toFixed(1)} s  ok`);
  } catch (err) {
    failed = true;
    console.error(`${codec.padEnd(10)} FAILED (seed ${seed})\n${(err as Error).message}`);
  }
}
process.exitCode = failed ? 1 : 0;
