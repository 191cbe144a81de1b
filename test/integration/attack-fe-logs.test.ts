/**
 * Log lines a client can cause at will stay rate-limited, against the real app and a real slapd:
 * a policy client that gives every request another `client_address` (as a harvester with many
 * addresses, an IPv6 prefix say, does through the MTA) gets each of them flagged by harvest
 * protection; the "harvest protection engaged" warning is written at most 10 times a minute,
 * the rest counted in rcptgate_log_suppressed_total.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { connectFrom, policyActions, policyRequest, readUntilClose } from '../helpers/frontend-clients.js';

async function metric(app: App, name: string, labels: string): Promise<number> {
  const text = await app.metrics.registry.metrics();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if ((m[1] ?? '').includes(labels)) sum += Number(m[2]);
  return sum;
}

describe('log lines a client can cause (real slapd)', () => {
  let ldap: Slapd;
  let app: App;
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    ldap = await startSlapd();
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) logs.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    app = await createApp({
      loaded: {
        config: validateConfig({
          listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
          policy: { harvest: { maxUnknown: 1, action: 'reject' } },
          log: { level: 'info' },
        }),
        file: null,
      },
      logger: createLogger('info', sink),
      env: { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    });
    await app.start();
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('"harvest protection engaged" is rate-limited when every request names another client', async () => {
    const clients = 40;
    const s = await connectFrom(app.addresses.policy!.port);
    const replies = readUntilClose(s);
    let requests = '';
    for (let i = 0; i < clients; i++) {
      // One address in each of 40 networks: an IPv6 client counts per /64.
      const client = `2001:db8:${(i + 1).toString(16)}::1`;
      requests += policyRequest(`ghost-${i}-a@example.com`, client) + policyRequest(`ghost-${i}-b@example.com`, client);
    }
    s.end(requests);
    const actions = policyActions(await replies);
    // Each client's second unknown flags it (maxUnknown 1): the verdicts are unchanged. The 80
    // requests arrive at once and are looked up side by side, so either of a client's two may be
    // judged second.
    assert.equal(actions.length, clients * 2);
    for (let i = 0; i < clients; i++) assert.deepEqual([actions[2 * i], actions[2 * i + 1]].sort(), ['421 4.7.0 Too many unknown recipients', '550 5.1.1 User unknown'], `client ${i}`);
    const engaged = logs.filter((l) => String(l['msg']).includes('harvest protection engaged'));
    assert.ok(engaged.length <= 10, `${engaged.length} "harvest protection engaged" lines for ${clients} clients`);
    assert.equal(await metric(app, 'rcptgate_log_suppressed_total', 'event="harvest_engaged"'), clients - engaged.length);
  });
});
