/** CPU time a process has used (user + system), from /proc (Linux); NaN elsewhere. */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export function cpuMillis(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** Runs `work`, returning its result and the CPU µs `pid` spent per request during it. */
export async function withCpu<T extends { requests: number }>(pid: number, work: () => Promise<T>): Promise<T & { cpuPerRequestMicros: number }> {
  const before = cpuMillis(pid);
  const result = await work();
  const used = cpuMillis(pid) - before;
  return { ...result, cpuPerRequestMicros: (used * 1000) / Math.max(1, result.requests) };
}
