/**
 * How fast an unauthenticated stranger can harvest addresses, with the defaults (SECURITY.md,
 * "Harvest rates"). A real rcptgate in front of a real slapd (test/helpers/slapd.ts, users
 * user1..userN), everything on loopback. The "stranger" is this process at 127.0.0.1 with
 * `http.lookupAllowFrom: ["::1/128"]`, i.e. a client the default allow list does not cover.
 *
 *   node --import tsx scripts/harvest-rate.ts [--seconds 5] [--users 20000]
 *
 * Prints, per phase, answers learned per second and whether the valid/unknown split was right.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createApp } from '../src/app/app.js';
import { validateConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { startSlapd } from '../test/helpers/slapd.js';
import { SocketmapClient } from '../test/helpers/socketmap-client.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, users: { type: 'string', default: '20000' } } });
const SECONDS = Number(values.seconds);
const USERS = Number(values.users);
const TOKEN = 'harvest-rate-lookup-token';

/** Every address once (as a harvester asks them): half real users, half made up, interleaved. */
let next = 1;
const nextAddress = (): { address: string; exists: boolean } => {
  const n = next++;
  if (n % 2 === 0) return { address: `ghost${n}@example.com`, exists: false };
  const k = (n + 1) / 2;
  return { address: `user${k}@example.com`, exists: k <= USERS };
};

async function timed(label: string, step: () => Promise<{ learned: number; wrong: number; refused: number }>) {
  const end = Date.now() + SECONDS * 1000;
  let learned = 0, wrong = 0, refused = 0, rounds = 0;
  const started = performance.now();
  while (Date.now() < end) {
    const r = await step();
    learned += r.learned; wrong += r.wrong; refused += r.refused; rounds++;
  }
  const s = (performance.now() - started) / 1000;
  console.log(`${label}: ${Math.round(learned / s)} addresses/s learned, ${wrong} wrong, ${Math.round(refused / s)} refused requests/s (${rounds} rounds in ${s.toFixed(1)} s)`);
}

const ldap = await startSlapd({ generatedUsers: USERS });
const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-harvest-'));
await writeFile(path.join(dir, 'token'), TOKEN);
const defaults = validateConfig({}).listen;
console.log(`default listeners: ${Object.entries(defaults).map(([k, v]) => `${k}=${v}`).join(' ')}`);
const config = validateConfig({
  listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
  domains: ['example.com'],
  directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
  http: { lookupAllowFrom: ['::1/128'], lookupTokenFile: path.join(dir, 'token') },
  log: { level: 'silent' },
});
const app = await createApp({ loaded: { config, file: null }, logger: silentLogger(), env: { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword } });
await app.start();
const base = `http://127.0.0.1:${app.addresses.http!.port}`;
try {
  const batch = async (headers: Record<string, string>) => {
    const items = Array.from({ length: 1000 }, nextAddress);
    const res = await fetch(`${base}/v1/recipients:check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ addresses: items.map((i) => i.address) }),
    });
    if (res.status !== 200) {
      await res.arrayBuffer();
      return { learned: 0, wrong: 0, refused: 1 };
    }
    const { results } = (await res.json()) as { results: Array<{ verdict: string }> };
    const wrong = results.filter((r, i) => (r.verdict === 'valid') !== items[i]!.exists || r.verdict === 'tempfail').length;
    return { learned: results.length, wrong, refused: 0 };
  };
  await timed('HTTP POST /v1/recipients:check, stranger, no token', () => batch({}));
  await timed('HTTP POST /v1/recipients:check, stranger, wrong token', () => batch({ authorization: 'Bearer guess' }));
  next = 1; // refused requests reached no engine: start the answered ones at the first user
  await timed('HTTP POST /v1/recipients:check, with the lookup token', () => batch({ authorization: `Bearer ${TOKEN}` }));
  const sm = await SocketmapClient.connect(app.addresses.socketmap!.port);
  await timed('socketmap on loopback (a local user on the host), one connection', async () => {
    const { address, exists } = nextAddress();
    const reply = await sm.query('recipients', address);
    return { learned: 1, wrong: reply.startsWith('OK') !== exists ? 1 : 0, refused: 0 };
  });
  sm.close();
} finally {
  await app.close();
  await ldap.close();
  await rm(dir, { recursive: true, force: true });
}
