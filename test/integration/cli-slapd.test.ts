import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { REPO_ROOT } from '../helpers/process.js';

function check(config: string, addresses: string[]): Promise<{ code: number | null; lines: string[][] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'check', '--config', config, ...addresses], {
      cwd: REPO_ROOT,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_'))),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('close', (code) => resolve({ code, lines: out.trim().split('\n').map((l) => l.split('\t')) }));
  });
}

describe('rcptgate check against a real slapd', () => {
  let ldap: Slapd;
  let dir: string;
  let config: string;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-cli-slapd-'));
    const password = path.join(dir, 'password');
    await writeFile(password, `${ldap.servicePassword}\n`, { mode: 0o600 });
    config = path.join(dir, 'rcptgate.yaml');
    await writeFile(
      config,
      [
        'domains: [example.com, example.org]',
        'directory:',
        '  kind: ldap',
        '  ldap:',
        `    urls: ["${ldap.url}"]`,
        `    baseDN: "${ldap.baseDN}"`,
        `    bindDN: "${ldap.serviceDN}"`,
        `    bindPasswordFile: "${password}"`,
        '    timeout: "2s"',
      ].join('\n'),
    );
  });
  after(async () => {
    await ldap?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('gives the directory\'s verdicts, one line per address, and exits 1 for an unknown', async () => {
    const r = await check(config, ['Alice+news@Example.com', 'ally@example.com', 'staff@example.com', 'nobody@example.com', 'dave@example.org', 'x@elsewhere.example']);
    assert.deepEqual(
      r.lines.map((l) => [l[0], l[1]]),
      [
        ['Alice+news@Example.com', 'valid'],
        ['ally@example.com', 'valid'],
        ['staff@example.com', 'valid'],
        ['nobody@example.com', 'unknown'],
        ['dave@example.org', 'valid'],
        ['x@elsewhere.example', 'not_ours'],
      ],
    );
    assert.match(r.lines[0]![2]!, /^alice@example\.com/);
    assert.equal(r.code, 1);
  });

  test('with slapd stopped, uncached addresses are tempfail (never unknown) and the exit status is 75', async () => {
    await ldap.stop();
    try {
      const r = await check(config, ['alice@example.com', 'nobody@example.com', 'postmaster@example.com']);
      assert.deepEqual(
        r.lines.map((l) => [l[0], l[1]]),
        [
          ['alice@example.com', 'tempfail'],
          ['nobody@example.com', 'tempfail'],
          ['postmaster@example.com', 'valid'],
        ],
      );
      assert.equal(r.code, 75);
    } finally {
      await ldap.start();
    }
  });
});
