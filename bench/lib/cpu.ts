/** CPU time and memory of processes, from /proc (Linux); NaN elsewhere. */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Fields after the command name (which may hold spaces): index 0 is the state (field 3). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of pid, ms. */
export function cpuMillis(pid: number): number {
  const f = statFields(pid);
  return f ? ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND : NaN;
}

/** utime + stime + cutime + cstime (children it has waited for), ms. */
export function cpuMillisWithReaped(pid: number): number {
  const f = statFields(pid);
  return f ? ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / TICKS_PER_SECOND : NaN;
}

/** Direct children of pid (scan of /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid) out.push(Number(entry));
  }
  return out;
}

/**
 * CPU of a process tree one level deep, ms: the parent, its reaped children (cutime/cstime) and
 * its live children. A child that exits between two readings moves from "live" to "reaped"
 * with its whole time, so differences of two readings stay right (Postfix's master and its
 * daemons).
 */
export function treeCpuMillis(pid: number): number {
  let total = cpuMillisWithReaped(pid);
  for (const child of childrenOf(pid)) {
    const c = cpuMillis(child);
    if (Number.isFinite(c)) total += c;
  }
  return total;
}

/** Resident set size of pid, MB. */
export function rssMB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples pid's RSS every `everyMs` until stopped; returns the peak, MB. */
export function rssPeak(pid: number, everyMs = 50): { stop(): number } {
  let peak = rssMB(pid);
  const timer = setInterval(() => {
    const r = rssMB(pid);
    if (r > peak) peak = r;
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, rssMB(pid) || 0);
    },
  };
}

/** Runs `work`, returning its result and the CPU µs `pid` spent per request during it. */
export async function withCpu<T extends { requests: number }>(pid: number, work: () => Promise<T>): Promise<T & { cpuPerRequestMicros: number }> {
  const before = cpuMillis(pid);
  const result = await work();
  const used = cpuMillis(pid) - before;
  return { ...result, cpuPerRequestMicros: (used * 1000) / Math.max(1, result.requests) };
}
