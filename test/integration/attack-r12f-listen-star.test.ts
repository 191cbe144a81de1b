/**
 * `listen.socketmap: "*:9465"`, as Postfix (`inet_interfaces = all` aside), Dovecot and nginx
 * write "every address": `rcptgate config check` said the config was valid, and `serve` then
 * failed at every start on a host name that does not resolve. It is refused by `config check`
 * (and `serve`, before anything starts) naming the key and what to write instead. The real CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

function cli(args: string[], env: Record<string, string> = {}): { code: number | null; stderr: string } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: REPO_ROOT, env: { ...base, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr + r.stdout };
}

describe('a listener on "*" (real CLI)', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'rcptgate-r12f-star-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('config check and serve exit 78 naming the key and "0.0.0.0"', () => {
    const cfg = path.join(dir, 'star.yaml');
    writeFileSync(cfg, 'listen: { socketmap: "*:0", http: null, policy: null, milter: null, metrics: null }\n');
    for (const command of [['config', 'check'], ['serve']]) {
      const r = cli([...command, '--config', cfg]);
      assert.equal(r.code, 78, `${command.join(' ')}: exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /listen\.socketmap: "\*" is not a host: use "0\.0\.0\.0"/);
    }
  });

  test('the same from the environment names the variable', () => {
    const r = cli(['config', 'check'], { RCPTGATE_LISTEN_HTTP: '*:8080' });
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /listen\.http: "\*" is not a host.*RCPTGATE_LISTEN_HTTP/);
  });

  test('the wildcard addresses and host names are still accepted', () => {
    const cfg = path.join(dir, 'fine.yaml');
    writeFileSync(cfg, 'listen: { socketmap: "0.0.0.0:0", http: "[::]:0", policy: "localhost:0", milter: "mx.example.com:0", metrics: null }\n');
    const r = cli(['config', 'check', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
  });
});
