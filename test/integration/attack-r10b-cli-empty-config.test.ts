/**
 * `rcptgate serve --config "$RCPTGATE_FILE"` with the variable unset or misspelt: the empty name
 * counted as no config at all, so serve started on the bundled example directory (example.com,
 * example.org) and answered every real domain "not ours": a Postfix asking its `domains` map
 * refused all mail as relay access denied. `check` and `sync` likewise ran against the example.
 * An empty --config is now bad usage (exit 64) for every command, before anything starts.
 * The real CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    // Port 0 everywhere: a serve that does start must not collide with anything; it is killed.
    Object.assign(env, { RCPTGATE_LISTEN_HTTP: '127.0.0.1:0', RCPTGATE_LISTEN_SOCKETMAP: '127.0.0.1:0', RCPTGATE_LISTEN_POLICY: 'null', RCPTGATE_LISTEN_MILTER: 'null', RCPTGATE_LISTEN_METRICS: 'null' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      output += c;
      if (output.includes('"msg":"listening"')) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code, signal) => (clearTimeout(timer), resolve({ code: code ?? (signal ? -1 : null), output })));
  });
}

describe('an empty --config (real CLI)', () => {
  for (const args of [['serve'], ['check', 'alice@example.com'], ['sync'], ['config', 'check']]) {
    test(`${args.join(' ')} --config "": exit 64 naming --config, not the bundled example directory`, async () => {
      const { code, output } = await run([...args, '--config', '']);
      assert.equal(code, 64, `exit ${code}: ${output.slice(0, 500)}`);
      assert.match(output, /--config needs a file name/);
      assert.doesNotMatch(output, /"msg":"serving the bundled example directory|alice@example\.com\tvalid/);
    });
  }
});
