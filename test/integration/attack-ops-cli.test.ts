/**
 * The real CLI against operator mistakes that only show once files are read or sockets bound:
 * each gives one line naming the key and the problem, never a stack trace.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import { startServe } from '../helpers/process.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rcptgate-attack-ops-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Environment without the runner's own RCPTGATE_* variables. */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));

async function configFile(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

describe('serve: a listener that cannot bind', () => {
  let holder: Server;
  let port = 0;
  before(async () => {
    holder = createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    port = (holder.address() as { port: number }).port;
  });
  after(() => holder?.close());

  it('names the listen key and the cause in its fatal log line, without a stack trace, and exits non-zero', async () => {
    const config = await configFile(
      'busy.yaml',
      `listen: { http: null, metrics: null, policy: null, milter: "127.0.0.1:0", socketmap: "127.0.0.1:${port}" }\n`,
    );
    const serve = startServe(['--config', config], { ...cleanEnv() });
    try {
      const code = await serve.exited;
      assert.notEqual(code, 0);
      const fatal = serve.logs.find((l) => l.level === 60);
      assert.ok(fatal, `a fatal log line: ${JSON.stringify(serve.logs)}`);
      assert.equal(fatal.key, 'listen.socketmap');
      assert.match(String(fatal.msg), new RegExp(`listen\\.socketmap \\(127\\.0\\.0\\.1:${port}\\): the address is already in use`));
      assert.equal(fatal.err, undefined, 'no error object (with its stack) on the fatal line');
    } finally {
      await serve.kill();
    }
  });
});
