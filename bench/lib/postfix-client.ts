/** Postfix as the client: `postmap -q -` over socketmap, and Postfix's own `ldap:` table. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { postmapBulk, type PostmapBulkResult } from '../../test/helpers/postfix.js';

export interface PostmapRun {
  keys: number;
  found: number;
  seconds: number;
  rate: number;
  exitCode: number;
}

function summarize(keys: number, r: PostmapBulkResult): PostmapRun {
  const seconds = r.elapsedMs / 1000;
  // postmap exits 1 when the last key is not found; stderr carries warnings/fatal errors.
  if (/fatal/i.test(r.stderr)) throw new Error(`postmap reported: ${r.stderr.trim().slice(0, 500)}`);
  return { keys, found: r.found.size, seconds, rate: keys / seconds, exitCode: r.code };
}

export async function postmapSocketmap(keys: string[], port: number): Promise<PostmapRun> {
  return summarize(keys.length, await postmapBulk(keys, `socketmap:inet:127.0.0.1:${port}:recipients`));
}

/** ldap_table(5) config with the same filter and result as rcptgate's openldap preset. */
export async function writeLdapTable(dir: string, name: string, port: number, baseDN: string): Promise<string> {
  const file = path.join(dir, `${name}.cf`);
  await writeFile(
    file,
    [
      `server_host = ldap://127.0.0.1:${port}`,
      'version = 3',
      'bind = no',
      `search_base = ${baseDN}`,
      'scope = sub',
      'query_filter = (|(mail=%s)(mailAlternateAddress=%s))',
      'result_attribute = mail',
      'size_limit = 16',
      'timeout = 10',
      '',
    ].join('\n'),
  );
  return file;
}

export async function postmapLdap(keys: string[], cfFile: string): Promise<PostmapRun> {
  return summarize(keys.length, await postmapBulk(keys, `ldap:${cfFile}`));
}
