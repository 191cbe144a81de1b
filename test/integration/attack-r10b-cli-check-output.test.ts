/**
 * `rcptgate check` prints one line per address, `ADDRESS<TAB>VERDICT<TAB>detail`, for scripts
 * (`xargs -0 rcptgate check < list | while IFS=$'\t' read …`). An address holding a line break
 * and tabs, `nobody\n alice@example.com\tvalid\tx`, came out as two lines, the second one a
 * `valid` line of the address's own choosing; an escape sequence went to the terminal as it was.
 * Control characters are now printed as `\xNN`: one line per address, three fields, and the
 * address still refused as invalid (exit 64). The real CLI on the bundled example directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

function check(addresses: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check', ...addresses], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

describe('rcptgate check given addresses with control characters (real CLI)', () => {
  test('prints exactly one three-field line per address, none of them forged, and exits 64', async () => {
    const forged = 'nobody\n alice@example.com\tvalid\tforged@example.com';
    const { code, stdout } = await check([forged, 'bob@example.com\x1b[2K', 'alice@example.com']);
    const lines = stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 3, `one line per address expected:\n${stdout}`);
    for (const line of lines) assert.equal(line.split('\t').length, 3, `not three fields: ${JSON.stringify(line)}`);
    assert.deepEqual(
      lines.map((l) => l.split('\t').slice(0, 2)),
      [
        ['nobody\\x0a alice@example.com\\x09valid\\x09forged@example.com', 'invalid'],
        ['bob@example.com\\x1b[2K', 'invalid'],
        ['alice@example.com', 'valid'],
      ],
    );
    assert.doesNotMatch(stdout, /\x1b/, 'an escape sequence reached the terminal');
    assert.equal(code, 64);
  });
});
