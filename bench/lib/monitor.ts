/**
 * slapd's own count of searches, from its cn=Monitor backend (built into Debian's slapd): the
 * benchmark appends `database monitor` to the private slapd's config and restarts it, then
 * reads monitorOpCompleted of cn=Search,cn=Operations,cn=Monitor. Independent of how rcptgate
 * counts its requests, so "LDAP searches per lookup" means what slapd saw.
 */
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'ldapts';
import type { Slapd } from '../../test/helpers/slapd.js';

export async function enableMonitor(slapd: Slapd): Promise<void> {
  await appendFile(path.join(slapd.dir, 'slapd.conf'), '\ndatabase monitor\naccess to * by * read\n');
  await slapd.stop();
  await slapd.start();
}

/** Searches slapd has completed so far, not counting this reading itself. */
export async function searchesCompleted(slapd: Slapd): Promise<number> {
  const client = new Client({ url: slapd.url, timeout: 10_000, connectTimeout: 5_000 });
  try {
    const r = await client.search('cn=Search,cn=Operations,cn=Monitor', { scope: 'base', attributes: ['monitorOpCompleted'] });
    return Number(r.searchEntries[0]?.monitorOpCompleted ?? NaN);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Searches completed between two readings (each reading costs one search: subtracted). */
export function searchCounter(slapd: Slapd): { start(): Promise<void>; stop(): Promise<number> } {
  let before = NaN;
  return {
    start: async () => {
      before = await searchesCompleted(slapd);
    },
    stop: async () => (await searchesCompleted(slapd)) - before - 1,
  };
}
