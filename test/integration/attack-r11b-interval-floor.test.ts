/**
 * `cache.persistInterval: 1ms` (a unit forgotten, "1" meant as minutes, an env override typed in
 * haste) was accepted: the answer file was written back to back, a whole file each time, a core
 * busy and the disk rewritten for as long as the service ran. `sync.interval` likewise listed the
 * whole directory back to back. Both now need at least 1s; config check and serve refuse less
 * with exit 78 naming the key. The real CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

/** The real CLI with no RCPTGATE_* variable but `extraEnv`; a serve that starts is stopped once listening. */
function run(args: string[], extraEnv: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    Object.assign(env, { RCPTGATE_LISTEN_HTTP: '127.0.0.1:0', RCPTGATE_LISTEN_SOCKETMAP: 'null', RCPTGATE_LISTEN_POLICY: 'null', RCPTGATE_LISTEN_MILTER: 'null', RCPTGATE_LISTEN_METRICS: 'null' }, extraEnv);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      output += c;
      if (output.includes('"msg":"listening"')) child.kill('SIGTERM');
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code, signal) => (clearTimeout(timer), resolve({ code: code ?? (signal ? -1 : null), output })));
  });
}

describe('intervals of work that would run back to back (real CLI)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r11b-interval-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, string, Record<string, string>]> = [
    ['cache.persistInterval', '1ms', { RCPTGATE_CACHE_PERSIST_INTERVAL: '1ms' }],
    ['cache.persistInterval', '999ms', { RCPTGATE_CACHE_PERSIST_INTERVAL: '999ms' }],
    ['sync.interval', '1ms', { RCPTGATE_SYNC_INTERVAL: '1ms' }],
  ];
  for (const [key, value, env] of cases) {
    for (const args of [['config', 'check'], ['serve']]) {
      test(`${args.join(' ')} refuses ${key}: ${value} with exit 78 naming the key`, async () => {
        const { code, output } = await run(args, { ...env, RCPTGATE_CACHE_PERSIST_PATH: path.join(dir, 'answers') });
        assert.equal(code, 78, `exit ${code}: ${output.slice(0, 800)}`);
        assert.match(output, new RegExp(`${key.replace('.', '\\.')}.*at least 1s`));
        assert.doesNotMatch(output, /"msg":"listening"/);
      });
    }
  }

  test('1s is accepted', async () => {
    const { code, output } = await run(['serve'], { RCPTGATE_CACHE_PERSIST_INTERVAL: '1s', RCPTGATE_SYNC_INTERVAL: '1s', RCPTGATE_CACHE_PERSIST_PATH: path.join(dir, 'answers') });
    assert.equal(code, 0, output.slice(0, 800));
    assert.match(output, /"msg":"listening"/);
  });
});
