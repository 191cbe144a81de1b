/**
 * The real `rcptgate serve` with a FIFO where its snapshot or answer file should be (a path
 * mixed up with a log pipe, a file replaced while the service was down). It used to hang before
 * opening any listener, without a log line, waiting for a writer: a supervisor saw a live
 * process that answered nobody. It now exits 78 at once, naming the key. The same for every
 * other file the config names (the config itself, secrets, CA, LDIF, address lists), and for a
 * SIGHUP reload that meets one: the running service must keep answering.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXAMPLE_LDIF } from '../../src/directory/ldif.js';
import { startServe, type ServeProcess } from '../helpers/process.js';
import { requireTools } from '../helpers/slapd.js';

let dir: string;
const fifos: string[] = [];
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-ops2-start-'));
});
after(async () => {
  // Releases a reader still blocked in open(), should the fix regress.
  for (const f of fifos) await open(f, constants.O_WRONLY | constants.O_NONBLOCK).then((fh) => fh.close(), () => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('serve with a FIFO at a file it reads at start', () => {
  for (const key of ['sync.snapshotPath', 'cache.persistPath'] as const) {
    test(`${key}: exits 78 naming the key instead of hanging`, async () => {
      const { mkfifo } = requireTools('mkfifo');
      const pipe = path.join(dir, key);
      execFileSync(mkfifo!, [pipe]);
      fifos.push(pipe);
      const file = path.join(dir, `${key}.yaml`);
      await writeFile(
        file,
        JSON.stringify({
          listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
          domains: ['example.com'],
          directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com', timeout: '1s' } },
          sync: { enabled: true, snapshotPath: key === 'sync.snapshotPath' ? pipe : path.join(dir, 'snapshot') },
          cache: { persistPath: key === 'cache.persistPath' ? pipe : null },
        }),
      );
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
      const serve = startServe(['--config', file], env);
      try {
        const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000).unref())]);
        assert.equal(code, 78, `serve: ${String(code)}; logs: ${JSON.stringify(serve.logs.slice(-3))}`);
        const fatal = serve.logs.find((l) => l.level === 60);
        assert.match(JSON.stringify(fatal), new RegExp(`${key.replace('.', '\\.')}.*is a FIFO, not a regular file`));
      } finally {
        await serve.kill();
      }
    });
  }
});

function mkfifo(name: string): string {
  const { mkfifo: bin } = requireTools('mkfifo');
  const pipe = path.join(dir, name);
  execFileSync(bin!, [pipe]);
  fifos.push(pipe);
  return pipe;
}

const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));

/** The exit code within 20 s, or a text saying it still runs (the failure: blocked on the FIFO). */
async function exitCode(serve: ServeProcess): Promise<number | string> {
  return Promise.race([serve.exited, new Promise<string>((r) => setTimeout(() => r('still running after 20 s'), 20_000).unref())]);
}

describe('serve with a FIFO or a device at a file the config names', () => {
  const ldifDirectory = { kind: 'ldif', ldif: { path: EXAMPLE_LDIF } };
  const ldapDirectory = (ldap: Record<string, unknown>) => ({ kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com', timeout: '1s', ...ldap } });
  const cases: Array<[string, (p: string) => Record<string, unknown>]> = [
    ['directory.ldif.path', (p) => ({ directory: { kind: 'ldif', ldif: { path: p } } })],
    ['directory.ldap.tls.caFile', (p) => ({ directory: ldapDirectory({ tls: { caFile: p } }) })],
    ['directory.ldap.bindPasswordFile', (p) => ({ directory: ldapDirectory({ bindDN: 'cn=reader,dc=example,dc=com', bindPasswordFile: p }) })],
    ['admin.tokenFile', (p) => ({ directory: ldifDirectory, admin: { tokenFile: p } })],
    ['http.lookupTokenFile', (p) => ({ directory: ldifDirectory, http: { lookupTokenFile: p } })],
    ['overrides.allowFile', (p) => ({ directory: ldifDirectory, overrides: { allowFile: p } })],
    ['overrides.denyFile', (p) => ({ directory: ldifDirectory, overrides: { denyFile: p } })],
  ];
  for (const [key, settings] of cases) {
    for (const kind of ['FIFO', 'device'] as const) {
      test(`${key} as a ${kind}: exits 78 naming the key and what the path is, instead of ${kind === 'FIFO' ? 'hanging' : 'reading for ever'}`, async () => {
        // Named apart from the key: the message must name the key itself, not echo the path.
        const target = kind === 'FIFO' ? mkfifo(`fifo-${cases.findIndex(([k]) => k === key)}`) : '/dev/zero';
        const file = path.join(dir, `${key}-${kind}.yaml`);
        await writeFile(file, JSON.stringify({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, domains: ['example.com'], ...settings(target) }));
        const serve = startServe(['--config', file], cleanEnv());
        try {
          const code = await exitCode(serve);
          const said = JSON.stringify(serve.logs) + serve.stderr;
          assert.equal(code, 78, `serve: ${String(code)}; ${said.slice(-600)}`);
          assert.match(said, new RegExp(`${key.replaceAll('.', '\\.')}.*not a regular file: a ${kind === 'FIFO' ? 'FIFO' : 'device'}`), said.slice(-600));
        } finally {
          await serve.kill();
        }
      });
    }
  }

  test('--config naming a FIFO: exits 78 naming the file', async () => {
    const serve = startServe(['--config', mkfifo('config.yaml')], cleanEnv());
    try {
      const code = await exitCode(serve);
      const said = JSON.stringify(serve.logs) + serve.stderr;
      assert.equal(code, 78, `serve: ${String(code)}; ${said.slice(-600)}`);
      assert.match(said, /cannot read config file .*config\.yaml: not a regular file: a FIFO/);
    } finally {
      await serve.kill();
    }
  });

  test('a reload that meets a FIFO at overrides.denyFile is refused and the service goes on answering', async () => {
    const deny = path.join(dir, 'deny-reload');
    await writeFile(deny, 'bob@example.com\n');
    const ldif = path.join(dir, 'reload.ldif');
    await copyFile(EXAMPLE_LDIF, ldif);
    const file = path.join(dir, 'reload.yaml');
    await writeFile(file, JSON.stringify({ listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null }, domains: ['example.com'], directory: { kind: 'ldif', ldif: { path: ldif } }, overrides: { denyFile: deny } }));
    const serve = startServe(['--config', file], cleanEnv());
    try {
      const listening = await serve.waitForLog((l) => l.msg === 'listening' && l.listener === 'http');
      const ask = async (address: string) => ((await (await fetch(`http://${String(listening.address)}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
      assert.equal(await ask('bob@example.com'), 'unknown', 'denied by the list');
      await rm(deny);
      mkfifo('deny-reload');
      serve.child.kill('SIGHUP');
      const failed = await serve.waitForLog((l) => /reload failed/.test(String(l.msg)));
      assert.match(JSON.stringify(failed), /not a regular file: a FIFO/);
      assert.equal(await ask('alice@example.com'), 'valid', 'still answering after the refused reload');
      assert.equal(await ask('bob@example.com'), 'unknown', 'the running deny list is kept');
    } finally {
      await serve.kill();
    }
  });
});
