/**
 * SIGTERM while the directory has stopped answering (slapd SIGSTOPped: its connections open,
 * nothing heard) and lookups hang on it through the socketmap, the policy service and the HTTP API: a node being
 * drained for maintenance during a directory outage. Every lookup in flight must be answered
 * (tempfail: never unknown, never a cut connection Postfix reads as a lookup error), the answer
 * file saved, and the process gone within the drain time plus the directory's close, not held
 * up by connections to a server that never replies. With a drain time shorter than the
 * directory's timeout, the lookups still waiting at its end were cut unanswered (socketmap:
 * connection closed, policy: no action, HTTP: socket reset); they are now answered tempfail just before it.
 * Real slapd, the real CLI.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { connectFrom, policyActions, policyRequest, readUntilClose } from '../helpers/frontend-clients.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('SIGTERM with lookups hanging on a stopped directory (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd({ generatedUsers: 50 });
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13l-stopdir-'));
  });
  after(async () => {
    await serve?.kill();
    ldap?.resume();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const stopWhileStopped = async (drain: string, timeout: string, withinMs: number) => {
    const file = path.join(dir, `rcptgate-${drain}.yaml`);
    const answers = path.join(dir, `answers-${drain}`);
    await writeFile(file, JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout } },
      server: { drainTimeout: drain },
      cache: { persistPath: answers },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const smPort = await listenerPort(serve, 'socketmap');
    const httpPort = await listenerPort(serve, 'http');
    const policyPort = await listenerPort(serve, 'policy');
    const client = await SocketmapClient.connect(smPort);
    assert.match(await client.query('recipients', 'alice@example.com'), /^OK /);

    await ldap.pause();
    const sm = Array.from({ length: 5 }, (_, i) => client.query('recipients', `user${i + 1}@example.com`).catch((e: Error) => `cut: ${e.message}`));
    const http = Array.from({ length: 5 }, (_, i) =>
      fetch(`http://127.0.0.1:${httpPort}/v1/recipients/user${i + 10}@example.com`).then(async (r) => `${r.status} ${((await r.json()) as { verdict: string }).verdict}`, (e: Error) => `cut: ${e.message}`));
    const policySockets = await Promise.all([20, 21, 22].map((k) => connectFrom(policyPort).then((s) => ({ s, k }))));
    const policy = policySockets.map(({ s, k }) => {
      const read = readUntilClose(s);
      s.write(policyRequest(`user${k}@example.com`));
      return read.then((buf) => policyActions(buf).join(' ') || 'cut: no action');
    });
    await new Promise((r) => setTimeout(r, 300));
    const sent = Date.now();
    serve.child.kill('SIGTERM');

    const smReplies = await Promise.all(sm);
    const httpReplies = await Promise.all(http);
    const policyReplies = await Promise.all(policy);
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running 30 s after SIGTERM'), 30_000))]);
    const took = Date.now() - sent;
    client.close();
    for (const r of smReplies) assert.match(r, /^TEMP /, `socketmap replies: ${smReplies.join(' | ')}`);
    for (const r of policyReplies) assert.match(r, /^4\d\d /, `policy replies: ${policyReplies.join(' | ')}`);
    for (const r of httpReplies) assert.match(r, /^\d{3} tempfail$/, `HTTP replies: ${httpReplies.join(' | ')}`);
    assert.equal(code, 0, `exit; logs: ${JSON.stringify(serve.logs.filter((l) => (l.level as number) >= 40))}`);
    assert.ok(took < withinMs, `exited ${took} ms after SIGTERM`);
    assert.ok(existsSync(answers), 'the answers were saved');
    ldap.resume();
    await serve.exited;
  };

  // Drain plus the directory's close; a few seconds more on a loaded machine.
  test('directory timeout (2 s) within the drain time (6 s): answered tempfail, exit 0', () => stopWhileStopped('6s', '2s', 15_000));
  test('drain time (2 s) shorter than the directory timeout (30 s): still answered tempfail, exit 0', () => stopWhileStopped('2s', '30s', 10_000));
});
