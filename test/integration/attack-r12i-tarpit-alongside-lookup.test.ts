/**
 * A flagged client's tarpit delay ran only after its lookup: the answer came at lookup + delay.
 * A backup MX or a shared sending host flagged for its relayed unknowns had each valid recipient
 * slowed by both, and against a directory at its timeout an answer outlasted the MTA's own
 * (Sendmail's 10 s milter read). Now the delay runs from the recipient's arrival, alongside the
 * lookup: the answer comes at max(lookup, delay), never sooner than the delay.
 * Real policy listener, real slapd behind a proxy that holds each chunk 1 s each way (a search
 * about 2 s), no cache; tarpit of 3 s.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { connectFrom, policyActions, policyRequest } from '../helpers/frontend-clients.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const DELAY_MS = 3_000;
const HARVEST = { maxUnknown: 1, delayStep: '3s', maxDelay: '3s', window: '10m' };

/** One policy request on a fresh connection: the action and how long it took. */
async function ask(port: number, recipient: string, client: string): Promise<{ action: string; ms: number }> {
  const socket: net.Socket = await connectFrom(port);
  try {
    const began = performance.now();
    let buf = Buffer.alloc(0);
    socket.write(policyRequest(recipient, client));
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.includes('\n\n')) resolve();
      });
      socket.once('close', () => reject(new Error(`closed before an answer: ${buf.toString()}`)));
    });
    return { action: policyActions(buf)[0] ?? '', ms: performance.now() - began };
  } finally {
    socket.destroy();
  }
}

describe('tarpit delay alongside the lookup (real slapd far away, real policy listener)', () => {
  let ldap: Slapd;
  let proxy: DelayProxy;
  let app: App;
  let dir: string;

  before(async () => {
    ldap = await startSlapd();
    proxy = await startDelayProxy(ldap.port, 1_000);
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-tarpit-alongside-'));
    await writeFile(path.join(dir, 'bind-password'), `${ldap.servicePassword}\n`);
    app = await startApp({
      listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
      domains: ['example.com'],
      directory: {
        kind: 'ldap',
        canaries: ['alice@example.com'],
        ldap: { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: path.join(dir, 'bind-password'), timeout: '10s' },
      },
      cache: { maxEntries: 0 },
      policy: { harvest: HARVEST },
    });
  });
  after(async () => {
    await app?.close();
    await proxy?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a flagged client\'s valid recipient is answered at max(lookup, delay), not their sum', async (t) => {
    const port = app.addresses.policy!.port;
    // Two unknowns flag the client (maxUnknown 1); the delay applies from its next recipient.
    for (const ghost of ['ghost-1@example.com', 'ghost-2@example.com']) await ask(port, ghost, '198.51.100.9');
    const unflagged = await ask(port, 'alice@example.com', '198.51.100.7');
    assert.equal(unflagged.action, 'DUNNO');
    assert.ok(unflagged.ms >= 1_500, `the directory is far away: a cold lookup took ${Math.round(unflagged.ms)} ms`);
    const flagged = await ask(port, 'alice@example.com', '198.51.100.9');
    t.diagnostic(`flagged cold lookup: ${Math.round(flagged.ms)} ms (lookup ${Math.round(unflagged.ms)} ms, delay ${DELAY_MS} ms)`);
    assert.equal(flagged.action, 'DUNNO', 'a valid recipient of a flagged client still passes');
    assert.ok(flagged.ms >= DELAY_MS - 50, `held at least the tarpit delay: ${Math.round(flagged.ms)} ms`);
    assert.ok(flagged.ms < DELAY_MS + 1_200, `answered at max(lookup, delay), not lookup + delay: ${Math.round(flagged.ms)} ms`);
  });
});
