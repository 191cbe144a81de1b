/**
 * DNS rebinding against the lookup API's token-free loopback access, under the real
 * `rcptgate serve` (bundled example directory) on a dual-stack listener.
 *
 * A browser on the MX host that opens a hostile page is made to send requests to 127.0.0.1
 * under the attacker's own name (its DNS answer switched to 127.0.0.1); the page then reads the
 * answers as same-origin. Such requests come from loopback with `Host: attacker.example:<port>`.
 * They were answered like curl's: every verdict, /metrics and the status page's counters, a
 * harvest oracle. Now a token-free loopback request must name the server by an IP literal,
 * localhost, the host's own name, a dotless name or a Kubernetes Service name; the MTAs' and scripts' usual clients (127.0.0.1, localhost,
 * [::1], a token from anywhere, a Kubernetes Service name from an allowed pod address) still work.
 * The "pod" is this host's non-loopback address, put in http.lookupAllowFrom.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';

/** An address of this host that is not loopback (IPv4 first); the test fails loudly without one. */
function outsideAddress(): string {
  const all = Object.values(os.networkInterfaces()).flat().filter((i) => i !== undefined && !i.internal && !i.address.startsWith('fe80'));
  const found = all.find((i) => i!.family === 'IPv4') ?? all[0];
  assert.ok(found, 'this test needs a non-loopback interface address');
  return found!.address;
}

interface Answer {
  status: number;
  body: string;
}

/** One request to `address`:`port` with exactly this Host header (fetch would set its own). */
function ask(address: string, port: number, pathName: string, host: string, token?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host };
    if (token) headers['authorization'] = `Bearer ${token}`;
    const req = http.request({ host: address, port, path: pathName, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('DNS rebinding against the token-free lookup API (real serve)', () => {
  let serve: ServeProcess;
  let dir: string;
  let port: number;
  const pod = outsideAddress();
  const lookupPath = '/v1/recipients/alice@example.com';

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-rebinding-'));
    await writeFile(path.join(dir, 'lookup-token'), 'lookup-secret\n');
    const config = path.join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: '[::]:0', socketmap: null, policy: null, milter: null, metrics: null },
      http: { lookupTokenFile: path.join(dir, 'lookup-token'), lookupAllowFrom: ['127.0.0.0/8', '::1/128', pod.includes(':') ? `${pod}/128` : `${pod}/32`] },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', config]);
    port = await listenerPort(serve, 'http');
  });
  after(async () => {
    await serve?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a loopback request under a foreign name is refused 403 with a problem body; lookups, /metrics and the status counters alike', async () => {
    for (const host of [`attacker.example:${port}`, 'attacker.example', `rebind.127.0.0.1.nip.io:${port}`, `localhost.attacker.example:${port}`, `rcptgate.mail.svc.attacker.example:${port}`, `:${port}`]) {
      const a = await ask('127.0.0.1', port, lookupPath, host);
      assert.equal(a.status, 403, `Host ${host} from 127.0.0.1: ${a.body}`);
      assert.match(a.body, /DNS rebinding/);
      assert.doesNotMatch(a.body, /"verdict"/);
      const m = await ask('127.0.0.1', port, '/metrics', host);
      assert.equal(m.status, 403, `/metrics under Host ${host}`);
    }
    const v6 = await ask('::1', port, lookupPath, `attacker.example:${port}`);
    assert.equal(v6.status, 403, `from ::1: ${v6.body}`);
    const page = await ask('127.0.0.1', port, '/', `attacker.example:${port}`);
    assert.equal(page.status, 200);
    const counters = await ask('127.0.0.1', port, '/', `127.0.0.1:${port}`);
    assert.ok(counters.body.length > page.body.length, 'the status page shows its lookup counters to 127.0.0.1, not to a foreign Host');
  });

  test('the usual clients still get verdicts: IP literals, localhost, the host name, a token, a Service name from an allowed pod address', async () => {
    const ok = async (address: string, host: string, token?: string): Promise<void> => {
      const a = await ask(address, port, lookupPath, host, token);
      assert.equal(a.status, 200, `${address} with Host ${host}${token ? ' and the token' : ''}: ${a.body}`);
      assert.match(a.body, /"verdict":"valid"/);
    };
    await ok('127.0.0.1', `127.0.0.1:${port}`);
    await ok('127.0.0.1', `localhost:${port}`);
    await ok('127.0.0.1', 'LOCALHOST.');
    await ok('127.0.0.1', `[::1]:${port}`);
    await ok('::1', `[::1]:${port}`);
    await ok('::1', `localhost:${port}`);
    await ok('127.0.0.1', `${os.hostname()}:${port}`);
    await ok('127.0.0.1', `attacker.example:${port}`, 'lookup-secret');
    // A compose service or /etc/hosts alias (public DNS has no dotless names), and a Service name
    // as a service mesh's sidecar forwards it from loopback.
    await ok('127.0.0.1', `rcptgate:${port}`);
    await ok('127.0.0.1', `rcptgate.mail.svc:${port}`);
    await ok('127.0.0.1', `rcptgate.mail.svc.cluster.local:${port}`);
    await ok(pod, `rcptgate.mail.svc:${port}`);
    await ok(pod, `rcptgate.mail.svc.cluster.local:${port}`);
    const wrong = await ask('127.0.0.1', port, lookupPath, `localhost:${port}`, 'not-the-token');
    assert.equal(wrong.status, 403, 'a wrong token stays refused');
  });
});
