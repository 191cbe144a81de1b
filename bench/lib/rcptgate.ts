/** The real rcptgate CLI (`src/main.ts serve`) in its own process, configured for the benchmark. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../../test/helpers/ports.js';
import type { Slapd } from '../../test/helpers/slapd.js';
import { startNode, ROOT, type Child } from './procs.js';

export interface RcptgateOptions {
  dir: string;
  name: string;
  slapd: Slapd;
  /** LDAP port to use instead of slapd's (the delaying proxy). */
  ldapPort?: number;
  http?: boolean;
  poolSize: number;
  maxInFlight: number;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export interface Rcptgate extends Child {
  socketmapPort: number;
  httpPort: number | null;
  adminToken: string;
  /** Empties the cache (admin API), for cold runs. */
  flush(): Promise<void>;
}

export async function startRcptgate(o: RcptgateOptions): Promise<Rcptgate> {
  const socketmapPort = await freePort();
  const httpPort = await freePort();
  const adminToken = `bench-${process.pid}-${Date.now()}`;
  const tokenFile = path.join(o.dir, `${o.name}.token`);
  await writeFile(tokenFile, adminToken, { mode: 0o600 });
  const config = {
    listen: { socketmap: `127.0.0.1:${socketmapPort}`, http: `127.0.0.1:${httpPort}`, policy: null, milter: null },
    domains: ['example.com'],
    directory: {
      kind: 'ldap',
      ldap: { urls: [`ldap://127.0.0.1:${o.ldapPort ?? o.slapd.port}`], baseDN: o.slapd.baseDN, poolSize: o.poolSize, maxInFlight: o.maxInFlight, timeout: '10s' },
    },
    cache: { maxEntries: 1_000_000 },
    admin: { tokenFile },
    log: { level: 'warn' },
  };
  const file = path.join(o.dir, `${o.name}.yaml`);
  await writeFile(file, stringify(config));
  const child = await startNode(path.join(ROOT, 'src/main.ts'), ['serve', '--config', file], socketmapPort, {
    what: `rcptgate (${o.name})`,
    ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
  });
  const flush = async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` } });
    if (res.status !== 204) throw new Error(`cache flush answered ${res.status}`);
  };
  return Object.assign(child, { socketmapPort, httpPort: o.http === false ? null : httpPort, adminToken, flush, configFile: file });
}
