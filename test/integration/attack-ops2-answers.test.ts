/**
 * cache.persistPath after a reload that changed the directory settings (here the filter). The
 * answer file names the directory its answers came from, and a start refuses a file written for
 * another one. Saves after such a reload still named the directory of the start: the next start
 * with the new settings refused the file as foreign (a cold cache: with the directory down,
 * every recipient deferred), and a start with the old settings would have taken the new
 * directory's answers as its own. Real slapd, real restarts of the app.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { DISABLED_EXCLUDING_FILTER, startSlapd, type Slapd } from '../helpers/slapd.js';

let ldap: Slapd;
let dir: string;
const apps: App[] = [];

before(async () => {
  ldap = await startSlapd();
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ops2-answers-'));
});
after(async () => {
  for (const a of apps) await a.close().catch(() => undefined);
  await ldap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the answer file across a reload that changed the directory', () => {
  test('is written for the directory now in use, so a restart with that config loads it', async () => {
    const passwordFile = path.join(dir, 'bind-password');
    await writeFile(passwordFile, ldap.servicePassword);
    const configFile = path.join(dir, 'rcptgate.yaml');
    const text = (filter: string | null) =>
      JSON.stringify({
        listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: passwordFile, timeout: '2s', filter } },
        cache: { persistPath: path.join(dir, 'answers'), staleIfError: '1h' },
        log: { level: 'warn' },
      });
    await writeFile(configFile, text(null));
    const lines: Array<{ msg?: string; err?: { message?: string } }> = [];
    const logger = () => createLogger('warn', { write: (s: string) => void lines.push(JSON.parse(s) as (typeof lines)[number]) } as never);
    const first = await createApp({ loaded: loadConfig(configFile, {}), logger: logger(), retireAfterMs: 100 });
    apps.push(first);
    await first.start();
    await writeFile(configFile, text(DISABLED_EXCLUDING_FILTER));
    assert.equal(await first.reload(), true);
    assert.equal((await first.validator.lookup('alice@example.com', { frontend: 'http' })).verdict, 'valid');
    await first.close();

    await ldap.stop();
    try {
      const second = await createApp({ loaded: loadConfig(configFile, {}), logger: logger() });
      apps.push(second);
      await second.start();
      const r = await second.validator.lookup('alice@example.com', { frontend: 'http' });
      assert.equal(`${r.verdict}/${r.source}`, 'valid/cache', `the answer file was not loaded: ${JSON.stringify(lines.filter((l) => /cached answers/.test(String(l.msg))))}`);
      await second.close();
    } finally {
      await ldap.start();
    }
  });
});
