/**
 * End to end with Active Directory: Postfix's own socketmap client (`postmap -q`) asks rcptgate's
 * socketmap server, whose engine reads a real AD DC (Samba 4) over LDAPS with the
 * `activedirectory` preset — the path a backup MX takes for relay_recipient_maps.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createSocketmapServer } from '../../src/socketmap/server.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { postmapQuery, requireTool } from '../helpers/postfix.js';
import { startSambaDC, type SambaDC } from '../helpers/samba.js';

let dc: SambaDC | undefined;
let directory: LdapDirectory | undefined;
let server: TcpServer | undefined;
let mapSpec: string;

before(async () => {
  requireTool('postmap');
  dc = await startSambaDC();
  const config = validateConfig({
    domains: ['ad.example.com'],
    directory: {
      kind: 'ldap',
      ldap: { urls: [dc.ldapsUrl], baseDN: dc.baseDN, preset: 'activedirectory', bindDN: dc.serviceDN, tls: { caFile: dc.caFile }, timeout: '10s' },
    },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = silentLogger();
  directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: dc.servicePassword, metrics, logger });
  const validator = new RecipientValidatorImpl({ config, directory, metrics, logger });
  server = createSocketmapServer({ validator, metrics, logger, maxConnections: 10, idleTimeoutMs: 300_000 });
  const { port } = await server.listen('127.0.0.1:0');
  mapSpec = `socketmap:inet:127.0.0.1:${port}:recipients`;
});

after(async () => {
  await server?.close(1_000);
  await directory?.close();
  await dc?.close();
});

describe('postmap against rcptgate backed by Active Directory', () => {
  it('answers OK with the SMTP: primary address for a secondary proxy address', async () => {
    const r = await postmapQuery('j.doe@ad.example.com', mapSpec);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.lines, ['jane@ad.example.com']);
  });

  it('answers NOTFOUND for a disabled account', async () => {
    const r = await postmapQuery('daniel@ad.example.com', mapSpec);
    assert.equal(r.code, 1, `expected not found, got: ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim(), '', 'a lookup error, not a clean NOTFOUND');
  });
});
