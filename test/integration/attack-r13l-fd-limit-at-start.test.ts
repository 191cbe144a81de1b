/**
 * `serve` started under an open-file limit too low for it (a systemd unit's LimitNOFILE=, a
 * container runtime's nofile, `ulimit -n` in an init script), swept from where Node itself
 * cannot load up to where the service runs. Each start must either serve whole or stop with an
 * exit code and a line an operator can act on. It did neither:
 *   - a listener that could not be opened (EMFILE) was "cannot start" with a stack trace, exit 1;
 *   - one descriptor more, the data file lock could not be opened (EMFILE) and the service ran
 *     WITHOUT it, as on a read-only volume: a second instance could then write the same answer file.
 * Now both stop with exit 78 and a line naming the limit. Real CLI (dist/main.js), real sockets.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { startDistServe } from '../helpers/r13l-dist-serve.js';

describe('serve under too low an open-file limit (real CLI)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13l-nofile-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('every start serves with its lock, or exits 78 naming the limit', async () => {
    const answers = path.join(dir, 'answers');
    const listen: Record<string, string> = {};
    for (const name of ['http', 'socketmap', 'policy', 'milter', 'metrics']) listen[name] = `127.0.0.1:${await freePort()}`;
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({ listen, cache: { persistPath: answers } }));

    const outcomes: string[] = [];
    const wrong: string[] = [];
    let served = 0;
    for (let limit = 18; limit <= 60 && served < 3; limit++) {
      const p = startDistServe(['--config', config], {}, { fdLimit: limit });
      const listening = p.waitForLog((l) => l.msg === 'listening' && l.listener === 'metrics', 20_000).then(() => 'up', () => 'down');
      let first = await Promise.race([p.exited.then((c) => `exit ${c}`), listening]);
      // The lock is taken once the listeners are up: still running a moment later, it is up.
      if (first === 'up') first = await Promise.race([p.exited.then((c) => `exit ${c}`), new Promise<string>((r) => setTimeout(() => r('up'), 1500))]);
      if (first === 'up') {
        // Up: its lock is there, or it would share the answer file with a second instance.
        const unlocked = p.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('no lock next to the file'));
        if (unlocked) wrong.push(`limit ${limit}: serving without the lock: ${unlocked.msg}`);
        if (!existsSync(`${answers}.lock`) && !unlocked) wrong.push(`limit ${limit}: serving, no lock file`);
        if (!unlocked) served++;
        p.child.kill('SIGTERM');
        await p.exited;
        outcomes.push(`${limit}: up`);
        continue;
      }
      const code = await p.exited;
      const said = p.logs.filter((l) => typeof l.level === 'number' && l.level >= 50).map((l) => `${String(l.msg)}${l.err ? `: ${(l.err as { message?: string }).message}` : ''}`);
      outcomes.push(`${limit}: exit ${code} ${said.join(' | ').slice(0, 160)}`);
      // Node itself could not load rcptgate (nothing logged yet): not ours to word.
      if (p.logs.length === 0) continue;
      if (code !== 78) wrong.push(`limit ${limit}: exit ${code}, not 78: ${said.join(' | ')}`);
      if (!said.some((m) => /open files/.test(m) && /ulimit -n|LimitNOFILE/.test(m))) wrong.push(`limit ${limit}: no line naming the limit: ${said.join(' | ')}`);
    }
    assert.deepEqual(wrong, [], outcomes.join('\n'));
    assert.ok(served >= 3, `never served: ${outcomes.join('\n')}`);
    assert.ok(outcomes.some((o) => / exit 78 /.test(o)), `no start stopped at a listener or the lock: ${outcomes.join('\n')}`);
  });
});
