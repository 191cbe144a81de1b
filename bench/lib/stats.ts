/** Latency summaries. Values in milliseconds. */
export interface Latency {
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(samples: Float64Array): Latency {
  const s = Float64Array.from(samples).sort();
  return { p50: percentile(s, 50), p99: percentile(s, 99), p999: percentile(s, 99.9), max: s.length ? s[s.length - 1]! : NaN };
}
