/**
 * Active Directory (the real Samba AD DC): a snapshot file records the base entry's objectGUID,
 * which reads back the same at the next start, so the file of this domain is kept (and served
 * while the DC is stopped); one recording another directory's identifier is refused while the
 * DC answers, its users then asked live instead of rejected from the other listing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp } from '../helpers/app.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';
import { readSnapshotStore } from '../../src/snapshot/file.js';
import { snapshotSource } from '../../src/snapshot/source.js';
import { validateConfig } from '../../src/config/load.js';

describe('the directory identifier of an Active Directory snapshot', () => {
  let dc: SambaDC;
  let dir: string;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  const config = () => ({
    listen: { http: null, socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['ad.example.com'],
    directory: { kind: 'ldap', ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' } },
    sync: { enabled: true, snapshotPath: path.join(dir, 'ad.snapshot'), interval: '1h', incrementalInterval: '30m', confirmMisses: false },
    log: { level: 'silent' },
  });
  const env = () => ({ RCPTGATE_LDAP_BIND_PASSWORD: dc.servicePassword });
  const verdict = async (address: string) => {
    const r = await app!.validator.lookup(address, { frontend: 'http' });
    return `${r.verdict}/${r.source}`;
  };
  const stop = async () => {
    await app?.close();
    app = undefined;
  };

  before(async () => {
    dc = await startSambaDC();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r12d-dirid-ad-'));
  });
  after(async () => {
    await stop();
    await dc?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('recorded, read back the same, and another identifier refused', async () => {
    app = await startApp(config(), env());
    await app.syncOnce();
    await stop();
    const file = path.join(dir, 'ad.snapshot');
    const source = snapshotSource(validateConfig(config()));
    const { header } = await readSnapshotStore(file, source, Infinity);
    assert.ok(header.directoryId, 'the objectGUID of the base entry is recorded');
    app = await startApp(config(), env());
    assert.equal(await verdict('jane@ad.example.com'), 'valid/snapshot', 'the same domain: its file is kept');
    await stop();
    // The same file as another domain with the same base DN would have written it.
    const text = (await readFile(file)).toString('latin1').replace(JSON.stringify(header.directoryId).slice(1, -1), 'another-domain');
    await writeFile(file, Buffer.from(text, 'latin1'));
    assert.equal((await readSnapshotStore(file, source, Infinity)).header.directoryId, 'another-domain');
    app = await startApp(config(), env());
    assert.equal(await verdict('jane@ad.example.com'), 'valid/directory', 'refused: asked live, not answered from the other listing');
  });
});
