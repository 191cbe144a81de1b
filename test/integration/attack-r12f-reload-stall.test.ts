/**
 * A SIGHUP with a large configuration (a hosting provider's backup MX: tens of thousands of
 * domains with rules). The reload parsed the YAML file on the thread that answers every front
 * end: with 30,000 domains no socketmap, policy, milter or HTTP lookup was answered for seconds
 * (measured 2 to 7 s for 20,000 on a loaded machine), and an HTTP client reusing its connection
 * past the keep-alive timeout had it reset (ECONNRESET) once the loop came back. The reload now
 * reads, parses and checks the file on a worker thread. The real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

const DOMAINS = 30_000;
/** Far above an answer from memory on a loaded machine, far below the stall (seconds). */
const LONGEST_MS = 1_500;

function config(extra: string): string {
  const lines = ['listen: { http: "127.0.0.1:0", socketmap: "127.0.0.1:0", policy: null, milter: null, metrics: null }', 'domains:', '  example.com: {}'];
  for (let i = 0; i < DOMAINS; i++) lines.push(`  d${i}.example.net: { catchAll: false, mode: enforce, alwaysValid: [postmaster, abuse] }`);
  lines.push(`  ${extra}: { catchAll: true }`);
  return lines.join('\n') + '\n';
}

describe('a reload of a large configuration (real serve)', { timeout: 240_000 }, () => {
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r12f-stall-'));
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('socketmap and HTTP keep answering while the file is parsed, and the reload applies', async () => {
    const cfg = path.join(dir, 'rcptgate.yaml');
    await writeFile(cfg, config('before.example'));
    serve = startServe(['--config', cfg]);
    const socketmapPort = await listenerPort(serve, 'socketmap');
    const httpPort = await listenerPort(serve, 'http');
    const socketmap = await SocketmapClient.connect(socketmapPort);
    assert.match(await socketmap.query('recipients', 'alice@example.com'), /^OK /);

    // Written well before the signal, so the reload does not wait for the file to settle.
    await writeFile(cfg, config('after.example'));
    await new Promise((r) => setTimeout(r, 600));
    let reloading = true;
    const reloaded = serve.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded'), 120_000).finally(() => (reloading = false));
    const longest = { socketmap: 0, http: 0 };
    const errors: string[] = [];
    const ask = async (kind: 'socketmap' | 'http', once: () => Promise<void>) => {
      while (reloading) {
        const t = performance.now();
        try {
          await once();
        } catch (err) {
          errors.push(`${kind}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
        }
        longest[kind] = Math.max(longest[kind], performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    serve.child.kill('SIGHUP');
    await Promise.all([
      ask('socketmap', async () => assert.match(await socketmap.query('recipients', 'alice@example.com'), /^OK /)),
      // fetch keeps its connection alive between requests, as HTTP clients do.
      ask('http', async () => assert.equal((await fetch(`http://127.0.0.1:${httpPort}/v1/recipients/alice@example.com`)).status, 200)),
      reloaded,
    ]);
    socketmap.close();
    assert.deepEqual(errors, []);
    assert.ok(longest.socketmap < LONGEST_MS && longest.http < LONGEST_MS, `longest answers during the reload: socketmap ${Math.round(longest.socketmap)} ms, http ${Math.round(longest.http)} ms`);
    // The new file is in force: its catch-all domain answers any local part.
    const after = await fetch(`http://127.0.0.1:${httpPort}/v1/recipients/anyone@after.example`);
    assert.equal(((await after.json()) as { verdict: string }).verdict, 'valid');
  });

  test('a large file with mistakes is refused as a small one is: every problem named, the running configuration kept', async () => {
    assert.ok(serve, 'the service of the test before runs');
    const cfg = path.join(dir, 'rcptgate.yaml');
    const httpPort = await listenerPort(serve, 'http');
    await writeFile(cfg, config('after.example').replace('  example.com: {}', '  example.com: { catchAll: maybe }') + 'cache: { maxEntries: -1 }\n');
    await new Promise((r) => setTimeout(r, 600));
    const failed = serve.waitForLog((l) => l.msg === 'reload failed; keeping the running configuration', 120_000);
    serve.child.kill('SIGHUP');
    const line = (await failed) as { err?: { message?: string } };
    assert.match(String(line.err?.message), /domains\.example\.com\.catchAll/);
    assert.match(String(line.err?.message), /cache\.maxEntries/);
    const still = await fetch(`http://127.0.0.1:${httpPort}/v1/recipients/anyone@after.example`);
    assert.equal(((await still.json()) as { verdict: string }).verdict, 'valid');
    await writeFile(cfg, '{ unclosed: [\n' + config('x.example'));
    await new Promise((r) => setTimeout(r, 600));
    const syntax = serve.waitForLog((l) => l.msg === 'reload failed; keeping the running configuration' && /YAML syntax error/.test(String((l.err as { message?: string })?.message)), 120_000);
    serve.child.kill('SIGHUP');
    await syntax;
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/v1/recipients/alice@example.com`)).status, 200);
  });
});
