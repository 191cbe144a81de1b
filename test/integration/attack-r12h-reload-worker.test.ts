/**
 * A configuration of 64 kB or more is read on a worker thread at SIGHUP. A burst of SIGHUPs (a
 * config management run signalling once per file it touched) must leave no thread or memory
 * behind, and a SIGTERM while the worker parses must stop the service promptly and cleanly.
 * The real serve process; the large file is 2,000 domains with rules.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

function config(domains: number, extra: string): string {
  const lines = ['listen: { http: null, socketmap: "127.0.0.1:0", policy: null, milter: null, metrics: null }', 'domains:', '  example.com: {}'];
  for (let i = 0; i < domains; i++) lines.push(`  d${i}.example.net: { catchAll: false, mode: enforce, alwaysValid: [postmaster, abuse] }`);
  lines.push(`  ${extra}: { catchAll: true }`);
  return lines.join('\n') + '\n';
}

const threads = (pid: number) => readdirSync(`/proc/${pid}/task`).length;
const reloadedLine = (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded');

describe('SIGHUP bursts and SIGTERM with a configuration read on a worker (real serve)', { timeout: 240_000 }, () => {
  let dir: string;
  let serve: ServeProcess | undefined;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12h-worker-'));
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('30 SIGHUPs leave no thread behind, the last file is served, SIGTERM mid-parse stops cleanly', async () => {
    const cfg = path.join(dir, 'rcptgate.yaml');
    const text = config(2_000, 'first.example');
    assert.ok(Buffer.byteLength(text) >= 64 * 1024, 'the file is large enough for the worker');
    await writeFile(cfg, text);
    serve = startServe(['--config', cfg]);
    const socketmap = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
    const pid = serve.child.pid!;
    const baseline = threads(pid);
    for (let round = 0; round < 3; round++) {
      await writeFile(cfg, config(2_000, `round${round}.example`));
      await new Promise((r) => setTimeout(r, 700));
      const before = serve.logs.filter(reloadedLine).length;
      for (let i = 0; i < 10; i++) {
        serve.child.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 20));
      }
      const t0 = Date.now();
      while (serve.logs.filter(reloadedLine).length === before && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 3_000));
      assert.match(await socketmap.query('recipients', `anyone@round${round}.example`), /^OK /, `round ${round}: the new file is served`);
    }
    const after = threads(pid);
    const rss = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1];
    console.log(`threads: ${baseline} -> ${after}; reloads logged: ${serve.logs.filter(reloadedLine).length}; rss ${rss} kB`);
    assert.ok(after <= baseline + 1, `threads before ${baseline}, after ${after}`);
    socketmap.close();
    // SIGTERM while a worker parses.
    await writeFile(cfg, config(2_000, 'last.example'));
    await new Promise((r) => setTimeout(r, 700));
    serve.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 150));
    const t = Date.now();
    serve.child.kill('SIGTERM');
    const code = await serve.exited;
    console.log(`exit ${code} after ${Date.now() - t} ms; stderr: ${serve.stderr.slice(0, 500)}`);
    assert.equal(code, 0);
    assert.ok(Date.now() - t < 15_000);
  });
});
