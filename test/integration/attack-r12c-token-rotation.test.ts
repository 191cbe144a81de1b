/**
 * Token files rotated under the real `rcptgate serve` (HTTP API, bundled example directory): as
 * Kubernetes updates a mounted Secret (a new file swapped in by rename) and as an admin edits one
 * in place. The tokens were read at start only: clients given the new lookup token got 403, and
 * the old one, revoked, kept working until a restart. Now the new token works and the old one is
 * refused within seconds; a file caught empty or removed keeps the previous token (never none).
 * The "stranger" is 127.0.0.1 with an allow list of ::1 only.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { sleep } from '../helpers/frontend-clients.js';

/** The file is looked at once a second at most; generous for a loaded machine. */
const SETTLE_MS = 10_000;

describe('token files rotated while serving (real serve)', () => {
  let serve: ServeProcess;
  let dir: string;
  let base: string;
  const lookupFile = (): string => path.join(dir, 'lookup-token');
  const adminFile = (): string => path.join(dir, 'admin-token');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-token-rotation-'));
    await writeFile(lookupFile(), 'lookup-one\n');
    await writeFile(adminFile(), 'admin-one\n');
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      http: { lookupTokenFile: lookupFile(), lookupAllowFrom: ['::1/128'] },
      admin: { tokenFile: adminFile() },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', config]);
    base = `http://127.0.0.1:${await listenerPort(serve, 'http')}`;
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const lookup = async (token: string): Promise<number> => {
    const res = await fetch(`${base}/v1/recipients/alice@example.com`, { headers: { authorization: `Bearer ${token}` } });
    await res.text();
    return res.status;
  };
  const flush = async (token: string): Promise<number> => {
    const res = await fetch(`${base}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    await res.text();
    return res.status;
  };

  /** Waits until `ask(token)` gives `status`; the status last seen otherwise. */
  async function settles(ask: (t: string) => Promise<number>, token: string, status: number): Promise<number> {
    const deadline = Date.now() + SETTLE_MS;
    let last = await ask(token);
    while (last !== status && Date.now() < deadline) {
      await sleep(200);
      last = await ask(token);
    }
    return last;
  }

  test('a lookup token swapped in by rename works and the old one is refused; an empty or missing file keeps it', async () => {
    assert.equal(await lookup('lookup-one'), 200);
    assert.equal(await lookup('lookup-two'), 403);
    // Kubernetes writes the new content beside the old and swaps it in.
    await writeFile(`${lookupFile()}.new`, 'lookup-two\n');
    await rename(`${lookupFile()}.new`, lookupFile());
    assert.equal(await settles(lookup, 'lookup-two', 200), 200, `the new lookup token is accepted within ${SETTLE_MS / 1000} s`);
    assert.equal(await lookup('lookup-one'), 403, 'the old lookup token is refused');

    // Caught half way (truncated), then gone: the token in use stays, and it is logged.
    // (The file is looked at when a request needs the token: the lookups below.)
    const unusable = (): number => serve.logs.filter((l) => l.key === 'http.lookupTokenFile' && /cannot be used/.test(String(l.msg))).length;
    for (const spoil of [() => writeFile(lookupFile(), ''), () => rm(lookupFile())]) {
      const seen = unusable();
      await spoil();
      const deadline = Date.now() + SETTLE_MS;
      while (unusable() === seen && Date.now() < deadline) {
        assert.equal(await lookup('lookup-two'), 200, 'the previous token stays in use');
        await sleep(200);
      }
      assert.equal(unusable(), seen + 1, 'the unusable file is logged once');
      assert.equal(await lookup('lookup-two'), 200, 'the previous token stays in use');
      assert.equal(await lookup('lookup-one'), 403);
    }
    assert.ok(!JSON.stringify(serve.logs).includes('lookup-two'), 'no token in the logs');
  });

  test('an admin token rewritten in place works for the admin endpoints and the lookup API; the old one is refused', async () => {
    assert.equal(await flush('admin-one'), 204);
    await writeFile(adminFile(), 'admin-two\n');
    assert.equal(await settles(flush, 'admin-two', 204), 204, `the new admin token is accepted within ${SETTLE_MS / 1000} s`);
    assert.equal(await flush('admin-one'), 403, 'the old admin token is refused');
    assert.equal(await lookup('admin-two'), 200, 'the admin token also opens the lookup API');
    assert.equal(await lookup('admin-one'), 403);
    assert.ok(!JSON.stringify(serve.logs).includes('admin-two'), 'no token in the logs');
  });
});
