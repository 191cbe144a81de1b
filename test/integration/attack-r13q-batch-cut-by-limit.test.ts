/**
 * A limit hit after entries were sent (timeLimitExceeded, sizeLimitExceeded, adminLimitExceeded)
 * now counts as found for the entries sent. A batched search (one OR filter for many lookups) cut
 * that way holds only some of its keys' entries: the keys it did not answer must never become
 * unknown (550 for a user who exists), and those it did must still be found. Real slapd; the relay
 * lets through only the first entry of each answer and ends it with the limit's code, as a server
 * that runs out of time after its first match would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { DirectoryError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { protocolOpOffset, startFaultProxy, withResultCode, type FaultProxy } from '../helpers/fault-proxy.js';
import { messageIdOf } from '../helpers/r13k-ber.js';

const EXISTING = ['bob@example.com', 'ally@example.com', 'staff@example.com', 'carol.mixed@example.com', 'first-last@example.com', 'alice.smith@example.com'];
const UNKNOWN = ['nobody1@example.com', 'nobody2@example.com', 'nobody3@example.com', 'nobody4@example.com', 'nobody5@example.com', 'nobody6@example.com'];
const op = (msg: Buffer): number => msg[protocolOpOffset(msg)]!;

describe('a batched search cut by a server limit after its first entry (real slapd)', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '4s', poolSize: 1, batchSize: 16 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    await directory.lookup('bob@example.com');
  });
  after(async () => {
    await directory?.close();
    await proxy?.close();
    await slapd?.close();
  });

  for (const code of [3, 4, 11]) {
    test(`code ${code}: users in the part not sent are never unknown; those sent are found`, async () => {
      const entriesSent = new Set<number>();
      let dropped = 0;
      proxy.transform = (msg) => {
        if (op(msg) === 0x64) {
          const id = messageIdOf(msg);
          if (entriesSent.has(id)) return (dropped++, null); // the server ran out after its first match
          entriesSent.add(id);
          return msg;
        }
        return op(msg) === 0x65 ? withResultCode(msg, code) : msg;
      };
      try {
        const all = [...EXISTING, ...UNKNOWN];
        const settled = await Promise.allSettled(all.map((a) => directory.lookup(a)));
        const wrong: string[] = [];
        settled.forEach((s, i) => {
          const address = all[i]!;
          if (s.status === 'rejected') {
            assert.ok(s.reason instanceof DirectoryError, String(s.reason));
            if (EXISTING.includes(address)) wrong.push(`${address}: ${(s.reason as Error).message}`);
          } else if (s.value.entry === null) {
            if (EXISTING.includes(address)) wrong.push(`${address}: unknown`);
            else wrong.push(`${address}: unknown while the answer was cut (it proves nothing)`);
          }
        });
        assert.ok(dropped > 0, 'a batched answer was cut after its first entry');
        assert.deepEqual(wrong, [], `code ${code}`);
      } finally {
        proxy.transform = null;
      }
    });
  }
});
