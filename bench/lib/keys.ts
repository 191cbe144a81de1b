/**
 * Benchmark keys against the generated directory (uid=userK, mail userK@example.com, K=1..users):
 * a deterministic shuffle of existing addresses and addresses that do not exist.
 */

/** Small seeded PRNG (mulberry32): the same keys in every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` keys: 70 % existing users from `firstUser` on (each once), 30 % unknown local parts
 * (`nouserK`), shuffled. Distinct within the set; sets from disjoint user ranges are disjoint.
 */
export function mixedKeys(count: number, firstUser: number, seed: number): string[] {
  const existing = Math.round(count * 0.7);
  const keys: string[] = [];
  for (let i = 0; i < existing; i++) keys.push(`user${firstUser + i}@example.com`);
  for (let i = existing; i < count; i++) keys.push(`nouser${firstUser + i}@example.com`);
  const r = rng(seed);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  return keys;
}

/** Users a mixedKeys(count, …) set consumes. */
export function usersUsed(count: number): number {
  return Math.round(count * 0.7);
}
