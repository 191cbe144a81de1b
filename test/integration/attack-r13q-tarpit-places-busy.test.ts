/**
 * A flagged client has `policy.harvest.maxHeld` places in the tarpit; past them its recipients get
 * 421. On a busy MX (the listener's lookups waiting for the directory at their limit), each policy
 * request is first tried for an answer at hand, then asked of the directory in turn: that first try
 * must not take a place of its own. Real slapd behind a relay that adds latency (a directory kept
 * busy), the real service, raw policy connections as Postfix's smtpd processes make them.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';
import { connectFrom, policyActions, policyRequest } from '../helpers/frontend-clients.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const FLAGGED = '192.0.2.9';

/** Sends one policy request on its own connection; resolves with its action and when it came. */
async function ask(port: number, recipient: string): Promise<{ action: string; ms: number }> {
  const s: net.Socket = await connectFrom(port);
  const started = performance.now();
  let got = Buffer.alloc(0);
  try {
    return await new Promise((resolve, reject) => {
      s.on('data', (c: Buffer) => {
        got = Buffer.concat([got, c]);
        const [action] = policyActions(got);
        if (action !== undefined && got.includes('\n\n')) resolve({ action, ms: Math.round(performance.now() - started) });
      });
      s.once('close', () => reject(new Error(`closed before a reply to ${recipient}`)));
      s.write(policyRequest(recipient, FLAGGED));
    });
  } finally {
    s.destroy();
  }
}

describe('tarpit places of a flagged client while the listener waits on a busy directory (real slapd)', () => {
  let slapd: Slapd;
  let delay: DelayProxy;
  let app: App;
  before(async () => {
    slapd = await startSlapd();
    delay = await startDelayProxy(slapd.port, 400);
    app = await startApp(
      {
        listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
        domains: ['example.com'],
        cache: { positiveTtl: '1ms', negativeTtl: '1ms' },
        directory: { kind: 'ldap', ldap: { urls: [delay.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '10s' } },
        // One lookup waiting for the directory fills the listener's room: every further request is
        // first tried for an answer at hand, as on an MX with 64 lookups waiting.
        server: { maxOutstanding: 1 },
        policy: { harvest: { maxUnknown: 1, window: '10m', action: 'tarpit', delayStep: '6s', maxDelay: '6s', maxHeld: 4 } },
        log: { level: 'error' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    await delay?.close();
    await slapd?.close();
  });

  test('four recipients held back at once take the four places; the fifth gets 421', async () => {
    const port = app.addresses.policy!.port;
    for (const unknown of ['nobody1@example.com', 'nobody2@example.com']) {
      const { action } = await ask(port, unknown);
      assert.match(action, /^(REJECT|5)/, `an unknown recipient that flags the client: ${action}`);
    }
    const users = ['bob@example.com', 'alice@example.com', 'staff@example.com', 'carol.mixed@example.com'];
    const held = users.map((u) => ask(port, u));
    await new Promise((r) => setTimeout(r, 1_500)); // all four asked, none answered (6 s delay)
    const fifth = await ask(port, 'first-last@example.com');
    const answers = await Promise.all(held);
    console.log(`held: ${answers.map((a) => `${a.action.slice(0, 12)} after ${a.ms} ms`).join('; ')}; fifth: ${fifth.action.slice(0, 12)} after ${fifth.ms} ms`);
    assert.deepEqual(
      answers.map((a) => a.action.startsWith('421')),
      [false, false, false, false],
      'each of the four recipients had a place of its own',
    );
    for (const a of answers) assert.ok(a.ms >= 5_000, `held back for the tarpit delay (${a.ms} ms)`);
    assert.match(fifth.action, /^421 /, 'past its four places the client gets 421');
  });
});
