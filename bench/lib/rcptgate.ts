/**
 * The real rcptgate CLI as deployed (compiled, `dist/main.js serve`) in its own process, with DEFAULT settings: only
 * what the benchmark must set (listen addresses, domain, directory URL and base DN, admin
 * token) plus `ldap` extras a scenario asks for (e.g. `batchSize: 1`). Pool size, in-flight
 * limits, cache size and timeouts are the product's defaults, so the figures are what an
 * operator gets out of the box.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { freePort, waitForPort } from '../../test/helpers/ports.js';
import type { Slapd } from '../../test/helpers/slapd.js';
import { cpuMillis } from './cpu.js';
import { socketmapSeq, type NativeTools, type SeqResult } from './native.js';
import { buildProduct, startNode, type Child } from './procs.js';
import { fmt } from './report.js';

export interface RcptgateOptions {
  dir: string;
  name: string;
  slapd: Slapd;
  /** LDAP port to use instead of slapd's (the delaying proxy). */
  ldapPort?: number;
  /** Extra directory.ldap keys (must exist in the schema of the code under test). */
  ldap?: Record<string, unknown>;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Extra top-level config sections (e.g. `sync`). */
  extra?: Record<string, unknown>;
}

export interface Rcptgate extends Child {
  socketmapPort: number;
  httpPort: number;
  /** Empties the cache (admin API), for cold runs. */
  flush(): Promise<void>;
  /** The Prometheus text of /metrics. */
  metrics(): Promise<string>;
}

/** Whether the code under test accepts this config (e.g. a key another change adds). */
export function acceptsConfig(extra: Record<string, unknown>): boolean {
  try {
    validateConfig({ domains: ['example.com'], ...extra });
    return true;
  } catch {
    return false;
  }
}

export async function startRcptgate(o: RcptgateOptions): Promise<Rcptgate> {
  const socketmapPort = await freePort();
  const httpPort = await freePort();
  const adminToken = `bench-${process.pid}-${Date.now()}`;
  const tokenFile = path.join(o.dir, `${o.name}.token`);
  await writeFile(tokenFile, adminToken, { mode: 0o600 });
  const listen: Record<string, unknown> = { socketmap: `127.0.0.1:${socketmapPort}`, http: `127.0.0.1:${httpPort}`, policy: null, milter: null };
  // A separate metrics listener (when the code has one) gets its own free port: instances run side by side.
  if (acceptsConfig({ listen: { metrics: null } })) listen.metrics = `127.0.0.1:${await freePort()}`;
  const config = {
    listen,
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [`ldap://127.0.0.1:${o.ldapPort ?? o.slapd.port}`], baseDN: o.slapd.baseDN, ...o.ldap } },
    admin: { tokenFile },
    log: { level: 'warn' },
    ...o.extra,
  };
  validateConfig(config); // a key the code under test lacks fails here, with its name
  const file = path.join(o.dir, `${o.name}.yaml`);
  await writeFile(file, stringify(config));
  const child = await startNode(buildProduct(), ['serve', '--config', file], socketmapPort, {
    what: `rcptgate (${o.name})`,
    compiled: true,
    ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
  });
  // The socketmap port answering does not mean the HTTP one does yet: the admin API (cache flush) is used at once.
  await waitForPort(httpPort, 30_000, `rcptgate (${o.name}) HTTP`);
  const auth = { authorization: `Bearer ${adminToken}` };
  const flush = async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/cache`, { method: 'DELETE', headers: auth });
    if (res.status !== 204) throw new Error(`cache flush answered ${res.status}`);
  };
  const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { headers: auth })).text();
  return Object.assign(child, { socketmapPort, httpPort, flush, metrics });
}

/** A cold run's figures, with rcptgate's CPU per lookup. */
export interface ColdWindow extends SeqResult {
  cpuMicros: number;
}

/** Requests not answered OK or NOTFOUND (TEMP, PERM, anything else, or no answer at all). */
export function notAnswered(r: SeqResult): number {
  return r.requests - (r.replies.OK ?? 0) - (r.replies.NOTFOUND ?? 0) + r.unanswered;
}

/** One cold run: cache flushed, `connections` sequential C clients on `keys`. */
export async function coldRun(tools: NativeTools, rg: Rcptgate, connections: number, seconds: number, keys: string): Promise<ColdWindow> {
  await rg.flush();
  const c0 = cpuMillis(rg.pid);
  const r = await socketmapSeq(tools, rg.socketmapPort, connections, seconds, keys);
  return { ...r, cpuMicros: ((cpuMillis(rg.pid) - c0) * 1000) / Math.max(1, r.requests) };
}

const WARM_SECONDS = 2;
const WARM_MIN = 3;
const WARM_MAX = 8;
/** Two warm-up windows this close in CPU per lookup: steady. */
const STEADY = 0.05;

/**
 * Cold lookups (cache flushed, 32 connections, `keys` again each window) until rcptgate's CPU per
 * lookup is steady: a long-running service is measured, not the JIT compiling it. The first
 * seconds of cold lookups cost up to twice the steady figure, and the few lookups of a scenario's
 * own warm-up do not get there. Ends with the cache flushed. Returns the windows' CPU per lookup.
 */
export async function warmUntilSteady(tools: NativeTools, rg: Rcptgate, keys: string): Promise<{ windows: number[]; text: string; notAnswered: number }> {
  const windows: number[] = [];
  let missed = 0;
  for (let i = 0; i < WARM_MAX; i++) {
    const r = await coldRun(tools, rg, 32, WARM_SECONDS, keys);
    windows.push(r.cpuMicros);
    missed += notAnswered(r);
    const n = windows.length;
    if (n >= WARM_MIN && Math.abs(windows[n - 1]! - windows[n - 2]!) <= STEADY * windows[n - 2]!) break;
  }
  await rg.flush();
  const text = `${windows.length} × ${WARM_SECONDS} s of cold lookups (CPU per lookup ${windows.map((w) => fmt(w)).join(', ')} µs${missed ? `; ${missed} not answered OK/NOTFOUND` : ''})`;
  return { windows, text, notAnswered: missed };
}
