/**
 * The wall clock stepped back an hour (an NTP step after a boot with a wrong RTC, a VM restored
 * from a snapshot) while the socket front ends work. Their timers measured intervals on the wall
 * clock: a request trickled in a byte at a time was not closed after `server.requestTimeout` but
 * an hour later (slowloris protection off for the size of the step), and a client flagged by
 * harvest protection stayed flagged, in reject mode refused, for that hour too. We cannot step
 * the shared machine's clock in a test, so Date.now is mocked to the stepped wall clock (the only
 * fake); slapd, the service and every socket are real.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, mock, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { connectFrom, netstring, policyActions, policyRequest, sleep } from '../helpers/frontend-clients.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const HOUR = 3_600_000;
const HARVEST_WINDOW_MS = 1_500;

// Date.now is mocked before the service starts (a clock kept as a function reference at start
// is the same function), reading the real time until a test steps it back.
const realNow = Date.now.bind(Date);
let wallStep = 0;
const stepClockBack = (): void => void (wallStep = HOUR);

/** One policy request on a new connection; its action. */
async function policy(port: number, recipient: string, client: string): Promise<string> {
  const s = await connectFrom(port);
  try {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.write(policyRequest(recipient, client));
    for (let i = 0; i < 200 && policyActions(Buffer.concat(chunks)).length === 0; i++) await sleep(25);
    return policyActions(Buffer.concat(chunks))[0] ?? '(no answer)';
  } finally {
    s.destroy();
  }
}

describe('socket front ends when the wall clock steps back (real slapd)', () => {
  let ldap: Slapd;
  let app: App;
  before(async () => {
    mock.method(Date, 'now', () => realNow() - wallStep);
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: null, socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: null, metrics: null },
        domains: ['example.com'],
        server: { requestTimeout: '1s' },
        policy: { harvest: { maxUnknown: 2, window: `${HARVEST_WINDOW_MS}ms`, action: 'reject' } },
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
  });
  afterEach(() => void (wallStep = 0));
  after(async () => {
    mock.restoreAll();
    await app?.close();
    await ldap?.close();
  });

  test('a request trickled in a byte at a time is still closed after server.requestTimeout', async () => {
    const s = await connectFrom(app.addresses.socketmap!.port);
    const started = performance.now();
    const closed = new Promise<number>((resolve) => s.once('close', () => resolve(performance.now() - started)));
    const text = netstring('recipients alice@example.com');
    let at = 0;
    s.write(text.slice(at, ++at));
    await sleep(50);
    stepClockBack();
    const timer = setInterval(() => {
      if (!s.destroyed && at < text.length - 1) s.write(text.slice(at, ++at));
    }, 200);
    try {
      const took = await Promise.race([closed, sleep(6_000).then(() => -1)]);
      assert.ok(took > 0 && took < 4_000, `slowloris closed after ${took.toFixed(0)} ms (request timeout 1 s; -1: still open after 6 s)`);
    } finally {
      clearInterval(timer);
      s.destroy();
    }
  });

  test('a client flagged by harvest protection is let go a window of real time after its last unknown', async () => {
    const port = app.addresses.policy!.port;
    const client = '198.51.100.23';
    for (let i = 0; i < 3; i++) await policy(port, `nobody${i}@example.com`, client);
    assert.match(await policy(port, 'alice@example.com', client), /^4\d\d /, 'flagged: refused in reject mode');
    stepClockBack();
    await sleep(HARVEST_WINDOW_MS + 500);
    assert.equal(await policy(port, 'alice@example.com', client), 'DUNNO', 'the flag lifts after the window, whatever the wall clock says');
  });
});
