/**
 * A snapshot or answer file path that cannot be looked at: a symbolic link that points at itself
 * (a careless `ln -sf` in a deploy script) or a path longer than the system allows. The start
 * checks stat()ed the path and let the error escape: `config check`, `sync` and `serve` crashed
 * with a stack trace and exit 70, which a supervisor reads as a software bug, not as a setting to
 * fix. They now exit 78 naming the key and the cause, as for any other unusable path. The real
 * CLI; nothing connects to a directory before the config is refused.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r10b-paths-'));
  await symlink(path.join(dir, 'loop'), path.join(dir, 'loop'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    // serve logs (JSON) on stdout, the other commands write their errors on stderr.
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, stderr })));
  });
}

const cases: Array<[string, string, () => string]> = [
  ['sync.snapshotPath', 'a symbolic link to itself', () => path.join(dir, 'loop')],
  ['cache.persistPath', 'a symbolic link to itself', () => path.join(dir, 'loop')],
  ['sync.snapshotPath', 'a path longer than the system allows', () => path.join(dir, 'x'.repeat(300), 'snapshot')],
];

describe('a snapshot or answer file path that cannot be looked at (real CLI)', () => {
  for (const [key, what, pathOf] of cases) {
    test(`${key} as ${what}: config check, sync and serve exit 78 naming the key`, async () => {
      const file = path.join(dir, 'rcptgate.yaml');
      const other = key === 'sync.snapshotPath' ? { cache: { persistPath: path.join(dir, 'answers') } } : { cache: { persistPath: pathOf() } };
      await writeFile(
        file,
        JSON.stringify({
          listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:9'], baseDN: 'dc=example,dc=com' } },
          sync: { enabled: true, snapshotPath: key === 'sync.snapshotPath' ? pathOf() : path.join(dir, 'snapshot') },
          ...other,
        }),
      );
      for (const command of [['config', 'check'], ['sync'], ['serve']]) {
        const { code, stderr } = await run([...command, '--config', file]);
        assert.equal(code, 78, `${command.join(' ')}: exit ${code}: ${stderr}`);
        assert.ok(stderr.includes(key), `${command.join(' ')} does not name ${key}: ${stderr}`);
        // serve's fatal log line carries the error object, as for every configuration it refuses.
        if (command[0] !== 'serve') assert.doesNotMatch(stderr, /\n\s+at /, `${command.join(' ')} printed a stack trace`);
      }
    });
  }
});
