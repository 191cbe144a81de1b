/**
 * A careless operator points the answer file at the config file (a copy-paste of the --config
 * path). rcptgate used to start, and at its first save replace its own config with the answer
 * file: the next restart or reload found no configuration. Now `config check` and `serve` refuse
 * it (exit 78) and the file is left as it was.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, startServe, type ServeProcess } from '../helpers/process.js';

let dir = '';
const started: ServeProcess[] = [];
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rcptgate-r8b-files-'));
});
after(async () => {
  for (const p of started) await p.kill();
  rmSync(dir, { recursive: true, force: true });
});

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
}

function configCheck(file: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check', '--config', file], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('cache.persistPath naming the config file', () => {
  it('is refused by config check and serve, and the config file stays intact', async () => {
    const file = join(dir, 'rcptgate.yaml');
    const text = `listen: { http: "127.0.0.1:0", socketmap: null, policy: null, milter: null, metrics: null }\ncache:\n  persistPath: ${file}\n  persistInterval: 1s\n`;
    writeFileSync(file, text);
    const checked = await configCheck(file);
    assert.equal(checked.code, 78, checked.stderr);
    assert.match(checked.stderr, /cache\.persistPath: .* is also the config file: rcptgate reads it/);

    const serve = startServe(['--config', file], cleanEnv());
    started.push(serve);
    // Before the fix it started, and its first save (1 s) replaced the config with the answer file.
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running after 4 s'), 4000))]);
    assert.equal(code, 78, `serve: ${String(code)}; logs ${JSON.stringify(serve.logs)}`);
    assert.equal(readFileSync(file, 'utf8'), text);
  });
});
