/**
 * A reader that stops early: `rcptgate check … | head -1`, `| grep -q valid`. The next write to
 * stdout failed with EPIPE, which nothing handled: Node printed a stack trace and exited 1, the
 * status that means "an address is unknown", though every address was valid. The lines nobody
 * reads are now dropped and the exit status is the verdicts' (README "Command line"). The real
 * CLI on the bundled example directory; the output (6,000 lines) is more than a pipe holds, so
 * the process is still writing when the reader closes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

/** Runs the CLI, reads the first chunk of its stdout, then closes the pipe. */
function firstLineOnly(args: string[]): Promise<{ code: number | null; first: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let first = '';
    child.stdout.once('data', (c: Buffer) => {
      first = c.toString('utf8').split('\n')[0]!;
      child.stdout.destroy();
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, first, stderr }));
  });
}

describe('rcptgate check whose reader stops early (real CLI)', () => {
  test('exits with the verdicts\' status (0: all valid), without a stack trace', async () => {
    const { code, first, stderr } = await firstLineOnly(['check', ...Array(6000).fill('alice@example.com')]);
    assert.equal(first, 'alice@example.com\tvalid\talice@example.com (directory)');
    assert.doesNotMatch(stderr, /EPIPE|Unhandled/, 'a write to the closed pipe crashed the process');
    assert.equal(code, 0, `every address is valid: ${stderr.slice(0, 300)}`);
  });

  test('an unknown address still exits 1', async () => {
    const { code, stderr } = await firstLineOnly(['check', ...Array(6000).fill('alice@example.com'), 'nobody@example.com']);
    assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
    assert.equal(code, 1);
  });
});
