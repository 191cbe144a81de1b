/**
 * Letters that lowercase into another letter without being its capital: the ohm sign U+2126
 * (lowercase ω), the angstrom sign U+212B (å), the theta symbol U+03F4 (θ) and the capital sharp
 * s U+1E9E (ß). The DC's own search does not match them with those letters, but rcptgate folded
 * them before asking (only folding into ASCII, the Kelvin sign, was ruled out), so
 * "\u2126mega@" was valid as ωmega@: accepted, then bounced by the mailbox server (backscatter).
 * Case folding now keeps a letter unless its lowercase uppercases back to it. A real Samba DC: each
 * address gets the verdict of the DC's own search for it as written, live and from a snapshot.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from 'ldapts';
import type { App } from '../../src/app/app.js';
import { escapeFilterValue, parseFilter } from '../../src/directory/filter.js';
import { startApp } from '../helpers/app.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const AT = '@ad.example.com';

/** Local parts asked: the stored spelling, a true capital, and the look-alike that is none. */
const ASKED = ['ωmega', 'ΩMEGA', '\u2126mega', 'åke', 'ÅKE', '\u212Bke', 'θeta', 'Θeta', '\u03F4eta', 'straße', 'STRAẞE', 'ärger', 'ÄRGER', 'οδος', 'ΟΔΟΣ'];

describe('letters that lowercase into a letter they are not the capital of (real Samba DC)', () => {
  let dc: SambaDC;
  let tmp: string;
  const apps: App[] = [];

  before(async () => {
    dc = await startSambaDC();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12a-pairs-'));
    const contact = (cn: string, local: string): string => `dn: CN=${cn},CN=Users,${dc.baseDN}\nobjectClass: contact\ncn: ${cn}\nproxyAddresses:: ${b64(`SMTP:${local}${AT}`)}\n`;
    await dc.modify([contact('Omega', 'ωmega'), contact('Ake', 'åke'), contact('Theta', 'θeta'), contact('Strasse', 'straße'), contact('Aerger', 'ärger'), contact('Odos', 'οδος')].join('\n'));
  });
  after(async () => {
    for (const app of apps) await app.close();
    await dc?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** The DC's own answer for each address, searched as written. */
  async function truth(addresses: string[]): Promise<string[]> {
    const client = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: [readFileSync(dc.caFile)] } });
    await client.bind(dc.serviceDN, dc.servicePassword);
    try {
      const out: string[] = [];
      for (const a of addresses) {
        const { searchEntries } = await client.search(dc.baseDN, { scope: 'sub', filter: parseFilter(`(proxyAddresses=smtp:${escapeFilterValue(a)})`), attributes: ['cn'] });
        out.push(searchEntries.length > 0 ? 'valid' : 'unknown');
      }
      return out;
    } finally {
      await client.unbind();
    }
  }

  async function start(extra: object): Promise<App> {
    const app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['ad.example.com'],
        directory: { kind: 'ldap', ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' } },
        log: { level: 'silent' },
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
    return ((await res.json()) as { results: { verdict: string }[] }).results.map((r) => r.verdict);
  }

  test('live and from a snapshot, every spelling gets the verdict of the DC itself', async () => {
    const addresses = ASKED.map((l) => `${l}${AT}`);
    const dcSays = await truth(addresses);
    // The DC folds true case pairs only: the ohm, angstrom and theta symbols and ẞ are other letters.
    assert.deepEqual(dcSays, ['valid', 'valid', 'unknown', 'valid', 'valid', 'unknown', 'valid', 'valid', 'unknown', 'valid', 'unknown', 'valid', 'valid', 'valid', 'valid']);
    const live = await start({});
    const label = (got: string[]): string[] => got.map((v, i) => `${ASKED[i]} ${v}`);
    assert.deepEqual(label(await verdicts(live, addresses)), label(dcSays), 'live');
    const snapshot = await start({ sync: { enabled: true, snapshotPath: path.join(tmp, 'snapshot'), interval: '1h', incrementalInterval: '1h', confirmMisses: false } });
    assert.match(await snapshot.syncOnce(), /entries=/);
    // Without live confirmation of misses, the snapshot's keys alone decide: they agree with the DC,
    // the final sigma included (ΟΔΟΣ was a miss: stored οδος kept its ς, the lookup folded Σ to σ).
    assert.deepEqual(label(await verdicts(snapshot, addresses)), label(dcSays), 'snapshot');
  });
});
