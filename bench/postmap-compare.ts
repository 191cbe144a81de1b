/**
 * Postfix's own client against two answers for the same question, in one run:
 *   postmap -q - socketmap:inet:127.0.0.1:PORT:recipients   (rcptgate, LDAP behind it, cache warm)
 *   postmap -q - ldap:FILE                                    (postfix-ldap, ldap_table(5))
 * Same keys, same slapd, one sequential client connection each (as smtpd does).
 *
 *   node --import tsx bench/postmap-compare.ts [--users 100000] [--keys 10000] [--runs 3]
 *
 * Needs slapd (Debian: slapd), ldap-utils, postfix and postfix-ldap.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateConfig } from '../src/config/load.js';
import { LdapDirectory } from '../src/directory/ldap.js';
import { silentLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { createSocketmapServer } from '../src/socketmap/server.js';
import { RecipientValidatorImpl } from '../src/recipient/engine.js';
import { postmapBulk, type PostmapBulkResult } from '../test/helpers/postfix.js';
import { startSlapd } from '../test/helpers/slapd.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    keys: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
  },
});
const users = Number(values.users);
const keyCount = Number(values.keys);
const runs = Number(values.runs);

/** Deterministic mix: 70 % existing users (some with +tags or upper case), 30 % unknown. */
function makeKeys(): string[] {
  let seed = 42;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const keys: string[] = [];
  for (let i = 0; i < keyCount; i++) {
    const k = 1 + Math.floor(rand() * users);
    const r = rand();
    keys.push(r < 0.6 ? `user${k}@example.com` : r < 0.7 ? `User${k}@Example.com` : `nouser${k}@example.com`);
  }
  return keys;
}

function rate(r: PostmapBulkResult, n: number): number {
  return Math.round((n / r.elapsedMs) * 1000);
}

async function main(): Promise<void> {
  const keys = makeKeys();
  console.log(`slapd with ${users} users; ${keys.length} keys per run; ${runs} measured runs each`);
  const slapd = await startSlapd({ generatedUsers: users });
  const work = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-'));
  const configInput = {
    domains: ['example.com'],
    recipientDelimiter: '',
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], bindDN: slapd.serviceDN, baseDN: slapd.baseDN } },
  };
  const config = validateConfig(configInput);
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = silentLogger();
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger });
  const validator = new RecipientValidatorImpl({ config, directory, metrics, logger });
  const server = createSocketmapServer({ validator, metrics, logger, maxConnections: 100, idleTimeoutMs: 300_000 });
  try {
    const { port } = await server.listen('127.0.0.1:0');
    const socketmap = `socketmap:inet:127.0.0.1:${port}:recipients`;
    const ldapCf = path.join(work, 'ldap-recipients.cf');
    await writeFile(
      ldapCf,
      [
        `server_host = ${slapd.url}`,
        'version = 3',
        `search_base = ${slapd.baseDN}`,
        'scope = sub',
        'query_filter = (|(mail=%s)(mailAlternateAddress=%s))',
        'result_attribute = mail',
        'bind = yes',
        `bind_dn = ${slapd.serviceDN}`,
        `bind_pw = ${slapd.servicePassword}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const ldap = `ldap:${ldapCf}`;

    const check = (name: string, r: PostmapBulkResult) => {
      if (r.stderr.trim()) throw new Error(`${name}: postmap reported errors: ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    };

    // Cold rcptgate run fills its cache (and warms slapd for both); not part of the comparison.
    const cold = await postmapBulk(keys, socketmap);
    check('rcptgate cold', cold);
    const ldapWarmup = await postmapBulk(keys, ldap);
    check('postfix-ldap warm-up', ldapWarmup);

    // Both must agree on which keys exist (the values differ only in case: canonical vs mail).
    const a = new Set([...cold.found.keys()]);
    const b = new Set([...ldapWarmup.found.keys()]);
    const disagree = [...a].filter((k) => !b.has(k)).concat([...b].filter((k) => !a.has(k)));
    if (disagree.length) throw new Error(`answers differ for ${disagree.length} keys, e.g. ${disagree.slice(0, 3).join(', ')}`);

    const rows: Array<{ run: number; rcptgateWarm: number; postfixLdap: number }> = [];
    for (let i = 1; i <= runs; i++) {
      const sm = await postmapBulk(keys, socketmap);
      check('rcptgate', sm);
      const ld = await postmapBulk(keys, ldap);
      check('postfix-ldap', ld);
      rows.push({ run: i, rcptgateWarm: rate(sm, keys.length), postfixLdap: rate(ld, keys.length) });
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    console.log(`found ${a.size} of ${new Set(keys).size} distinct keys, same set in both`);
    console.log(`rcptgate cold (cache empty, LDAP per key): ${rate(cold, keys.length)} lookups/s`);
    console.table(rows);
    console.log(
      JSON.stringify({
        users,
        keys: keys.length,
        rcptgateColdPerSecond: rate(cold, keys.length),
        rcptgateWarmPerSecondMedian: median(rows.map((r) => r.rcptgateWarm)),
        postfixLdapPerSecondMedian: median(rows.map((r) => r.postfixLdap)),
      }),
    );
  } finally {
    await server.close(1000);
    await directory.close();
    await slapd.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
