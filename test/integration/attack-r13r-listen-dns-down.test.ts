/**
 * serve started while the resolver cannot answer (a boot where the network or the DNS server
 * comes up after the service, a resolver restarting) with a listener given by host name: the
 * bind fails with EAI_AGAIN, a failure that passes by itself. serve exited 78, the status of a
 * configuration problem, where a supervisor stops restarting (systemd's RestartPreventExitStatus=78,
 * the convention for EX_CONFIG): the MX stayed without its recipient checks after the DNS came
 * back. It now exits 75 (worth a restart), the log line still naming listen.* and the cause.
 * The built CLI in a network namespace of its own (unshare --net), where name resolution fails
 * for real with EAI_AGAIN; the directory is an LDIF file, no network needed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServeProcess } from '../helpers/process.js';
import { startDistServe } from '../helpers/r13l-dist-serve.js';
import { findTool, FIXTURE_DIR } from '../helpers/slapd.js';

describe('serve with a listener host name while DNS is down (built CLI, own network namespace)', () => {
  let dir: string;
  let serve: ServeProcess | undefined;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-dnsdown-'));
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('exits 75 (a passing failure), naming listen.http and the resolver failure', async () => {
    const unshare = findTool('unshare');
    assert.ok(unshare, 'unshare (util-linux) is required');
    assert.equal(process.getuid?.(), 0, 'runs as root, so that unshare can make a network namespace');
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify({
      listen: { http: 'mx1.rcptgate-r13r.example:8025', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldif', ldif: { path: path.join(FIXTURE_DIR, 'example.ldif') } },
    }));
    serve = startDistServe(['--config', file], {}, { prefix: [unshare, '--net'] });
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running after 60 s'), 60_000))]);
    const fatal = serve.logs.find((l) => l.level === 60) ?? {};
    assert.equal(fatal.code, 'EAI_AGAIN', JSON.stringify(serve.logs) + serve.stderr);
    assert.equal(fatal.key, 'listen.http');
    assert.match(String(fatal.msg), /listen\.http .*could not be resolved/);
    assert.equal(code, 75, JSON.stringify(fatal));
  });
});
