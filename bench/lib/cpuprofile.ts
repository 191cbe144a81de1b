/**
 * Top self-time functions of a V8 .cpuprofile (what `node --cpu-prof` writes), optionally only
 * for the samples taken within a time window: V8 stamps samples with the monotonic clock that
 * process.hrtime reads too, so the benchmark can cut one phase out of a whole-process profile.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

export interface Frame {
  percent: number;
  fn: string;
}

/** Window in µs of the monotonic clock (process.hrtime.bigint() / 1000n). */
export function topSelfTime(file: string, limit = 25, window?: { fromMicros: number; toMicros: number }): { frames: Frame[]; samples: number } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const hits = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.fromMicros || t > window.toMicros)) continue;
    const id = profile.samples[i]!;
    hits.set(id, (hits.get(id) ?? 0) + 1);
    total++;
  }
  const byFn = new Map<string, number>();
  for (const node of profile.nodes) {
    const n = hits.get(node.id) ?? 0;
    if (!n) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    // Sources run through tsx report line 1 (no source maps in the profile): the file is the useful part.
    const where = url ? `${url.replace(/^.*\/(node_modules|src|dist)\//, '$1/')}${lineNumber > 0 ? `:${lineNumber + 1}` : ''}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + n);
  }
  const frames = [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([fn, n]) => ({ percent: (100 * n) / Math.max(1, total), fn }));
  return { frames, samples: total };
}
