/**
 * A directory connection that receives what an LDAP client must not keep reading after: bytes
 * that are not BER, or a Notice of Disconnection (RFC 4511 §4.4.1, unsolicited, message ID 0).
 * The real slapd answers; a proxy between us holds its answers back and puts the bad bytes in
 * front of them (slapd sends neither on demand). The searches in flight on that connection must
 * be asked again on a fresh connection and answered right, at once: not wait out the timeout
 * and defer (tempfail) the mail, and never become "no such entry".
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { protocolOpOffset, startFaultProxy, withResultCode, type FaultProxy } from '../helpers/fault-proxy.js';
import { DirectoryError } from '../../src/errors.js';

const TIMEOUT_MS = 4_000;

/** An ExtendedResponse with message ID 0 and responseName 1.3.6.1.4.1.1466.20036, resultCode unavailable (52). */
function noticeOfDisconnection(): Buffer {
  const oid = Buffer.from('1.3.6.1.4.1.1466.20036');
  const op = Buffer.concat([Buffer.from([0x0a, 0x01, 52, 0x04, 0x00, 0x04, 0x00, 0x8a, oid.length]), oid]);
  const body = Buffer.concat([Buffer.from([0x02, 0x01, 0x00, 0x78, op.length]), op]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('a directory connection that receives garbage or a Notice of Disconnection', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  let directory: LdapDirectory;

  before(async () => {
    slapd = await startSlapd();
  });
  after(async () => {
    await slapd?.close();
  });

  const open = async (): Promise<void> => {
    proxy = await startFaultProxy(slapd.port);
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 1 } },
    }).directory.ldap;
    directory = new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
    assert.equal((await directory.lookup('alice@example.com')).entry?.canonical, 'alice@example.com');
  };
  const close = async (): Promise<void> => {
    await directory.close();
    await proxy.close();
  };

  /** Lookups whose answers wait in the proxy when `bytes` reach the client first; how they end, and how long they took. */
  async function behind(bytes: Buffer, then: 'release' | 'blackhole'): Promise<{ answers: (string | null)[]; ms: number }> {
    const conn = proxy.connections[0]!;
    conn.hold();
    const started = performance.now();
    const addresses = ['bob@example.com', 'nobody@example.com', 'ally@example.com', 'staff@example.com'];
    const lookups = addresses.map((a) => directory.lookup(a));
    await until('the answers to reach the proxy', () => conn.waiting >= addresses.length);
    conn.inject(bytes);
    if (then === 'blackhole') conn.blackhole();
    conn.release();
    const answers = (await Promise.all(lookups)).map((a) => a.entry?.canonical ?? null);
    return { answers, ms: performance.now() - started };
  }

  const expected = ['bob@example.com', null, 'alice@example.com', 'staff@example.com'];

  test('bytes that are not BER (indefinite length): the searches behind them are asked again on a new connection', async () => {
    await open();
    try {
      const { answers, ms } = await behind(Buffer.from([0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00]), 'release');
      assert.deepEqual(answers, expected);
      assert.ok(ms < TIMEOUT_MS / 2, `answered after ${Math.round(ms)} ms: no waiting out the ${TIMEOUT_MS} ms timeout`);
      assert.ok(proxy.connections[0]!.closed, 'the connection that got garbage is closed');
      assert.equal((await directory.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
    } finally {
      await close();
    }
  });

  test('a Notice of Disconnection, then silence: the searches in flight are asked again on a new connection', async () => {
    await open();
    try {
      const { answers, ms } = await behind(noticeOfDisconnection(), 'blackhole');
      assert.deepEqual(answers, expected);
      assert.ok(ms < TIMEOUT_MS / 2, `answered after ${Math.round(ms)} ms: no waiting out the ${TIMEOUT_MS} ms timeout`);
      assert.ok(proxy.connections.length >= 2, 'a new connection was opened');
    } finally {
      await close();
    }
  });
});

/**
 * A server that answers every search with busy (51) or unavailable (52): it cannot serve now,
 * another server might. slapd does not answer so on demand, so the proxy rewrites the result code
 * of slapd's real SearchResultDone (and drops the entries, as a busy server sends none).
 */
describe('a server that answers busy or unavailable, with a healthy second URL', () => {
  let slapd: Slapd;
  let proxy: FaultProxy;
  before(async () => {
    slapd = await startSlapd();
    proxy = await startFaultProxy(slapd.port);
  });
  after(async () => {
    await proxy?.close();
    await slapd?.close();
  });

  const directoryFor = (urls: string[]): LdapDirectory => {
    const config = configSchema.parse({
      directory: { kind: 'ldap', ldap: { urls, baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, poolSize: 2 } },
    }).directory.ldap;
    return new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  };
  const addresses = ['bob@example.com', 'nobody@example.com', 'ally@example.com', 'staff@example.com', 'user1@example.com', 'ghost@example.com'];
  const truth = ['bob@example.com', null, 'alice@example.com', 'staff@example.com', 'user1@example.com', null];

  for (const code of [51, 52]) {
    test(`result code ${code}: lookups, batched or alone, are answered by the other server; with that server alone they are tempfail`, async () => {
      proxy.transform = (msg) => (msg[protocolOpOffset(msg)] === 0x64 ? null : withResultCode(msg, code));
      const both = directoryFor([proxy.url, slapd.url]);
      const alone = directoryFor([proxy.url]);
      try {
        for (let round = 0; round < 2; round++) {
          const together = await Promise.all(addresses.map((a) => both.lookup(a)));
          assert.deepEqual(together.map((a) => a.entry?.canonical ?? null), truth, `round ${round}, batched`);
          for (let i = 0; i < addresses.length; i++) assert.equal((await both.lookup(addresses[i]!)).entry?.canonical ?? null, truth[i], `round ${round}, alone`);
        }
        const results = await Promise.allSettled(addresses.map((a) => alone.lookup(a)));
        for (const r of results) {
          assert.equal(r.status, 'rejected', 'a busy server alone never answers "no such entry"');
          assert.ok((r as PromiseRejectedResult).reason instanceof DirectoryError);
        }
      } finally {
        proxy.transform = null;
        await both.close();
        await alone.close();
      }
    });
  }
});
