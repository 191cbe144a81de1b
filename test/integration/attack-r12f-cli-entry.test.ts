/**
 * The CLI ran only when the script's path ended in `main.js`, `main.ts` or `rcptgate`. Started any
 * other way it did nothing and exited 0: `node dist/main serve` (Node finds dist/main.js itself),
 * a symbolic link under another name (`/usr/local/bin/rcptgate-0.1`), a systemd unit or a
 * supervisor using either saw a clean exit, and no listener ever opened, with not one line said.
 * The real CLI, built (dist/main.js, as the package's bin and the container image run it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { isEntryPoint } from '../../src/cli/entry-point.js';
import { REPO_ROOT } from '../helpers/process.js';

const DIST_MAIN = join(REPO_ROOT, 'dist/main.js');
const VERSION = (await import('../../src/version.js')).VERSION;

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

describe('the CLI started under another name (built dist/main.js)', () => {
  let dir = '';
  before(() => {
    assert.ok(existsSync(DIST_MAIN), 'dist/main.js is missing: run npm run build first');
    dir = mkdtempSync(join(tmpdir(), 'rcptgate-entry-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('node dist/main --version prints the version', async () => {
    const r = await run(process.execPath, ['dist/main', '--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), VERSION);
  });

  test('node dist/main serve with a config that cannot be read exits 78 saying so, not 0 in silence', async () => {
    const r = await run(process.execPath, ['dist/main', 'serve', '--config', join(dir, 'missing.yaml')]);
    assert.equal(r.code, 78, `exit ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stderr, /cannot read config file .*missing\.yaml/);
  });

  test('a symbolic link of another name checks addresses', async () => {
    const link = join(dir, 'rcptgate-0.1');
    symlinkSync(DIST_MAIN, link);
    const r = await run(process.execPath, [link, 'check', 'alice@example.com', 'nobody@example.com']);
    assert.equal(r.code, 1, `exit ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stdout, /^alice@example\.com\tvalid\t/m);
    assert.match(r.stdout, /^nobody@example\.com\tunknown\t/m);
  });

  test('before Node says it (no import.meta.main), the path Node was given is resolved as Node does', () => {
    const url = pathToFileURL(DIST_MAIN).href;
    const link = join(dir, 'other-name');
    symlinkSync(DIST_MAIN, link);
    assert.equal(isEntryPoint(url, undefined, join(REPO_ROOT, 'dist/main')), true);
    assert.equal(isEntryPoint(url, undefined, link), true);
    assert.equal(isEntryPoint(url, undefined, DIST_MAIN), true);
    assert.equal(isEntryPoint(url, undefined, join(REPO_ROOT, 'node_modules/.bin/tsc')), false);
    assert.equal(isEntryPoint(url, undefined, undefined), false);
  });

  test('importing the module runs nothing (the tests import main)', async () => {
    const r = await run(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(DIST_MAIN)}); console.log('imported')`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'imported\n');
  });
});
