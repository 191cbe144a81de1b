/**
 * The real CLI against operator mistakes that only show once files are read or sockets bound:
 * each gives one line naming the key and the problem, never a stack trace.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { REPO_ROOT, startServe } from '../helpers/process.js';

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

/** Runs the real CLI to completion. */
function cli(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // A command that should have exited but serves on is stopped (SIGTERM) and fails its test.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('config check: the LDIF directory', () => {
  it('refuses what serve refuses (missing, malformed or empty file), naming directory.ldif.path, with exit 78', async () => {
    const malformed = await configFile('malformed.ldif', 'dn: uid=x,dc=example,dc=com\nno colon here\n');
    const empty = await configFile('empty.ldif', '');
    const disabledOnly = await configFile('disabled.ldif', 'dn: uid=x,dc=example,dc=com\nmail: x@example.com\naccountStatus: disabled\n');
    for (const path of [join(dir, 'missing.ldif'), malformed, empty, disabledOnly]) {
      const config = await configFile('ldif.yaml', `domains: [example.com]\ndirectory: { ldif: { path: "${path}" } }\n`);
      const check = await cli(['config', 'check', '--config', config]);
      assert.equal(check.code, 78, `${path}: ${check.stdout}${check.stderr}`);
      assert.match(check.stderr, /directory\.ldif\.path: /, path);
      assert.doesNotMatch(check.stderr, /\n\s+at /, 'no stack trace');
      const serve = await cli(['check', '--config', config, 'x@example.com']);
      assert.equal(serve.code, 78, `check (as serve) refuses it too: ${serve.stdout}`);
    }
  });

  it('still accepts the bundled example directory and an LDIF file of one entry', async () => {
    assert.equal((await cli(['config', 'check'])).code, 0);
    const one = await configFile('one.ldif', 'dn: uid=x,dc=example,dc=com\nmail: x@example.com\n');
    const config = await configFile('one.yaml', `directory: { ldif: { path: "${one}" } }\n`);
    assert.equal((await cli(['config', 'check', '--config', config])).code, 0);
  });
});

describe('serve: SIGHUP with settings read only at start', () => {
  it('says which changed keys keep their running value (harvest limits) instead of only "reloaded"; a token file rewritten in place is followed, so not named', async () => {
    const token = await configFile('admin-token', 'old-token\n');
    const text = (maxUnknown: number) =>
      'listen: { http: "127.0.0.1:0", metrics: null, policy: null, milter: null, socketmap: null }\n' +
      `admin: { tokenFile: "${token}" }\npolicy: { harvest: { maxUnknown: ${maxUnknown} } }\n`;
    const config = await configFile('reload.yaml', text(20));
    const serve = startServe(['--config', config], cleanEnv());
    try {
      await serve.waitForLog((l) => l.msg === 'listening' && l.listener === 'http');
      await writeFile(token, 'new-token\n');
      await writeFile(config, text(2));
      serve.child.kill('SIGHUP');
      await serve.waitForLog((l) => /configuration reloaded/.test(String(l.msg)));
      const warned = serve.logs.filter((l) => l.level === 40 && /changes only on restart/.test(String(l.msg))).map((l) => l.key);
      assert.deepEqual(warned.sort(), ['policy']);
    } finally {
      await serve.kill();
    }
  });
});

describe('sync: configuration problems', () => {
  it('an unreadable bind password file is reported by key with exit 78, not as a stack trace (exit 70)', async () => {
    const config = await configFile(
      'sync-nopw.yaml',
      [
        'domains: [example.com]',
        'directory:',
        '  kind: ldap',
        '  ldap: { urls: ["ldap://127.0.0.1:1"], baseDN: "dc=example,dc=com", bindDN: "cn=reader,dc=example,dc=com",',
        `          bindPasswordFile: "${join(dir, 'no-such-password')}" }`,
        `sync: { enabled: true, snapshotPath: "${join(dir, 'snapshot.bin')}" }`,
        '',
      ].join('\n'),
    );
    const r = await cli(['sync', '--config', config]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /directory\.ldap\.bindPasswordFile: cannot read the bind password file/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('sync without sync.enabled is a configuration error (78), not a passing failure (75) a cron job would retry for ever', async () => {
    const r = await cli(['sync']);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /sync\.enabled/);
  });
});

describe('serve: nothing to serve', () => {
  it('refuses to run with every listener disabled (exit 78) instead of idling with no port open', async () => {
    const config = await configFile('no-listeners.yaml', 'listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null }\n');
    const r = await cli(['serve', '--config', config]);
    assert.equal(r.code, 78, r.stdout + r.stderr);
    assert.match(r.stderr, /every listener is disabled/);
  });
});

/** True once the process has a handler for SIGHUP (Linux: bit 0 of SigCgt in /proc/PID/status). */
async function catchesSighup(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
  return m !== null && (BigInt(`0x${m[1]}`) & 1n) === 1n;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
}

describe('serve: SIGHUP while starting', () => {
  it('is kept for when the listeners are up instead of killing the process (Node exits on an unhandled SIGHUP)', async () => {
    // A directory large enough that the start takes a while after the config is read.
    const entries: string[] = [];
    for (let i = 0; i < 150_000; i++) entries.push(`dn: uid=u${i},dc=example,dc=com\nmail: u${i}@example.com\n`);
    const ldif = await configFile('large.ldif', entries.join('\n'));
    const holder = createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as { port: number }).port;
    await new Promise((r) => holder.close(r));
    const config = await configFile(
      'hup-start.yaml',
      `listen: { http: "127.0.0.1:${port}", metrics: null, policy: null, milter: null, socketmap: null }\ndirectory: { ldif: { path: "${ldif}" } }\n`,
    );
    const serve = startServe(['--config', config], cleanEnv());
    try {
      const deadline = Date.now() + 20_000;
      while (!(await catchesSighup(serve.child.pid!))) {
        assert.ok(Date.now() < deadline, 'rcptgate never installed a SIGHUP handler');
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(await portOpen(port), false, 'the SIGHUP handler must exist before the listeners are up');
      serve.child.kill('SIGHUP');
      await serve.waitForLog((l) => /configuration reloaded/.test(String(l.msg)), 30_000);
      assert.equal(await portOpen(port), true, 'still serving');
    } finally {
      await serve.kill();
    }
  });
});
