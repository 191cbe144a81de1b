/**
 * A reload (SIGHUP) while the LDIF file is being rewritten (cp or scp over it, a watcher reacting
 * to its first write). The config file itself is read once it stops changing, but the LDIF file
 * was read as it stood: the part written so far was installed, and every user past the cut was
 * answered unknown (550) until the next reload. The refusal of an LDIF without any enabled entry
 * and of a directory that finds none of the addresses recently found valid did not catch it: the
 * first part held both. The LDIF file is now read once it has stopped changing. The real service.
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
const ALL = Array.from({ length: 3000 }, (_, i) => user(i + 1)).join('');

describe('a reload while the LDIF file is being written', () => {
  let dir: string;
  let ldif: string;
  let configFile: string;
  let app: Awaited<ReturnType<typeof startApp>>;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12a-ldif-half-'));
    ldif = path.join(dir, 'users.ldif');
    configFile = path.join(dir, 'rcptgate.json');
    await writeFile(ldif, ALL);
    const config = {
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldif', ldif: { path: ldif } },
      log: { level: 'silent' },
    };
    await writeFile(configFile, JSON.stringify(config));
    await sleep(400); // both files settled before the start
    app = await startApp(config);
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, address);

  test('users past the part written when the reload began stay valid', async () => {
    // Recently found valid: in the part written first, so that check passes either way.
    assert.equal(await ask('u10@example.com'), 'valid/directory');
    assert.equal(await ask('u20@example.com'), 'valid/directory');
    // The writer is another process, as cp would be: the rest arrives 100 ms after the reload began.
    const rest = path.join(dir, 'rest.ldif');
    await writeFile(rest, ALL.slice(ALL.length / 3));
    await writeFile(ldif, ALL.slice(0, ALL.length / 3));
    const writer = spawn('sh', ['-c', `sleep 0.1; cat "${rest}" >> "${ldif}"`], { stdio: 'ignore' });
    const written = once(writer, 'exit');
    const reloaded = app.reload(configFile);
    assert.equal(await reloaded, true, 'the reload is applied');
    await written;
    for (const address of ['u10@example.com', 'u2500@example.com', 'u3000@example.com']) assert.equal(await ask(address), 'valid/directory', address);
    assert.equal(await ask('u3001@example.com'), 'unknown/directory');
  });
});
