import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });
}

describe('rcptgate serve as a real process', () => {
  let dir: string;
  let ldap: Slapd;
  const procs: ServeProcess[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-lifecycle-'));
    ldap = await startSlapd();
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await ldap?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('SIGTERM lets every in-flight request finish, refuses new connections, and exits 0', async () => {
    const cfg = path.join(dir, 'ldap.yaml');
    await writeFile(
      cfg,
      [
        'listen: { http: "127.0.0.1:0", socketmap: "127.0.0.1:0", policy: null, milter: null, metrics: null }',
        'domains: [example.com]',
        'directory:',
        '  kind: ldap',
        `  ldap: { urls: ["${ldap.url}"], baseDN: "${ldap.baseDN}", bindDN: "${ldap.serviceDN}", timeout: "8s" }`,
        'server: { drainTimeout: "9s" }',
        'log: { level: info }',
      ].join('\n'),
    );
    const p = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    procs.push(p);
    const httpPort = await listenerPort(p, 'http');
    const smPort = await listenerPort(p, 'socketmap');
    await p.waitForLog((l) => l.msg === 'directory is answering');

    // Freeze the directory so lookups stay in flight, uncached.
    await ldap.pause();
    const users = ['alice', 'bob', 'user5', 'first-last', 'user1', 'user2', 'user3', 'user4'];
    const httpInFlight = users.map((u) => fetch(`http://127.0.0.1:${httpPort}/v1/recipients/${u}@example.com`).then(async (r) => ({ status: r.status, body: (await r.json()) as { verdict: string } })));
    const sm = await SocketmapClient.connect(smPort);
    const smInFlight = sm.query('recipients', 'bob@example.com');
    await new Promise((r) => setTimeout(r, 300));

    p.child.kill('SIGTERM');
    await p.waitForLog((l) => l.msg === 'draining and stopping');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await refused(httpPort), true, 'the HTTP listener still accepts connections while draining');
    assert.equal(await refused(smPort), true, 'the socketmap listener still accepts connections while draining');

    ldap.resume();
    const answers = await Promise.all(httpInFlight);
    for (const a of answers) assert.deepEqual([a.status, a.body.verdict], [200, 'valid']);
    assert.equal(await smInFlight, 'OK bob@example.com');
    assert.equal(await p.exited, 0);
    sm.close();
  });

  test('SIGHUP reloads the config and flushes the cache without dropping connections', async () => {
    const ldif = path.join(dir, 'dir.ldif');
    const entry = (uid: string) => `dn: uid=${uid},dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@example.com\n\n`;
    await writeFile(ldif, entry('alice'));
    const cfg = path.join(dir, 'ldif.yaml');
    const write = (extra: string) =>
      writeFile(cfg, ['listen: { http: null, socketmap: "127.0.0.1:0", policy: null, milter: null, metrics: null }', `directory: { kind: ldif, ldif: { path: "${ldif}" } }`, extra].join('\n'));
    await write('');
    const p = startServe(['--config', cfg]);
    procs.push(p);
    const port = await listenerPort(p, 'socketmap');
    const sm = await SocketmapClient.connect(port);
    assert.equal(await sm.query('recipients', 'alice@example.com'), 'OK alice@example.com');
    assert.equal(await sm.query('recipients', 'newbie@example.com'), 'NOTFOUND ');
    assert.equal(await sm.query('recipients', 'anyone@legacy.example'), 'NOTFOUND ');

    await writeFile(ldif, entry('alice') + entry('newbie'));
    await write('catchAllDomains: [legacy.example]');
    p.child.kill('SIGHUP');
    await p.waitForLog((l) => l.msg === 'configuration reloaded, cache flushed');

    // Same connection: the negative answer for newbie was flushed; the new rule applies.
    assert.equal(await sm.query('recipients', 'newbie@example.com'), 'OK newbie@example.com');
    assert.equal(await sm.query('recipients', 'anyone@legacy.example'), 'OK anyone@legacy.example');

    // A broken config is refused and the running one kept.
    await write('cache: { positiveTtl: "forever" }');
    p.child.kill('SIGHUP');
    await p.waitForLog((l) => l.msg === 'reload failed; keeping the running configuration');
    assert.equal(await sm.query('recipients', 'anyone@legacy.example'), 'OK anyone@legacy.example');

    sm.close();
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
  });
});
