/**
 * A reload (SIGHUP) while an override list or the LDIF file is being rewritten. The config file
 * was read once it had stopped changing, the allow list as it stood: an address past the cut was
 * unknown (550) until the next reload. The LDIF file waited by blocking the event loop, so every
 * front end stood still for as long. Both are now awaited on a timer, lookups answered meanwhile.
 * The service in-process, its HTTP API on a real socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';

const user = (k: number): string => `dn: uid=u${k},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u${k}\nmail: u${k}@example.com\n\n`;
const USERS = Array.from({ length: 300 }, (_, i) => user(i + 1)).join('');

describe('a reload while the allow list or the LDIF file is being written', () => {
  let dir: string;
  let ldif: string;
  let allow: string;
  let configFile: string;
  let app: Awaited<ReturnType<typeof startApp>>;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12m-lists-'));
    ldif = path.join(dir, 'users.ldif');
    allow = path.join(dir, 'allow.txt');
    configFile = path.join(dir, 'rcptgate.json');
    await writeFile(ldif, USERS);
    await writeFile(allow, 'ops@example.com\nroles@example.com\n');
    const config = {
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldif', ldif: { path: ldif } },
      overrides: { allowFile: allow },
      log: { level: 'silent' },
    };
    await writeFile(configFile, JSON.stringify(config));
    await sleep(400); // every file settled before the start
    app = await startApp(config);
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, address);

  /** Rewrites `file` with `first` now and `rest` appended by another process 100 ms later (the writer's exit in a box: an awaited promise would wait for it). */
  async function rewrite(file: string, first: string, rest: string): Promise<{ written: Promise<unknown> }> {
    const tail = path.join(dir, 'rest');
    await writeFile(tail, rest);
    await writeFile(file, first);
    const writer = spawn('sh', ['-c', `sleep 0.1; cat "${tail}" >> "${file}"`], { stdio: 'ignore' });
    return { written: once(writer, 'exit') };
  }

  test('an address past the part of the allow list written when the reload began stays valid', async () => {
    assert.equal((await ask('roles@example.com')).split('/')[0], 'valid');
    const { written } = await rewrite(allow, 'ops@example.com\n', 'roles@example.com\n');
    assert.equal(await app.reload(configFile), true, 'the reload is applied');
    await written;
    assert.equal((await ask('roles@example.com')).split('/')[0], 'valid', 'roles@, listed again 100 ms after the reload began');
    assert.equal((await ask('ops@example.com')).split('/')[0], 'valid');
  });

  test('lookups are answered while the reload waits for the LDIF file', async () => {
    const { written } = await rewrite(ldif, USERS.slice(0, USERS.length / 3), USERS.slice(USERS.length / 3));
    let reloaded = false;
    const reload = app.reload(configFile).then((ok) => {
      reloaded = true;
      return ok;
    });
    // The reload waits at least 250 ms of quiet after the last write; a lookup asked now is
    // answered before it ends unless the wait holds the event loop.
    await sleep(20);
    assert.equal(await ask('u10@example.com'), 'valid/directory');
    assert.equal(reloaded, false, 'the lookup was answered while the reload waited');
    assert.equal(await reload, true);
    await written;
    assert.equal(await ask('u300@example.com'), 'valid/directory');
  });
});
