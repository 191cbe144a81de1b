/** What every benchmark scenario gets: the shared slapd, tools, key supply and the report. */
import type { Slapd } from '../../test/helpers/slapd.js';
import type { NativeTools } from './native.js';
import type { ChildSet } from './procs.js';
import type { Row } from './report.js';

export interface Context {
  dir: string;
  slapd: Slapd;
  tools: NativeTools;
  children: ChildSet;
  rows: Row[];
  notes: string[];
  /** Markdown sections (CPU profiles) appended to RESULTS.md. */
  sections: string[];
  log(line: string): void;
  keys: KeySupply;
  /** Users K with mail K@example.com exist for every odd K up to this (end-to-end ground truth). */
  numberedUsers: number;
}

/**
 * Fresh keys from the generated directory (uid=userK, mail userK@example.com): every call hands
 * out users no earlier call used, so a "cold" run never meets an address a previous run cached.
 */
export class KeySupply {
  private next = 1;
  constructor(private readonly users: number) {}

  /** `count` keys, 70 % existing users and 30 % unknown (nouserK), shuffled with `seed`. */
  mixed(count: number, seed: number): string[] {
    const existing = Math.round(count * 0.7);
    const first = this.claim(existing);
    const keys: string[] = [];
    for (let i = 0; i < existing; i++) keys.push(`user${first + i}@example.com`);
    for (let i = existing; i < count; i++) keys.push(`nouser${first + i}@example.com`);
    shuffle(keys, seed);
    return keys;
  }

  /** `count` existing users, in order. */
  valid(count: number): string[] {
    const first = this.claim(count);
    return Array.from({ length: count }, (_, i) => `user${first + i}@example.com`);
  }

  private claim(count: number): number {
    const first = this.next;
    this.next += count;
    if (this.next > this.users + 1) throw new Error(`the benchmark ran out of generated users (${this.users})`);
    return first;
  }
}

/** Deterministic Fisher-Yates (mulberry32). */
function shuffle(keys: string[], seed: number): void {
  let a = seed >>> 0;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
