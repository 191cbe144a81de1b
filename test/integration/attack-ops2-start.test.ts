/**
 * The real `rcptgate serve` with a FIFO where its snapshot or answer file should be (a path
 * mixed up with a log pipe, a file replaced while the service was down). It used to hang before
 * opening any listener, without a log line, waiting for a writer: a supervisor saw a live
 * process that answered nobody. It now exits 78 at once, naming the key.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServe } from '../helpers/process.js';
import { requireTools } from '../helpers/slapd.js';

let dir: string;
const fifos: string[] = [];
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ops2-start-'));
});
after(async () => {
  // Releases a reader still blocked in open(), should the fix regress.
  for (const f of fifos) await open(f, constants.O_WRONLY | constants.O_NONBLOCK).then((fh) => fh.close(), () => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('serve with a FIFO at a file it reads at start', () => {
  for (const key of ['sync.snapshotPath', 'cache.persistPath'] as const) {
    test(`${key}: exits 78 naming the key instead of hanging`, async () => {
      const { mkfifo } = requireTools('mkfifo');
      const pipe = path.join(dir, key);
      execFileSync(mkfifo!, [pipe]);
      fifos.push(pipe);
      const file = path.join(dir, `${key}.yaml`);
      await writeFile(
        file,
        JSON.stringify({
          listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com', timeout: '1s' } },
          sync: { enabled: true, snapshotPath: key === 'sync.snapshotPath' ? pipe : path.join(dir, 'snapshot') },
          cache: { persistPath: key === 'cache.persistPath' ? pipe : null },
        }),
      );
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
      const serve = startServe(['--config', file], env);
      try {
        const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000).unref())]);
        assert.equal(code, 78, `serve: ${String(code)}; logs: ${JSON.stringify(serve.logs.slice(-3))}`);
        const fatal = serve.logs.find((l) => l.level === 60);
        assert.match(JSON.stringify(fatal), new RegExp(`${key.replace('.', '\\.')}.*is a FIFO, not a regular file`));
      } finally {
        await serve.kill();
      }
    });
  }
});
