/**
 * A snapshot of an AD directory answers non-ASCII addresses as the DC's own search does. A
 * careless Exchange administrator's proxy addresses (the Kelvin sign U+212A typed for a K, a
 * fullwidth letter, a ligature, an upper-case umlaut) go on a real DC (Samba); rcptgate in
 * snapshot mode (default settings: a snapshot hit is final, a miss is asked live) must give every
 * address the verdict of rcptgate asking the DC live, which is the DC's own answer.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('snapshot keys of non-ASCII proxy addresses on an AD DC', () => {
  let dc: SambaDC;
  let tmp: string;
  const apps: App[] = [];

  before(async () => {
    dc = await startSambaDC();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r10a-ad-'));
    const contact = (cn: string, ...values: string[]): string =>
      `dn: CN=${cn},CN=Users,${dc.baseDN}\nobjectClass: contact\ncn: ${cn}\n${values.map((v) => `proxyAddresses:: ${b64(v)}`).join('\n')}\n`;
    await dc.modify(
      [
        contact('Kelvin', 'SMTP:\u212Aate@ad.example.com', 'smtp:ÄRGER@ad.example.com'),
        contact('Wide', 'SMTP:ｗｉｄｅ@ad.example.com', 'smtp:ﬁnance@ad.example.com'),
      ].join('\n'),
    );
  });
  after(async () => {
    for (const app of apps) await app.close();
    await dc?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function start(extra: object): Promise<App> {
    const app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['ad.example.com'],
        directory: { kind: 'ldap', ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' } },
        log: { level: 'warn' },
        ...extra,
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword },
    );
    apps.push(app);
    return app;
  }

  async function verdicts(app: App, addresses: string[]): Promise<string[]> {
    const res = await fetch(`http://127.0.0.1:${app.addresses.http!.port}/v1/recipients:check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ addresses }),
    });
    return ((await res.json()) as { results: { verdict: string; source: string }[] }).results.map((r) => `${r.verdict}`);
  }

  test('the snapshot answers every spelling as the DC does: the Kelvin sign is no k', async () => {
    const live = await start({});
    const snapshot = await start({ sync: { enabled: true, snapshotPath: path.join(tmp, 'snapshot'), interval: '1h', incrementalInterval: '1h' } });
    assert.match(await snapshot.syncOnce(), /entries=/);
    const addresses = [
      'kate@ad.example.com', '\u212Aate@ad.example.com', 'ärger@ad.example.com', 'ÄRGER@ad.example.com',
      'wide@ad.example.com', 'ｗｉｄｅ@ad.example.com', 'finance@ad.example.com', 'ﬁnance@ad.example.com', 'jane@ad.example.com',
    ];
    const truth = await verdicts(live, addresses);
    // What the DC says: it folds case, not compatibility characters.
    assert.deepEqual(truth, ['unknown', 'valid', 'valid', 'valid', 'unknown', 'valid', 'unknown', 'valid', 'valid']);
    assert.deepEqual(await verdicts(snapshot, addresses), truth);
  });
});
