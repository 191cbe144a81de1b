/**
 * Secrets as editors and orchestrators hand them over. A password file saved by Windows Notepad
 * starts with a UTF-8 byte order mark; a Kubernetes Secret made with `--from-file` keeps the file's
 * final line break, and an environment variable taken from it (`secretKeyRef`) carries that
 * line break too. The file's line breaks were dropped, but the mark was sent as part of the
 * password, and the variable was used as it came: the bind was refused and every uncached
 * recipient deferred (tempfail, exit 75), for a password that was right. The same admin token
 * from RCPTGATE_ADMIN_TOKEN was refused as "contains whitespace". Real slapd, the real CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { trimSecret } from '../../src/config/resolve.js';
import { REPO_ROOT, listenerPort, startServe } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const BOM = '\uFEFF';

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

describe('secrets with a byte order mark or a final line break (real slapd, real CLI)', { timeout: 240_000 }, () => {
  let ldap: Slapd;
  let dir: string;
  /** A config binding as the service account, its password from `passwordFile` (null: the environment). */
  const config = async (name: string, passwordFile: string | null): Promise<string> => {
    const file = path.join(dir, name);
    const lines = [
      'domains: [example.com]',
      'listen: { http: "127.0.0.1:0", socketmap: null, policy: null, milter: null, metrics: null }',
      'directory:',
      '  kind: ldap',
      '  ldap:',
      `    urls: ["${ldap.url}"]`,
      `    baseDN: "${ldap.baseDN}"`,
      `    bindDN: "${ldap.serviceDN}"`,
      ...(passwordFile ? [`    bindPasswordFile: "${passwordFile}"`] : []),
      '    timeout: "3s"',
    ];
    await writeFile(file, lines.join('\n') + '\n');
    return file;
  };

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-secret-encoding-'));
  });
  after(async () => {
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const [what, content] of [
    ['a byte order mark and CRLF (Notepad)', `${BOM}PASSWORD\r\n`],
    ['a byte order mark and no line break', `${BOM}PASSWORD`],
  ] as const) {
    test(`a bind password file with ${what} binds: valid, not tempfail`, async () => {
      const pw = path.join(dir, `pw-${what.length}`);
      await writeFile(pw, content.replace('PASSWORD', ldap.servicePassword), { mode: 0o600 });
      const r = await cli(['check', '--config', await config(`file-${what.length}.yaml`, pw), 'alice@example.com', 'nobody@example.com']);
      assert.equal(r.code, 1, `exit ${r.code}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^alice@example\.com\tvalid\t/m);
      assert.match(r.stdout, /^nobody@example\.com\tunknown\t/m);
    });
  }

  for (const [what, suffix] of [
    ['a final line break (secretKeyRef of a Secret made from a file)', '\n'],
    ['a final CRLF', '\r\n'],
  ] as const) {
    test(`RCPTGATE_LDAP_BIND_PASSWORD with ${what} binds, for check and sync alike`, async () => {
      const cfg = await config(`env-${suffix.length}.yaml`, null);
      const env = { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword + suffix };
      const r = await cli(['check', '--config', cfg, 'alice@example.com'], env);
      assert.equal(r.code, 0, `exit ${r.code}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^alice@example\.com\tvalid\t/m);
      const snapshot = path.join(dir, `snapshot-${suffix.length}.bin`);
      const syncCfg = path.join(dir, `sync-${suffix.length}.yaml`);
      await writeFile(syncCfg, (await readFile(cfg, 'utf8')) + `sync: { enabled: true, snapshotPath: "${snapshot}" }\n`);
      const s = await cli(['sync', '--config', syncCfg], env);
      assert.equal(s.code, 0, `sync exit ${s.code}: ${s.stderr}`);
    });
  }

  test('RCPTGATE_ADMIN_TOKEN with a final line break is the token the admin API accepts', async () => {
    const token = 'r12f-admin-token-0123456789';
    const cfg = await config('token.yaml', null);
    const p = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword, RCPTGATE_ADMIN_TOKEN: `${token}\n` });
    try {
      const port = await listenerPort(p, 'http');
      const flush = (auth: string) => fetch(`http://127.0.0.1:${port}/v1/cache`, { method: 'DELETE', headers: { authorization: auth } });
      assert.ok((await flush(`Bearer ${token}`)).ok, 'the token without its line break is accepted');
      assert.equal((await flush('Bearer wrong-token')).status, 403);
    } finally {
      await p.kill();
    }
  });

  test('what is kept: white space inside or before the final line break is part of the secret', () => {
    assert.equal(trimSecret(`${BOM}pass word \r\n\n`), 'pass word ');
    assert.equal(trimSecret(' pass'), ' pass');
    assert.equal(trimSecret('pa\uFEFFss'), 'pa\uFEFFss');
  });
});
