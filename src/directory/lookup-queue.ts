import type { Entry } from 'ldapts';
import type { DirectoryError } from '../errors.js';

/**
 * The lookups waiting for a search slot: first come, first served, retries ahead of new work.
 * Settled lookups (answered, timed out, aborted) stay in place, flagged, and are skipped; the
 * array is compacted as its head advances, so memory follows the live queue.
 */

export interface Pending {
  key: string;
  /** performance.now() ms: every deadline in the directory is on the monotonic clock, which no wall-clock step moves. */
  deadline: number;
  /** The entries and the URL of the server whose search found them (or found none). */
  resolve: (entries: Entry[], server: string) => void;
  reject: (err: DirectoryError) => void;
  done: boolean;
  /** Must go alone: not batchable, or a batch could not vouch for it. */
  single: boolean;
  /** Already retried once after its connection died. */
  retried: boolean;
  /** When a search first carried it (performance.now(); 0: not yet): a retry's wait counts from there. */
  sentAt: number;
  /** Left unanswered beside entries: asked again only with other such keys. */
  confirming: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A new lookup, waiting; `single`: it must go alone. */
export function pending(key: string, deadline: number, single: boolean, signal: AbortSignal | undefined, resolve: Pending['resolve'], reject: Pending['reject']): Pending {
  return { key, deadline, resolve, reject, done: false, single, retried: false, sentAt: 0, confirming: false, signal, onAbort: undefined };
}

export class LookupQueue {
  /** Retries, served before the queue. */
  private readonly urgent: Pending[] = [];
  private readonly queue: Pending[] = [];
  private head = 0;

  constructor(private readonly batchSize: number) {}

  push(p: Pending): void {
    this.queue.push(p);
  }

  /** `singly`: from now on it goes in a search of its own. */
  pushUrgent(p: Pending, singly = false): void {
    if (singly) p.single = true;
    this.urgent.push(p);
  }

  peek(): Pending | undefined {
    while (this.urgent.length > 0 && this.urgent[0]!.done) this.urgent.shift();
    if (this.urgent.length > 0) return this.urgent[0];
    while (this.head < this.queue.length && this.queue[this.head]!.done) this.head++;
    if (this.head === this.queue.length && this.head > 0) {
      this.queue.length = 0;
      this.head = 0;
    }
    return this.queue[this.head];
  }

  shift(): Pending | undefined {
    const p = this.peek();
    if (!p) return undefined;
    if (this.urgent.length > 0) this.urgent.shift();
    else if (++this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return p;
  }

  /** The oldest lookup, with the ones behind it that may share its search (keys being confirmed only with each other). */
  takeBatch(): Pending[] {
    const first = this.shift();
    if (!first) return [];
    const batch = [first];
    if (first.single) return batch;
    for (let next = this.peek(); next && !next.single && next.confirming === first.confirming && batch.length < this.batchSize; next = this.peek()) {
      batch.push(this.shift()!);
    }
    return batch;
  }
}
