/**
 * An Active Directory export served by the LDIF directory: Exchange's shared, room, equipment and
 * linked mailboxes sit on disabled accounts (userAccountControl 514) yet receive mail. The AD
 * preset lets them through by msExchRecipientTypeDetails; the LDIF directory dropped every entry
 * with the disable bit, so a shared mailbox (info@, a room) was answered unknown: 550, mail lost.
 * It now keeps them as the preset does; a plain disabled user stays unknown. The real service on
 * an LDIF file, asked over HTTP.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { verdictOf } from '../helpers/http-verdict.js';

const entry = (cn: string, address: string, uac: number, details?: string): string =>
  [`dn: CN=${cn},CN=Users,DC=example,DC=com`, 'objectClass: user', `userAccountControl: ${uac}`, `proxyAddresses: SMTP:${address}`, ...(details ? [`msExchRecipientTypeDetails: ${details}`] : []), ''].join('\n');

const LDIF = [
  entry('Shared Info', 'info@example.com', 514, '4'),
  entry('Room 1', 'room1@example.com', 514, '16'),
  entry('Beamer', 'beamer@example.com', 514, '32'),
  entry('Linked', 'linked@example.com', 66050, '2'),
  entry('Remote Shared', 'remote-shared@example.com', 514, '34359738368'),
  entry('Leaver', 'leaver@example.com', 514, '1'),
  entry('Old User', 'old@example.com', 514),
  entry('Active', 'active@example.com', 512, '1'),
].join('\n');

describe('Exchange mailboxes on disabled accounts in an LDIF directory', () => {
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>>;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12a-ldif-exch-'));
    const file = path.join(dir, 'export.ldif');
    await writeFile(file, LDIF);
    app = await startApp({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldif', ldif: { path: file } },
      log: { level: 'silent' },
    });
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const ask = (address: string): Promise<string> => verdictOf(app.addresses.http!.port, address);

  test('shared, room, equipment, linked and remote shared mailboxes receive; disabled users do not', async () => {
    for (const address of ['info@example.com', 'room1@example.com', 'beamer@example.com', 'linked@example.com', 'remote-shared@example.com', 'active@example.com']) {
      assert.equal(await ask(address), 'valid/directory', address);
    }
    for (const address of ['leaver@example.com', 'old@example.com']) assert.equal(await ask(address), 'unknown/directory', address);
  });
});
