/**
 * What a reload keeps: the running LDAP directory (its pool and bound connections) when nothing
 * it is built from changed, a new one when the settings, the bind password or the CA changed.
 * Nothing connects here: building a directory opens no connection.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EngineHolder } from '../../src/app/engines.js';
import { validateConfig } from '../../src/config/load.js';
import type { ResolvedConfig } from '../../src/config/resolve.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';

const ldap = (extra: Record<string, unknown> = {}) =>
  validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com', bindDN: 'cn=r,dc=example,dc=com', ...extra } } });

function resolved(config: ReturnType<typeof validateConfig>, bindPassword = 'secret', ca: Buffer | null = null): ResolvedConfig {
  return { config, bindPassword, adminToken: null, lookupToken: null, ca, overrides: { allow: new Set(), deny: new Set() } };
}

describe('a reload and the running directory', () => {
  test('the same LDAP settings, password and CA keep the directory; any change builds a new one', async () => {
    const env = { RCPTGATE_LDAP_BIND_PASSWORD: 'secret' };
    const holder = new EngineHolder(resolved(ldap()), { logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), env });
    const running = holder.current.directory;
    const same = holder.prepare(resolved(ldap()), null);
    assert.equal(same.directory, running, 'an unchanged config reuses the directory');
    holder.discard(same);
    const other = [
      holder.prepare(resolved(ldap({ timeout: '5s' })), null),
      holder.prepare(resolved(ldap(), 'rotated'), null),
      holder.prepare(resolved(ldap(), 'secret', Buffer.from('another CA')), null),
    ];
    for (const next of other) assert.notEqual(next.directory, running);
    for (const next of other) holder.discard(next);
    // Discarding an engine that shared the directory did not close the running one.
    await assert.rejects(running.lookup('alice@example.com'), (err: Error) => !/closed/i.test(err.message));
    await running.close();
  });

  test('an LDIF directory is read again on every reload', () => {
    const config = validateConfig({});
    const holder = new EngineHolder(resolved(config, ''), { logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), env: {} });
    assert.notEqual(holder.prepare(resolved(config, ''), null).directory, holder.current.directory);
  });
});
