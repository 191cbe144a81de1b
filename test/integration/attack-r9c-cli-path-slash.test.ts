/**
 * `sync.snapshotPath: /var/lib/rcptgate/` (the directory meant, with its slash): config check
 * said valid, serve ran with every snapshot write failing at its rename (logged, and a restart
 * had no snapshot), and `rcptgate sync` exited 75, which a cron job or a Helm hook retries for
 * ever. Both commands now refuse it as a configuration problem (78), naming the key; the same
 * for cache.persistPath. Real slapd, real CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env: { ...clean, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr });
    });
  });
}

describe('a snapshot or answer file path ending in "/" (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r9c-slash-'));
  });
  after(async () => {
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const config = async (name: string, extra: object): Promise<string> => {
    const file = path.join(dir, name);
    const ldapCfg = { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN };
    await writeFile(file, JSON.stringify({ domains: ['example.com'], directory: { kind: 'ldap', ldap: ldapCfg }, ...extra }));
    return file;
  };

  test('sync.snapshotPath: config check and sync exit 78 naming the key, and nothing is written', async () => {
    const file = await config('snap.json', { sync: { enabled: true, snapshotPath: path.join(dir, 'data') + '/' } });
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword };
    const checked = await cli(['config', 'check', '--config', file], env);
    assert.equal(checked.code, 78, `config check: ${checked.stderr}`);
    assert.match(checked.stderr, /sync\.snapshotPath: .*data\/ ends in "\/"/);
    const synced = await cli(['sync', '--config', file], env);
    assert.equal(synced.code, 78, `sync must not ask for a retry (75) that can never succeed: ${synced.stderr.slice(-400)}`);
    assert.match(synced.stderr, /sync\.snapshotPath/);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'no temp file left behind');
  });

  test('cache.persistPath: config check exits 78 naming the key', async () => {
    const file = await config('answers.json', { cache: { persistPath: path.join(dir, 'cache') + '/' } });
    const checked = await cli(['config', 'check', '--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    assert.equal(checked.code, 78, `config check: ${checked.stderr}`);
    assert.match(checked.stderr, /cache\.persistPath: .*cache\/ ends in "\/"/);
  });
});
