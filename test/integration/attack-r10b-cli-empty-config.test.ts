/**
 * `rcptgate serve --config "$RCPTGATE_FILE"` with the variable unset or misspelt: the empty name
 * counted as no config at all, so serve started on the bundled example directory (example.com,
 * example.org) and answered every real domain "not ours": a Postfix asking its `domains` map
 * refused all mail as relay access denied. `check` and `sync` likewise ran against the example.
 * An empty --config is now bad usage (exit 64) for every command, before anything starts.
 * `docker run -e RCPTGATE_CONFIG="$RCPTGATE_FILE"` (a Kubernetes env entry, a systemd
 * Environment= line) with the variable unset did the same (and replaced the image's own
 * examples/container.yaml): an empty RCPTGATE_CONFIG is a configuration error (exit 78);
 * --config still wins over it. The real CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

/** The real CLI with no RCPTGATE_* variable but `extraEnv`. */
function run(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    // Port 0 everywhere: a serve that does start must not collide with anything; it is killed.
    Object.assign(env, { RCPTGATE_LISTEN_HTTP: '127.0.0.1:0', RCPTGATE_LISTEN_SOCKETMAP: '127.0.0.1:0', RCPTGATE_LISTEN_POLICY: 'null', RCPTGATE_LISTEN_MILTER: 'null', RCPTGATE_LISTEN_METRICS: 'null' }, extraEnv);
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

describe('an empty RCPTGATE_CONFIG (real CLI)', () => {
  for (const args of [['serve'], ['check', 'alice@example.com'], ['sync'], ['config', 'check']]) {
    test(`${args.join(' ')} with RCPTGATE_CONFIG="": exit 78 naming RCPTGATE_CONFIG, not the bundled example directory`, async () => {
      const { code, output } = await run(args, { RCPTGATE_CONFIG: '' });
      assert.equal(code, 78, `exit ${code}: ${output.slice(0, 500)}`);
      assert.match(output, /RCPTGATE_CONFIG is set but empty/);
      assert.doesNotMatch(output, /"msg":"listening"|alice@example\.com\tvalid|no config file: built-in defaults/);
    });
  }
  test('--config still wins over an empty RCPTGATE_CONFIG', async () => {
    const { code, output } = await run(['config', 'check', '--config', 'examples/container.yaml'], { RCPTGATE_CONFIG: '' });
    assert.equal(code, 0, output.slice(0, 500));
  });
});
