/**
 * Case folding against a real Samba DC, letter by letter: every BMP letter that has a case
 * mapping, stored in a contact's proxyAddresses as its lowercase (`q<l>q@`), asked as itself, its
 * lowercase and its uppercase. No address the DC's own search finds may be unknown to rcptgate
 * (mail lost), live or from a snapshot with sync.confirmMisses off (the snapshot's keys alone
 * decide a miss there), and the snapshot answers every address as the live lookup does.
 * Samba's case table predates letters added to Unicode later (Ș, Ѐ, ǅ...): rcptgate folds
 * them (valid) where Samba's search does not; a Windows DC's table is newer. Those are counted,
 * not failed.
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
const single = (s: string): boolean => [...s].length === 1;

/** Letters with a case mapping to one other letter, and their lowercase forms (stored). */
function letters(): { asked: string[]; stored: string[] } {
  const asked = new Set<string>();
  const stored = new Set<string>();
  for (let cp = 0x80; cp < 0x10000; cp++) {
    if (cp >= 0xd800 && cp < 0xe000) continue;
    const c = String.fromCodePoint(cp);
    if (!/\p{L}/u.test(c)) continue;
    const lo = c.toLowerCase();
    const up = c.toUpperCase();
    if (lo === c && up === c) continue;
    asked.add(c);
    if (single(lo)) stored.add(lo);
    if (single(up)) asked.add(up);
    if (single(lo)) asked.add(lo);
  }
  return { asked: [...asked], stored: [...stored] };
}

describe('every BMP case pair against the DC itself (real Samba DC)', { timeout: 600_000 }, () => {
  let dc: SambaDC;
  let tmp: string;
  const apps: App[] = [];
  const { asked, stored } = letters();

  before(async () => {
    dc = await startSambaDC();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12g-unicode-'));
    const contacts = stored.map((l, i) => `dn: CN=Case${i},CN=Users,${dc.baseDN}\nobjectClass: contact\ncn: Case${i}\nproxyAddresses:: ${b64(`SMTP:q${l}q${AT}`)}\n`);
    for (let i = 0; i < contacts.length; i += 200) await dc.modify(contacts.slice(i, i + 200).join('\n'));
  });
  after(async () => {
    for (const app of apps) await app.close();
    await dc?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

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
        cache: { maxEntries: 0 },
        log: { level: 'silent' },
        ...extra,
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword },
    );
    apps.push(app);
    return app;
  }

  async function verdicts(app: App, addresses: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < addresses.length; i += 50) {
      const res = await fetch(`http://127.0.0.1:${app.addresses.http!.port}/v1/recipients:check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ addresses: addresses.slice(i, i + 50) }),
      });
      out.push(...((await res.json()) as { results: { verdict: string }[] }).results.map((r) => r.verdict));
    }
    return out;
  }

  test('live and from a snapshot, each spelling gets the DC\'s verdict', async () => {
    const addresses = asked.map((c) => `q${c}q${AT}`);
    const dcSays = await truth(addresses);
    const name = (i: number): string => `U+${asked[i]!.codePointAt(0)!.toString(16).toUpperCase()} ${asked[i]}`;
    const live = await verdicts(await start({}), addresses);
    const snapshotApp = await start({ sync: { enabled: true, snapshotPath: path.join(tmp, 'snapshot'), interval: '1h', incrementalInterval: '1h', confirmMisses: false } });
    assert.match(await snapshotApp.syncOnce(), /entries=/);
    const snapshot = await verdicts(snapshotApp, addresses);
    const lost = (got: string[]): string[] => got.flatMap((v, i) => (dcSays[i] === 'valid' && v !== 'valid' ? [`${name(i)} ${v}`] : []));
    assert.deepEqual({ live: lost(live), snapshot: lost(snapshot) }, { live: [], snapshot: [] }, 'addresses the DC finds, not valid');
    assert.deepEqual(snapshot.flatMap((v, i) => (v === live[i] ? [] : [`${name(i)} ${v} (live ${live[i]})`])), [], 'snapshot and live agree');
    const wider = live.filter((v, i) => v === 'valid' && dcSays[i] !== 'valid').length;
    console.log(`asked ${asked.length}, stored ${stored.length}, DC valid ${dcSays.filter((v) => v === 'valid').length}, valid where Samba's older table does not fold: ${wider}`);
    assert.ok(dcSays.filter((v) => v === 'valid').length >= stored.length, 'every stored spelling found by the DC itself');
  });
});
