/**
 * Settings that pass every check and then defer or refuse mail: a canary that is one of the
 * alwaysValid local parts (postmaster@, the address an admin knows "always exists") is looked up
 * in the directory; where no entry holds it the directory counts as down and every would-be
 * unknown is deferred. A domain's own alwaysValid replaces the global list, so listing only
 * hostmaster there drops postmaster (RFC 5321). `config check` now names both; the real CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/process.js';

function configCheck(cfg: string): { code: number | null; out: string } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check', '--config', cfg], { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stderr + r.stdout };
}

describe('config check: canaries in alwaysValid, a domain list without postmaster (real CLI)', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'rcptgate-r12m-notes-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const check = (domains: string, canaries: string[] = []) => {
    const cfg = path.join(dir, 'c.yaml');
    writeFileSync(
      cfg,
      'listen: { socketmap: null, http: null, policy: null, milter: null, metrics: null }\n' +
        `directory: { kind: ldap, ldap: { urls: ["ldap://127.0.0.1:1"], baseDN: "dc=example,dc=com" }, canaries: ${JSON.stringify(canaries)} }\n` +
        `domains: ${domains}\n`,
    );
    return configCheck(cfg);
  };

  test('a canary whose local part is always valid is named, in either case; a real mailbox is not', () => {
    const r = check('[example.com]', ['Postmaster@example.com', 'alice@example.com']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /directory\.canaries\.0.*Postmaster@example\.com is in alwaysValid/);
    assert.doesNotMatch(r.out, /directory\.canaries\.1/);
  });

  test("a domain's own alwaysValid without postmaster is named; one with it is not", () => {
    const r = check('{ example.com: { alwaysValid: [hostmaster] }, example.org: { alwaysValid: [postmaster, hostmaster] } }');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /domains\.example\.com\.alwaysValid.*lacks postmaster/);
    assert.doesNotMatch(r.out, /domains\.example\.org\.alwaysValid/);
  });
});
