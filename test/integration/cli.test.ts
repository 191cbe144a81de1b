import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

/** The real CLI as a child process: `node --import tsx src/main.ts ...` from the repository root. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let dir: string;
const children = new Set<ChildProcess>();

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rcptgate-cli-'));
});
after(() => {
  for (const child of children) if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** The test runner's environment without any RCPTGATE_* variable, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RCPTGATE_')) env[k] = v;
  return { ...env, ...extra };
}

function start(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion; a run that hangs is killed and reported as such. */
function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = start(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const killer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const show = (r: Run): string => `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

function writeConfig(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** A loopback port nothing listens on: bind port 0, note the port, close. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('rcptgate check', () => {
  it('prints one tab-separated line per address and exits 1 when one is unknown', async () => {
    const r = await run(['check', 'alice@example.com', 'nobody@example.com']);
    assert.equal(r.code, 1, show(r));
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, show(r));
    const [alice, nobody] = lines.map((l) => l.split('\t'));
    assert.deepEqual(alice!.slice(0, 2), ['alice@example.com', 'valid']);
    assert.match(alice![2]!, /alice@example\.com/);
    assert.deepEqual(nobody!.slice(0, 2), ['nobody@example.com', 'unknown']);
    assert.equal(alice!.length, 3);
    assert.equal(nobody!.length, 3);
  });

  it('exits 0 when every address is valid (aliases, sub-addresses, case)', async () => {
    const r = await run(['check', 'sales@example.com', 'Alice+news@Example.COM', 'carol@example.org']);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(
      r.stdout.trimEnd().split('\n').map((l) => l.split('\t')[1]),
      ['valid', 'valid', 'valid'],
    );
  });

  it('answers unknown for the disabled example user and not_ours for a foreign domain (exit 1)', async () => {
    const r = await run(['check', 'mallory@example.com', 'someone@elsewhere.example']);
    assert.equal(r.code, 1, show(r));
    assert.deepEqual(
      r.stdout.trimEnd().split('\n').map((l) => l.split('\t')[1]),
      ['unknown', 'not_ours'],
    );
  });

  it('exits 64 for an invalid address, also next to unknown ones', async () => {
    const r = await run(['check', 'nobody@example.com', 'not-an-address']);
    assert.equal(r.code, 64, show(r));
    assert.match(r.stdout, /^not-an-address\tinvalid\t.+$/m);
  });

  it('exits 64 for bad usage', async () => {
    for (const args of [['check'], ['frobnicate'], [], ['check', '--no-such-option', 'a@example.com'], ['config'], ['serve', 'extra']]) {
      const r = await run(args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, /Usage/, args.join(' '));
    }
  });

  it('exits 75 when the LDAP directory cannot be reached', async () => {
    const port = await closedPort();
    const config = writeConfig(
      'ldap-down.yaml',
      [
        'domains: [example.com]',
        'directory:',
        '  kind: ldap',
        '  ldap:',
        `    urls: ["ldap://127.0.0.1:${port}"]`,
        '    baseDN: "dc=example,dc=com"',
        '    timeout: "1s"',
        '',
      ].join('\n'),
    );
    const r = await run(['check', '--config', config, 'alice@example.com', 'nobody@example.com']);
    assert.equal(r.code, 75, show(r));
    for (const line of r.stdout.trimEnd().split('\n')) assert.equal(line.split('\t')[1], 'tempfail', show(r));
  });

  it('answers always-valid local parts even with the directory unreachable', async () => {
    const port = await closedPort();
    const config = writeConfig(
      'ldap-down-postmaster.yaml',
      `domains: [example.com]\ndirectory: { kind: ldap, ldap: { urls: ["ldap://127.0.0.1:${port}"], timeout: "1s" } }\n`,
    );
    const r = await run(['check', '--config', config, 'postmaster@example.com']);
    assert.equal(r.code, 0, show(r));
  });

  it('exits 78 for a bad configuration', async () => {
    const config = writeConfig('bad-check.yaml', 'cache: { positiveTtl: "forever" }\n');
    const r = await run(['check', '--config', config, 'alice@example.com']);
    assert.equal(r.code, 78, show(r));
    assert.match(r.stderr, /cache\.positiveTtl/);
    assert.equal(r.stdout, '');
  });

  it('exits 78 for a missing config file and for an unknown RCPTGATE_ variable', async () => {
    const missing = await run(['check', '--config', join(dir, 'nope.yaml'), 'alice@example.com']);
    assert.equal(missing.code, 78, show(missing));
    const env = await run(['check', 'alice@example.com'], { RCPTGATE_CACHE_POSITIVE_TTTL: '1h' });
    assert.equal(env.code, 78, show(env));
    assert.match(env.stderr, /RCPTGATE_CACHE_POSITIVE_TTTL/);
  });

  it('exits 78 when the configured LDIF file does not exist', async () => {
    const config = writeConfig('no-ldif.yaml', `directory: { ldif: { path: ${JSON.stringify(join(dir, 'missing.ldif'))} } }\n`);
    const r = await run(['check', '--config', config, 'alice@example.com']);
    assert.equal(r.code, 78, show(r));
    assert.match(r.stderr, /missing\.ldif/);
  });

  it('answers from a configured LDIF file, serving only its domains', async () => {
    const ldif = join(dir, 'own.ldif');
    writeFileSync(ldif, 'dn: uid=zed,dc=test\nmail: zed@test.example\n');
    const config = writeConfig('own-ldif.yaml', `directory: { ldif: { path: ${JSON.stringify(ldif)} } }\n`);
    const r = await run(['check', '--config', config, 'zed@test.example', 'alice@example.com']);
    assert.equal(r.code, 1, show(r));
    assert.deepEqual(
      r.stdout.trimEnd().split('\n').map((l) => l.split('\t')[1]),
      ['valid', 'not_ours'],
    );
  });

  it('reads the config named by RCPTGATE_CONFIG', async () => {
    const config = writeConfig('delim.yaml', 'recipientDelimiter: ""\n');
    const r = await run(['check', 'alice+tag@example.com'], { RCPTGATE_CONFIG: config });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /\tunknown\t/);
  });
});

describe('rcptgate config check', () => {
  it('lists all three mistakes by key path and exits 78', async () => {
    const config = writeConfig(
      'three.yaml',
      ['listen:', '  http: "nowhere"', 'cache:', '  negativeTtl: "5 minutes"', 'directory:', '  ldap:', '    poolSise: 4', ''].join('\n'),
    );
    const r = await run(['config', 'check', '--config', config]);
    assert.equal(r.code, 78, show(r));
    assert.match(r.stderr, /3 configuration problems/);
    for (const path of ['listen.http', 'cache.negativeTtl', 'directory.ldap.poolSise']) assert.match(r.stderr, new RegExp(`^\\s+${path.replace(/\./g, '\\.')}: `, 'm'));
  });

  it('reports a YAML syntax error and exits 78', async () => {
    const r = await run(['config', 'check', '--config', writeConfig('syntax.yaml', 'listen: [\n')]);
    assert.equal(r.code, 78, show(r));
    assert.match(r.stderr, /YAML syntax error/);
  });

  it('prints the effective config and exits 0 for a good one', async () => {
    const config = writeConfig('good.yaml', 'domains: [example.com]\ncache: { positiveTtl: "2h" }\n');
    const r = await run(['config', 'check', '--config', config], { RCPTGATE_LOG_LEVEL: 'debug' });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /positiveTtl: 2h/);
    assert.match(r.stdout, /negativeTtl: 5m/);
    assert.match(r.stdout, /level: debug/);
  });

  it('refuses a password in an LDAP URL, naming the key and where credentials go, never echoing it', async () => {
    const config = writeConfig(
      'userinfo.yaml',
      ['domains: [example.com]', 'directory:', '  kind: ldap', '  ldap:', '    urls: ["ldap://cn=admin:Hunter2-in-url@ldap.example:389"]', ''].join('\n'),
    );
    const r = await run(['config', 'check', '--config', config]);
    assert.equal(r.code, 78, show(r));
    assert.match(r.stderr, /^\s+directory\.ldap\.urls\.0: credentials in the URL are refused: .*directory\.ldap\.bindDN.*directory\.ldap\.bindPasswordFile/m);
    assert.doesNotMatch(r.stdout + r.stderr, /Hunter2|cn=admin/);
    const viaEnv = await run(['config', 'check'], { RCPTGATE_DIRECTORY_LDAP_URLS: 'ldaps://u:Hunter2-in-url@ldap.example' });
    assert.equal(viaEnv.code, 78, show(viaEnv));
    assert.match(viaEnv.stderr, /directory\.ldap\.urls\.0: credentials in the URL/);
    assert.doesNotMatch(viaEnv.stdout + viaEnv.stderr, /Hunter2/);
  });

  it('warns on stderr about a lookup API exposed without a token, and still exits 0', async () => {
    const config = writeConfig('exposed.yaml', 'listen: { http: "0.0.0.0:8080" }\nhttp: { lookupAllowFrom: ["0.0.0.0/0"] }\n');
    const r = await run(['config', 'check', '--config', config]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /^warning: http\.lookupAllowFrom: the lookup API answers 0\.0\.0\.0\/0 without a token/m);
    assert.match(r.stdout, /lookupAllowFrom:\n\s+- 0\.0\.0\.0\/0/, 'stdout stays the effective config');
    const quiet = await run(['config', 'check']);
    assert.equal(quiet.stderr, '', 'the loopback default warns about nothing');
  });

  it('rejects what serve would: a bindDN without a password and a missing caFile, both listed, exit 78', async () => {
    const config = writeConfig(
      'secrets.yaml',
      [
        'domains: [example.com]',
        'directory:',
        '  kind: ldap',
        '  ldap:',
        '    urls: ["ldap://127.0.0.1:1"]',
        '    bindDN: "cn=rcptgate,dc=example,dc=com"',
        `    tls: { caFile: "${join(dir, 'no-such-ca.pem')}" }`,
        '',
      ].join('\n'),
    );
    const r = await run(['config', 'check', '--config', config]);
    assert.equal(r.code, 78, show(r));
    assert.match(r.stderr, /^\s+directory\.ldap\.bindPasswordFile: bindDN is set but no bind password/m);
    assert.match(r.stderr, /^\s+directory\.ldap\.tls\.caFile: cannot read/m);
    const serve = await run(['check', '--config', config, 'alice@example.com']);
    assert.equal(serve.code, 78, show(serve));
    const withPassword = await run(['config', 'check', '--config', config], { RCPTGATE_LDAP_BIND_PASSWORD: 'secret' });
    assert.doesNotMatch(withPassword.stderr, /bindPasswordFile/);
  });

  it('validates the built-in default without a config file', async () => {
    const r = await run(['config', 'check']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /built-in defaults/);
  });
});

describe('rcptgate --help and --version', () => {
  it('prints the help and exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['check', '--help'], ['serve', '--help'], ['config', '--help']]) {
      const r = await run(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stdout, /Usage/, args.join(' '));
    }
  });

  it('prints the package version and exits 0', async () => {
    for (const args of [['--version'], ['-V'], ['check', '--version']]) {
      const r = await run(args);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout.trim(), VERSION);
    }
  });
});

describe('rcptgate serve', () => {
  it('starts on the example directory, says so, answers /healthz, and exits 0 on SIGTERM', async () => {
    const child = start(['serve'], {
      RCPTGATE_LISTEN_HTTP: '127.0.0.1:0',
      RCPTGATE_LISTEN_SOCKETMAP: '127.0.0.1:0',
      RCPTGATE_LISTEN_POLICY: '127.0.0.1:0',
      RCPTGATE_LISTEN_MILTER: '127.0.0.1:0',
      RCPTGATE_LISTEN_METRICS: '127.0.0.1:0',
    });
    const lines: Array<Record<string, unknown>> = [];
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const seen = (pred: (l: Record<string, unknown>) => boolean) => lines.some(pred);
    const waitFor = (what: string, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${what}" log line in 30 s; stderr:\n${stderr}\nstdout lines:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), 30_000);
        const check = () => {
          const hit = lines.find(pred);
          if (hit) {
            clearTimeout(timer);
            resolve(hit);
          }
        };
        child.stdout!.on('data', check);
        void exited.then(() => {
          clearTimeout(timer);
          if (!lines.some(pred)) reject(new Error(`serve exited before logging "${what}"; stderr:\n${stderr}`));
        });
        check();
      });
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buffer += d;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          lines.push(JSON.parse(text) as Record<string, unknown>);
        } catch {
          lines.push({ msg: text, notJson: true });
        }
      }
    });

    const example = await waitFor('example directory', (l) => /example directory/.test(String(l.msg)));
    assert.match(String(example.msg), /examples\/directory\.ldif/);
    assert.match(String(example.msg), /ldap/i, 'the line says how to point it at LDAP');
    const notice = await waitFor('loopback notice', (l) => /loopback only/.test(String(l.msg)));
    assert.match(String(notice.msg), /RCPTGATE_LISTEN_SOCKETMAP=0\.0\.0\.0:9465/, 'the line says how to open the listeners');
    const listening = await waitFor('http listening', (l) => l.msg === 'listening' && l.frontend === 'http');
    const port = Number(String(listening.address).split(':').pop());
    assert.ok(port > 0, JSON.stringify(listening));
    const status = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/healthz' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    assert.equal(status, 200);
    assert.equal(seen((l) => l.notJson === true), false, 'every stdout line is JSON');

    process.kill(child.pid!, 'SIGTERM');
    const { code, signal } = await exited;
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, stderr);
  });
});
