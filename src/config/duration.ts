const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** "500ms", "3s", "5m", "1h", "1d" → milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const m = PATTERN.exec(text.trim());
  if (!m) return null;
  const value = Number(m[1]) * (UNITS[m[2]!] ?? NaN);
  return Number.isFinite(value) ? Math.round(value) : null;
}

/** Like parseDuration, for values the schema already validated. */
export function ms(text: string): number {
  const v = parseDuration(text);
  if (v === null) throw new Error(`not a duration: ${text}`);
  return v;
}
