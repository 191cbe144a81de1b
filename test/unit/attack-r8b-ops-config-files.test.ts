/**
 * Files rcptgate writes (snapshot, answer file) that name a file it reads: its own config, a
 * secret, an override list, or each other under another spelling.
 */
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { configIssuesOf, scratchFiles } from '../helpers/config-scratch.js';

const scratch = scratchFiles('rcptgate-r8b-config-');
const write = scratch.write;
const issuesOf = configIssuesOf;

describe('files rcptgate writes never replace a file it reads', () => {
  it('refuses cache.persistPath or sync.snapshotPath naming the config file, a secret or an override list', () => {
    const secret = write('bind-password', 'hunter2\n');
    const deny = write('deny.txt', 'former@example.com\n');
    const token = write('admin-token', 'a-long-admin-token\n');
    const ldap = `domains: [example.com]\ndirectory:\n  kind: ldap\n  ldap:\n    urls: ["ldap://127.0.0.1:1"]\n    bindDN: cn=reader,dc=example,dc=com\n    bindPasswordFile: ${secret}\n`;
    const cases: Array<[string, string, string]> = [
      ['config.yaml', 'cache:\n  persistPath: SELF\n', 'cache.persistPath'],
      ['deny.yaml', `overrides: { denyFile: ${deny} }\ncache: { persistPath: ${deny} }\n`, 'cache.persistPath'],
      ['token.yaml', `admin: { tokenFile: ${token} }\ncache: { persistPath: ${token} }\n`, 'cache.persistPath'],
      ['snap.yaml', `${ldap}sync: { enabled: true, snapshotPath: ${secret} }\n`, 'sync.snapshotPath'],
      ['snap-self.yaml', `${ldap}sync: { enabled: true, snapshotPath: SELF }\n`, 'sync.snapshotPath'],
    ];
    for (const [name, text, key] of cases) {
      const file = join(scratch.dir(), name);
      writeFileSync(file, text.replace('SELF', file));
      const { config, file: used } = loadConfig(file, {});
      const issues = issuesOf(() => resolveConfig(config, {}, used));
      assert.deepEqual(issues.map((i) => i.path), [key], `${name}: ${JSON.stringify(issues)}`);
      assert.match(issues[0]!.message, /rcptgate reads it/, name);
      assert.doesNotMatch(issues[0]!.message, /hunter2/);
    }
  });

  it('sees the same file through another spelling or a link', () => {
    const file = join(scratch.dir(), 'linked.yaml');
    symlinkSync(file, join(scratch.dir(), 'config-link.yaml'));
    writeFileSync(file, `cache:\n  persistPath: ${join(scratch.dir(), '.', 'config-link.yaml')}\n`);
    const { config } = loadConfig(file, {});
    assert.deepEqual(issuesOf(() => resolveConfig(config, {}, file)).map((i) => i.path), ['cache.persistPath']);
    // And the answer file and the snapshot spelled two ways are still one file.
    const secret = write('pw2', 'pw\n');
    const twice = write(
      'twice.yaml',
      `domains: [example.com]\ndirectory: { kind: ldap, ldap: { urls: ["ldap://127.0.0.1:1"], bindDN: "cn=r", bindPasswordFile: ${secret} } }\nsync: { enabled: true, snapshotPath: ${scratch.dir()}/snap.bin }\ncache: { persistPath: ${scratch.dir()}/./snap.bin }\n`,
    );
    const loaded = loadConfig(twice, {});
    assert.deepEqual(issuesOf(() => resolveConfig(loaded.config, {}, twice)).map((i) => i.path), ['cache.persistPath']);
  });

  it('accepts files of their own', () => {
    const file = write('fine.yaml', `cache:\n  persistPath: ${scratch.dir()}/answers.bin\n`);
    const { config } = loadConfig(file, {});
    assert.equal(resolveConfig(config, {}, file).config.cache.persistPath, `${scratch.dir()}/answers.bin`);
  });
});
