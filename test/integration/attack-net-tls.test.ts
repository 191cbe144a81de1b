/**
 * TLS to the directory when it goes wrong, against the real slapd with a test CA (LDAPS and
 * StartTLS), some of it through a loopback proxy: a server that does not offer StartTLS (the bind
 * password must never cross in clear: no fallback to plaintext), a certificate for another host
 * name, a TLS handshake that stalls (with and without a second URL), and a certificate rotated on
 * the server to an expired one and back. Every failure is a DirectoryError (tempfail, never "no
 * such entry") within the timeout, and the directory recovers by itself once the server is right
 * again. (The untrusted CA is tested in ldap-directory.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { requireTools, startSlapd, type Slapd } from '../helpers/slapd.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

type LdapInput = NonNullable<NonNullable<ConfigInput['directory']>['ldap']>;

const TIMEOUT_MS = 1_500;
/** A failure must come within the timeout; the margin is for a loaded machine. */
const FAIL_BOUND_MS = TIMEOUT_MS + 1_000;

function directoryFor(slapd: Slapd, ldap: LdapInput): LdapDirectory {
  const config = configSchema.parse({
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: `${TIMEOUT_MS}ms`, ...ldap } },
  }).directory.ldap;
  return new LdapDirectory({ config, bindPassword: slapd.servicePassword, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
}

/** The lookup fails with a DirectoryError matching `message`, within FAIL_BOUND_MS. */
async function failsWithin(dir: LdapDirectory, message: RegExp, code?: string): Promise<void> {
  const started = performance.now();
  const err = await dir.lookup('bob@example.com').then(
    () => assert.fail('the lookup succeeded'),
    (e: unknown) => e,
  );
  const ms = performance.now() - started;
  assert.ok(err instanceof DirectoryError, `a DirectoryError, got ${String(err)}`);
  assert.match(err.message, message);
  if (code) assert.equal(err.code, code);
  assert.ok(ms <= FAIL_BOUND_MS, `failed after ${Math.round(ms)} ms; bound ${FAIL_BOUND_MS} ms`);
}

async function answers(dir: LdapDirectory): Promise<void> {
  assert.equal((await dir.lookup('bob@example.com')).entry?.canonical, 'bob@example.com');
}

describe('TLS to the directory when it goes wrong', { timeout: 120_000 }, () => {
  let tlsSlapd: Slapd;
  let plainSlapd: Slapd;
  const proxies: FaultProxy[] = [];
  const proxy = async (port: number, options?: Parameters<typeof startFaultProxy>[1]): Promise<FaultProxy> => {
    const p = await startFaultProxy(port, options);
    proxies.push(p);
    return p;
  };
  before(async () => {
    [tlsSlapd, plainSlapd] = await Promise.all([startSlapd({ tls: true }), startSlapd()]);
  });
  after(async () => {
    for (const p of proxies) await p.close();
    await Promise.all([tlsSlapd?.close(), plainSlapd?.close()]);
  });

  test('a server that does not offer StartTLS: every lookup fails, and the bind password never crosses in clear', async () => {
    const p = await proxy(plainSlapd.port);
    p.record = true;
    const dir = directoryFor(plainSlapd, { urls: [p.url], startTLS: true });
    try {
      await failsWithin(dir, /StartTLS/);
      await failsWithin(dir, /StartTLS/);
    } finally {
      await dir.close();
    }
    const sent = Buffer.concat(p.sent);
    assert.ok(sent.length > 0, 'the StartTLS request went through the proxy');
    assert.equal(sent.indexOf(plainSlapd.servicePassword), -1, 'the bind password was sent in clear');
    assert.equal(sent.indexOf('example.com'), -1, 'a search was sent in clear');
  });

  test('a certificate that does not name the host in the URL: LDAPS and StartTLS both refuse it', async () => {
    // The certificate names 127.0.0.1 and localhost; 127.0.0.2 is the same machine under another name.
    const ldaps = await proxy(tlsSlapd.ldapsPort!, { scheme: 'ldaps', host: '127.0.0.2' });
    const plain = await proxy(tlsSlapd.port, { host: '127.0.0.2' });
    for (const ldap of [{ urls: [ldaps.url] }, { urls: [plain.url], startTLS: true }]) {
      const dir = directoryFor(tlsSlapd, { ...ldap, tls: { caFile: tlsSlapd.caFile! } });
      try {
        await failsWithin(dir, /TLS .*127\.0\.0\.2/, ErrorCodes.DIRECTORY_UNAVAILABLE);
      } finally {
        await dir.close();
      }
    }
  });

  test('a TLS handshake that stalls fails within the timeout; a second URL then answers', async () => {
    const stalled = await proxy(tlsSlapd.ldapsPort!, { scheme: 'ldaps' });
    stalled.mode = 'blackhole';
    // StartTLS accepted, then silence: the handshake after the extended response never completes.
    const startTlsStall = await proxy(tlsSlapd.port);
    startTlsStall.onServerMessage = (conn) => conn.blackhole();
    const tls = { caFile: tlsSlapd.caFile! };
    for (const ldap of [{ urls: [stalled.url] }, { urls: [startTlsStall.url], startTLS: true }]) {
      const dir = directoryFor(tlsSlapd, { ...ldap, tls });
      try {
        await failsWithin(dir, /no answer|timed out/, ErrorCodes.DIRECTORY_TIMEOUT);
      } finally {
        await dir.close();
      }
    }
    const failover = directoryFor(tlsSlapd, { urls: [stalled.url, tlsSlapd.ldapsUrl!], tls });
    try {
      const started = performance.now();
      await answers(failover);
      assert.ok(performance.now() - started <= FAIL_BOUND_MS, 'the second URL answered within the timeout');
    } finally {
      await failover.close();
    }
  });

  test('a certificate rotated on the server to an expired one and back: tempfail with a TLS message, then answers again by itself', async () => {
    const certFile = path.join(tlsSlapd.dir, 'server.pem');
    const goodCopy = path.join(tlsSlapd.dir, 'server-good.pem');
    await copyFile(certFile, goodCopy);
    const expired = path.join(tlsSlapd.dir, 'server-expired.pem');
    const { openssl } = requireTools('openssl');
    await promisify(execFile)(openssl!, [
      'x509', '-req', '-in', path.join(tlsSlapd.dir, 'server.csr'), '-CA', path.join(tlsSlapd.dir, 'slapd-ca.pem'),
      '-CAkey', path.join(tlsSlapd.dir, 'slapd-ca.key'), '-CAcreateserial', '-out', expired, '-days', '-1', '-extfile', path.join(tlsSlapd.dir, 'server.ext'),
    ]);
    const tls = { caFile: tlsSlapd.caFile! };
    const dirs = [directoryFor(tlsSlapd, { urls: [tlsSlapd.ldapsUrl!], tls }), directoryFor(tlsSlapd, { startTLS: true, tls })];
    try {
      for (const dir of dirs) await answers(dir);
      await copyFile(expired, certFile);
      await tlsSlapd.stop();
      await tlsSlapd.start();
      for (const dir of dirs) await failsWithin(dir, /TLS .*expired/, ErrorCodes.DIRECTORY_UNAVAILABLE);
      await copyFile(goodCopy, certFile);
      await tlsSlapd.stop();
      await tlsSlapd.start();
      for (const dir of dirs) await answers(dir);
    } finally {
      await copyFile(goodCopy, certFile);
      for (const dir of dirs) await dir.close();
    }
  });
});
