/**
 * A SIGHUP storm while the config changes underneath: a config-management run that rewrites the
 * file and signals after each of its 50 templated edits within a second. Whatever the order in
 * which the reloads run, the service must end on the file as last written (never on one of the
 * earlier versions), every reload whole (served domains, cache and directory of one version),
 * and file handles back to where they were once the replaced directories retire.
 * Real slapd, the real CLI; the HTTP API tells the served domains apart.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { verdictOf } from '../helpers/http-verdict.js';

const STORM = 50;

describe('50 SIGHUPs in a second with the config rewritten between them (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd();
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13l-storm-'));
  });
  after(async () => {
    await serve?.kill();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('ends on the last file written, whole, without leaking handles', async () => {
    const file = path.join(dir, 'rcptgate.yaml');
    // Version k serves example.com plus dk.example; odd versions also change the directory
    // (its timeout), so the reload builds and later retires a directory.
    const version = (k: number) => JSON.stringify({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com', `d${k}.example`],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: k % 2 ? '4s' : '5s' } },
      log: { level: 'info' },
    });
    // Written as a config manager does (a new file renamed over), so no read sees half a file.
    const write = async (k: number) => {
      await writeFile(`${file}.new`, version(k));
      await rename(`${file}.new`, file);
    };
    await write(0);
    serve = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const port = await listenerPort(serve, 'http');
    assert.equal(await verdictOf(port, 'alice@example.com'), 'valid/directory');
    const pid = serve.child.pid!;
    const fdsBefore = readdirSync(`/proc/${pid}/fd`).length;

    const started = Date.now();
    for (let k = 1; k <= STORM; k++) {
      await write(k);
      serve.child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 15));
    }
    const stormMs = Date.now() - started;

    // Settled: no reload line for 3 s.
    let lines = -1;
    for (let waited = 0; waited < 120_000; waited += 3000) {
      const now = serve.logs.filter((l) => typeof l.msg === 'string' && /reload/.test(l.msg)).length;
      if (now === lines) break;
      lines = now;
      await new Promise((r) => setTimeout(r, 3000));
    }
    const failed = serve.logs.filter((l) => l.msg === 'reload failed; keeping the running configuration');
    assert.deepEqual(failed, [], 'no reload failed');
    const reloads = serve.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded')).length;
    assert.ok(reloads >= 1 && reloads <= STORM, `${reloads} reloads for ${STORM} signals in ${stormMs} ms`);

    // The last version, whole: its own domain served, every earlier one not, and the directory answers.
    assert.equal(await verdictOf(port, `someone@d${STORM}.example`), 'unknown/directory');
    for (const k of [0, 1, STORM - 1]) assert.equal((await verdictOf(port, `someone@d${k}.example`)).split('/')[0], 'not_ours', `d${k}.example`);
    assert.match(await verdictOf(port, 'alice@example.com'), /^valid\//);
    assert.equal(serve.child.exitCode, null);

    // Replaced directories retire 30 s after their reload; then the handles are back.
    await new Promise((r) => setTimeout(r, 35_000));
    const fdsAfter = readdirSync(`/proc/${pid}/fd`).length;
    assert.ok(fdsAfter <= fdsBefore + 4, `file handles ${fdsBefore} before, ${fdsAfter} after (${reloads} reloads)`);
    assert.match(await verdictOf(port, 'alice@example.com'), /^valid\//);
  });
});
