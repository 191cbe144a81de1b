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
import { freePort } from '../../test/helpers/ports.js';
import type { Slapd } from '../../test/helpers/slapd.js';
import { buildProduct, startNode, type Child } from './procs.js';

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
  };
  validateConfig(config); // a key the code under test lacks fails here, with its name
  const file = path.join(o.dir, `${o.name}.yaml`);
  await writeFile(file, stringify(config));
  const child = await startNode(buildProduct(), ['serve', '--config', file], socketmapPort, {
    what: `rcptgate (${o.name})`,
    compiled: true,
    ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
  });
  const auth = { authorization: `Bearer ${adminToken}` };
  const flush = async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/cache`, { method: 'DELETE', headers: auth });
    if (res.status !== 204) throw new Error(`cache flush answered ${res.status}`);
  };
  const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { headers: auth })).text();
  return Object.assign(child, { socketmapPort, httpPort, flush, metrics });
}
