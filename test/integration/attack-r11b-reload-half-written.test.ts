/**
 * A SIGHUP sent while the config file is still being written (scp or cp over it, a file watcher
 * reacting to the first write). The reload read the part written so far: a domain list cut
 * after a complete line is a valid config, so every domain past the cut became `not_ours`
 * (Postfix's `domains` socketmap then answers NOTFOUND and a backup MX refuses their mail as
 * relaying) until the next SIGHUP. A reload now reads the file once it has stopped changing.
 * Real slapd, the real serve process.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

describe('a reload signalled while the config file is being written (real slapd, real serve)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r11b-half-'));
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the reload reads the whole file, not the domains written so far', async () => {
    const cfg = path.join(dir, 'rcptgate.yaml');
    const full = [
      'listen: { http: "127.0.0.1:0", socketmap: null, policy: null, milter: null, metrics: null }',
      'directory:',
      '  kind: ldap',
      `  ldap: { urls: ["${ldap.url}"], baseDN: "${ldap.baseDN}", bindDN: "${ldap.serviceDN}" }`,
      'domains:',
      '  - example.com',
      '  - example.org',
      '',
    ].join('\n');
    await writeFile(cfg, full);
    serve = startServe(['--config', cfg], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(serve, 'http');
    const verdict = async (address: string) => ((await (await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`)).json()) as { verdict: string }).verdict;
    assert.equal(await verdict('dave@example.org'), 'valid');
    // The writer has written up to the last domain when the SIGHUP comes; the rest follows.
    await writeFile(cfg, full.slice(0, full.indexOf('  - example.org')));
    const seen = serve.logs.length;
    serve.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 100));
    await writeFile(cfg, full);
    const p = serve;
    const line = await p.waitForLog((l) => p.logs.indexOf(l) >= seen && /^(configuration reloaded|reload failed)/.test(String(l.msg)));
    assert.match(String(line.msg), /^configuration reloaded/);
    assert.equal(await verdict('dave@example.org'), 'valid', 'the reload installed the half-written file: example.org is no longer served');
    assert.equal(await verdict('alice@example.com'), 'valid');
  });
});
