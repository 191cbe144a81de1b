/**
 * CPU time of a process in nanoseconds, from /proc/PID/task/TID/schedstat (time on CPU of each
 * thread): /proc/PID/stat counts in 10 ms ticks, too coarse to compare two builds on runs of a
 * second or less. Falls back to the ticks where schedstat is missing. Time of threads that have
 * exited is not counted: Node's threads live as long as the process.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpuMillis } from './cpu.js';

export function cpuNanos(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  let total = 0;
  for (const tid of tids) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && tid === String(pid)) return cpuMillis(pid) * 1e6;
      // a thread that ended between the listing and the read: its time is gone either way
    }
  }
  return total;
}
