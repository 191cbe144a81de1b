/**
 * Configuration mistakes a careless operator makes, each caught by `config check` (and so at
 * start-up and on reload) with the key and the problem, instead of a service that starts and
 * then spins, crashes, or answers every recipient alike.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, readSecret, validateConfig } from '../../src/config/load.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { exposureWarnings } from '../../src/config/exposure.js';
import { ConfigError } from '../../src/errors.js';
import { createCertificateAuthority } from '../helpers/slapd.js';

function issuesOf(raw: unknown): Array<{ path: string; message: string }> {
  try {
    validateConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

/** Sets `value` at the dotted `path` of a fresh object. */
function at(path: string, value: unknown): Record<string, unknown> {
  const keys = path.split('.');
  let out: unknown = value;
  for (const k of keys.reverse()) out = { [k]: out };
  return out as Record<string, unknown>;
}


describe('durations that arm timers', () => {
  const timers = [
    'directory.ldap.timeout',
    'cache.persistInterval',
    'sync.interval',
    'sync.incrementalInterval',
    'policy.harvest.delayStep',
    'policy.harvest.maxDelay',
    'directory.ldap.failbackAfter',
    'server.idleTimeout',
    'server.requestTimeout',
    'server.drainTimeout',
  ];
  it('refuses a value longer than a Node.js timer can wait (it would fire at once, in a loop)', () => {
    for (const key of timers) {
      for (const bad of ['25d', '600h', '99999999d']) {
        const issues = issuesOf(at(key, bad));
        assert.deepEqual(issues.map((i) => i.path), [key], `${key}: ${bad}`);
        assert.match(issues[0]!.message, /at most 24d/);
      }
      assert.doesNotThrow(() => validateConfig(at(key, '24d')), key);
    }
  });

  it('refuses 0 where it would time out every lookup, spin a loop, or crash the start', () => {
    for (const key of ['directory.ldap.timeout', 'cache.persistInterval', 'sync.interval', 'sync.incrementalInterval', 'policy.harvest.window']) {
      for (const bad of ['0s', '0ms', '0.1ms']) {
        const issues = issuesOf(at(key, bad));
        assert.deepEqual(issues.map((i) => i.path), [key], `${key}: ${bad}`);
        assert.match(issues[0]!.message, /more than 0/);
      }
    }
  });

  it('keeps 0 where it means "off" and long values where no timer is armed', () => {
    for (const key of ['server.idleTimeout', 'server.requestTimeout', 'server.drainTimeout', 'policy.harvest.delayStep', 'cache.negativeTtl']) {
      assert.doesNotThrow(() => validateConfig(at(key, '0s')), key);
    }
    for (const key of ['cache.staleIfError', 'cache.positiveTtl', 'sync.maxAge', 'policy.harvest.window']) {
      assert.doesNotThrow(() => validateConfig(at(key, '90d')), key);
    }
  });

  it('reports a malformed duration once, not also as out of range', () => {
    assert.deepEqual(issuesOf(at('directory.ldap.timeout', 'soon')).length, 1);
  });
});

describe('LDAP failback', () => {
  it('is off with 0s and otherwise waits at least 1s (each attempt opens a connection)', () => {
    for (const ok of ['0s', '1s', '1m']) assert.doesNotThrow(() => validateConfig(at('directory.ldap.failbackAfter', ok)), ok);
    for (const bad of ['1ms', '999ms']) assert.deepEqual(issuesOf(at('directory.ldap.failbackAfter', bad)).map((i) => i.path), ['directory.ldap.failbackAfter'], bad);
  });
});

describe('harvest keys of IPv6 clients', () => {
  it('count a /64 by default, take 1 to 128 bits, and refuse anything else', () => {
    assert.equal(validateConfig({}).policy.harvest.ipv6Prefix, 64);
    for (const bits of [1, 48, 128]) assert.equal(validateConfig(at('policy.harvest.ipv6Prefix', bits)).policy.harvest.ipv6Prefix, bits);
    for (const bad of [0, 129, 56.5, '64', '/64']) assert.deepEqual(issuesOf(at('policy.harvest.ipv6Prefix', bad)).map((i) => i.path), ['policy.harvest.ipv6Prefix'], String(bad));
  });
});


describe('LDAP filter templates', () => {
  const filter = (f: string) => issuesOf({ directory: { ldap: { filter: f } } });

  it('refuses a filter that ignores the local part: it would answer every address of a domain alike', () => {
    for (const f of ['(mail=*@%d)', '(associatedDomain=%d)', '(mail=%%s)', '(&(mail=%%u@%d)(objectClass=*))']) {
      const issues = filter(f);
      assert.deepEqual(issues.map((i) => i.path), ['directory.ldap.filter'], f);
      assert.match(issues[0]!.message, /%s or %u/, f);
    }
  });

  it('refuses at config check what the LDAP directory refuses at start', () => {
    for (const f of ['(mail=%s)(uid=%u)', '(mail=%s)x', '(mail=%x%s)', '((mail=%s))', '(mail=%s)%']) {
      assert.deepEqual(filter(f).map((i) => i.path), ['directory.ldap.filter'], f);
    }
  });

  it('accepts the filters the README shows', () => {
    for (const f of ['(|(mail=%s)(mailAlternateAddress=%s))', '(mail=%u@%d)', '(&(mail=%s)(!(employeeType=disabled)))', '(proxyAddresses=smtp:%s)', '(mail=%s)']) {
      assert.doesNotThrow(() => validateConfig({ directory: { ldap: { filter: f } } }), f);
    }
  });
});

describe('canaries', () => {
  it('refuses a canary outside the served domains: never found, it would defer every unknown recipient for good', () => {
    const issues = issuesOf({ domains: ['example.com'], directory: { canaries: ['alice@example.com', 'alice@other.example'] } });
    assert.deepEqual(issues.map((i) => i.path), ['directory.canaries.1']);
    assert.match(issues[0]!.message, /other\.example is not a served domain/);
  });

  it('accepts canaries in served and catch-all domains, written in any case, and any canary when the LDIF decides the domains', () => {
    assert.doesNotThrow(() =>
      validateConfig({ domains: { 'Example.COM.': {} }, catchAllDomains: ['legacy.example'], directory: { canaries: ['ALICE@example.com', 'x@LEGACY.example'] } }),
    );
    assert.doesNotThrow(() => validateConfig({ directory: { canaries: ['alice@anything.example'] } }));
  });
});

describe('LDAP URLs', () => {
  const urls = (u: string) => issuesOf({ directory: { ldap: { urls: ['ldap://ok.example', u] } } });

  it('refuses a port out of range, a port that is not a number, two ports, and a bracketed host that is not IPv6', () => {
    for (const u of ['ldap://127.0.0.1:99999', 'ldap://127.0.0.1:0', 'ldap://127.0.0.1:389x', 'ldap://127.0.0.1:389:636', 'ldaps://dc.example:', 'ldap://[dc.example]:389', 'ldap://[::1', 'ldap://']) {
      assert.deepEqual(urls(u).map((i) => i.path), ['directory.ldap.urls.1'], u);
    }
  });

  it('points a URL carrying the search base at directory.ldap.baseDN', () => {
    assert.match(urls('ldap://dc.example/dc=example,dc=com')[0]!.message, /directory\.ldap\.baseDN/);
  });

  it('accepts host names, IPv4, IPv6 in brackets, explicit ports and a trailing slash', () => {
    const ok = ['ldap://dc.example', 'ldaps://dc.example:636/', 'ldap://127.0.0.1:3268', 'ldap://[::1]:389', 'ldaps://[2001:db8::1]', 'ldap://gc_1.corp.example:3269'];
    assert.deepEqual(validateConfig({ directory: { ldap: { urls: ok } } }).directory.ldap.urls, ok);
  });
});

describe('listen addresses', () => {
  const off = { http: null, socketmap: null, policy: null, milter: null, metrics: null };
  const listen = (l: Record<string, string | null>) => ({ listen: { ...off, ...l } });

  it('refuses two listeners on one port (the start would fail with EADDRINUSE), naming both keys', () => {
    const cases: Array<Record<string, string>> = [
      { http: '127.0.0.1:9465', socketmap: '127.0.0.1:9465' },
      { http: '0.0.0.0:9465', socketmap: '127.0.0.1:9465' },
      { policy: '192.0.2.1:9466', milter: '[::]:9466' },
      { http: 'localhost:8080', metrics: '127.0.0.1:8080' },
      { http: '[::1]:8080', metrics: '[::1]:8080' },
    ];
    for (const c of cases) {
      const issues = issuesOf(listen(c));
      const [first, second] = Object.keys(c);
      assert.deepEqual(issues.map((i) => i.path), [`listen.${second}`], JSON.stringify(c));
      assert.match(issues[0]!.message, new RegExp(`listen\\.${first}`));
    }
  });

  it('accepts one port on distinct addresses, and port 0 (any free port) several times', () => {
    assert.doesNotThrow(() => validateConfig(listen({ http: '127.0.0.1:8080', metrics: '192.0.2.1:8080' })));
    assert.doesNotThrow(() => validateConfig(listen({ http: '127.0.0.1:0', socketmap: '127.0.0.1:0', metrics: '0.0.0.0:0' })));
  });

  it('refuses a host that looks like an IP address but is not one', () => {
    for (const bad of ['999.1.1.1:8080', '10.0.0:8080', '[::g]:8080', '[127.0.0.1]:8080']) {
      assert.deepEqual(issuesOf(listen({ http: bad })).map((i) => i.path), ['listen.http'], bad);
    }
  });
});

describe('secret files', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rcptgate-attack-ops-secrets-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const ldap = (extra: Record<string, unknown>) =>
    validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'], bindDN: 'cn=reader,dc=example,dc=com', ...extra } } });
  const resolveIssues = (config: ReturnType<typeof validateConfig>, env: NodeJS.ProcessEnv = {}) => {
    try {
      resolveConfig(config, env);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues;
    }
    assert.fail('resolveConfig accepted it');
  };

  it('refuses an empty bind password (file or environment): a bind DN with no password is an unauthenticated bind', () => {
    for (const text of ['', '\n', '\r\n']) {
      const issues = resolveIssues(ldap({ bindPasswordFile: secret('empty', text) }));
      assert.deepEqual(issues.map((i) => i.path), ['directory.ldap.bindPasswordFile'], JSON.stringify(text));
      assert.match(issues[0]!.message, /empty/);
    }
    const issues = resolveIssues(ldap({}), { RCPTGATE_LDAP_BIND_PASSWORD: '' });
    assert.match(issues[0]!.message, /RCPTGATE_LDAP_BIND_PASSWORD\) is empty/);
  });

  it('drops every trailing line break of a secret file, CRLF included, and the directory binds with the same password', () => {
    for (const text of ['s3cret\n', 's3cret\r\n', 's3cret\n\n', 's3cret']) {
      const file = secret('pw', text);
      assert.equal(resolveConfig(ldap({ bindPasswordFile: file }), {}).bindPassword, 's3cret', JSON.stringify(text));
      assert.equal(readSecret(file, undefined, 'bind password'), 's3cret', JSON.stringify(text));
    }
  });

  it('refuses an empty token or one with whitespace: no Bearer header can carry it, so nobody could authenticate', () => {
    const base = validateConfig({ admin: { tokenFile: secret('admin', '\n') }, http: { lookupTokenFile: secret('lookup', 'two words\n') } });
    const issues = resolveIssues(base);
    assert.deepEqual(issues.map((i) => i.path).sort(), ['admin.tokenFile', 'http.lookupTokenFile']);
    assert.match(issues.find((i) => i.path === 'admin.tokenFile')!.message, /empty/);
    assert.match(issues.find((i) => i.path === 'http.lookupTokenFile')!.message, /whitespace/);
    assert.match(resolveIssues(validateConfig({}), { RCPTGATE_ADMIN_TOKEN: '' })[0]!.message, /RCPTGATE_ADMIN_TOKEN\) is empty/);
  });
});

describe('domains', () => {
  it('says what the domains key takes when it is neither a list nor a map', () => {
    for (const bad of ['example.com', 5, true]) {
      const issues = issuesOf({ domains: bad });
      assert.deepEqual(issues, [{ path: 'domains', message: 'expected a list of domains, or a map of domain to its rules' }], String(bad));
    }
  });
});

describe('alwaysValid', () => {
  it('refuses a whole address, which would never match a local part, globally and per domain', () => {
    const issues = issuesOf({ alwaysValid: ['postmaster', 'abuse@example.com'], domains: { 'example.com': { alwaysValid: ['@example.com'] } } });
    assert.deepEqual(issues.map((i) => i.path).sort(), ['alwaysValid.1', 'domains.example.com.alwaysValid.0']);
    assert.match(issues[0]!.message, /overrides\.allowFile/);
  });
});

describe('directory.ldap.baseDN', () => {
  it('refuses what is not a DN (the server would answer invalidDNSyntax and every lookup would defer)', () => {
    for (const bad of ['example.com', 'dc=example,dc=com,', ',dc=example', 'dc=example;dc=com=x,', 'dc=example,,dc=com', '=example']) {
      const issues = issuesOf({ directory: { ldap: { baseDN: bad } } });
      assert.deepEqual(issues.map((i) => i.path), ['directory.ldap.baseDN'], bad);
      assert.match(issues[0]!.message, /dc=example,dc=com/);
    }
  });

  it('accepts DNs with spaces, any case, escaped commas, multi-valued RDNs, OIDs, and "" (a Global Catalog root)', () => {
    for (const ok of ['', 'dc=example,dc=com', 'DC=Example, DC=COM', 'ou=Smith\\, John,dc=example,dc=com', 'cn=a+uid=b,dc=example', '2.5.4.3=x,dc=example']) {
      assert.doesNotThrow(() => validateConfig({ directory: { ldap: { baseDN: ok } } }), ok);
    }
  });
});

describe('type mistakes', () => {
  it('says a duration needs its unit and a listen address is a quoted host:port', () => {
    assert.match(issuesOf({ directory: { ldap: { timeout: 3 } } })[0]!.message, /duration with its unit/);
    assert.match(issuesOf({ listen: { http: 8080 } })[0]!.message, /"host:port", such as "127\.0\.0\.1:8080"/);
  });
});

describe('catch-all rules', () => {
  it('refuses a domain that is catch-all in catchAllDomains and not in its own rule', () => {
    const issues = issuesOf({ domains: { 'example.com': { catchAll: false } }, catchAllDomains: ['Example.COM'] });
    assert.deepEqual(issues.map((i) => i.path), ['catchAllDomains.0']);
    assert.doesNotThrow(() => validateConfig({ domains: { 'example.com': { catchAll: true } }, catchAllDomains: ['example.com'] }));
  });
});

describe('directory.ldap.tls.caFile', () => {
  let dir = '';
  let ca: { caFile: string; keyFile: string };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rcptgate-attack-ops-ca-'));
    ca = await createCertificateAuthority(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const withCa = (caFile: string) =>
    validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldaps://dc.example'], tls: { caFile } } } });

  it('refuses a file without a PEM certificate (the key, a DER file) or with one that does not parse: every TLS connection would fail', () => {
    const der = join(dir, 'ca.der');
    writeFileSync(der, new X509Certificate(readFileSync(ca.caFile)).raw);
    const pem = readFileSync(ca.caFile, 'utf8');
    const broken = join(dir, 'broken.pem');
    writeFileSync(broken, pem.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA'));
    for (const [file, message] of [[ca.keyFile, /no PEM certificate/], [der, /no PEM certificate/], [broken, /does not parse/]] as const) {
      try {
        resolveConfig(withCa(file), {});
        assert.fail(`accepted ${file}`);
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        assert.deepEqual(err.issues.map((i) => i.path), ['directory.ldap.tls.caFile'], file);
        assert.match(err.issues[0]!.message, message, file);
      }
    }
  });

  it('accepts a PEM CA bundle', () => {
    const bundle = join(dir, 'bundle.pem');
    writeFileSync(bundle, `# corporate CAs\n${readFileSync(ca.caFile, 'utf8')}\n${readFileSync(ca.caFile, 'utf8')}`);
    assert.ok(resolveConfig(withCa(bundle), {}).ca);
  });
});

describe('environment overrides', () => {
  it('names the variable that set a bad value, and says a number was expected rather than NaN', () => {
    try {
      loadConfig(null, { RCPTGATE_SERVER_MAX_CONNECTIONS: '1_000', RCPTGATE_DIRECTORY_LDAP_URLS: 'ldap://a:389;ldap://b:389', RCPTGATE_LOG_LEVEL: 'INFO' });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      const byPath = Object.fromEntries(err.issues.map((i) => [i.path, i.message]));
      assert.match(byPath['server.maxConnections']!, /expected number, received string \(set by RCPTGATE_SERVER_MAX_CONNECTIONS\)/);
      assert.match(byPath['directory.ldap.urls.0']!, /\(set by RCPTGATE_DIRECTORY_LDAP_URLS\)$/);
      assert.match(byPath['log.level']!, /\(set by RCPTGATE_LOG_LEVEL\)$/);
    }
  });
});

describe('cache.maxEntries', () => {
  it('refuses a size whose slots cannot be reserved at start (1e9 crashed the start with a RangeError stack)', () => {
    const issues = issuesOf({ cache: { maxEntries: 1_000_000_000 } });
    assert.deepEqual(issues.map((i) => i.path), ['cache.maxEntries']);
    assert.match(issues[0]!.message, /reserves its slots at start/);
    assert.equal(validateConfig({ cache: { maxEntries: 10_000_000 } }).cache.maxEntries, 10_000_000);
  });
});

describe('files rcptgate writes', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rcptgate-attack-ops-files-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ldap = { domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'] } } };

  it('refuses the snapshot and the answer file on one path: each save would destroy the other', () => {
    const file = join(dir, 'state.bin');
    const issues = issuesOf({ ...ldap, sync: { enabled: true, snapshotPath: file }, cache: { persistPath: file } });
    assert.deepEqual(issues.map((i) => i.path), ['cache.persistPath']);
  });

  it('refuses a path whose directory does not exist or is a file: every save would fail', () => {
    const plainFile = join(dir, 'plain');
    writeFileSync(plainFile, '');
    const config = validateConfig({ ...ldap, sync: { enabled: true, snapshotPath: join(dir, 'missing', 'snap.bin') }, cache: { persistPath: join(plainFile, 'answers.bin') } });
    try {
      resolveConfig(config, {});
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(err.issues.map((i) => i.path).sort(), ['cache.persistPath', 'sync.snapshotPath']);
    }
    assert.doesNotThrow(() => resolveConfig(validateConfig({ ...ldap, sync: { enabled: true, snapshotPath: join(dir, 'snap.bin') }, cache: { persistPath: join(dir, 'a.bin') } }), {}));
  });
});

describe('domain names written like patterns', () => {
  it('says wildcards are not supported and a domain takes no "@"', () => {
    const issues = issuesOf({ domains: ['*.example.com', '@example.org'], catchAllDomains: ['*.legacy.example'] });
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    assert.match(byPath['domains.*.example.com']!, /wildcards are not supported/);
    assert.match(byPath['domains.@example.org']!, /without "@"/);
    assert.match(byPath['catchAllDomains.0']!, /wildcards are not supported/);
  });
});

describe('directory.ldap.scope', () => {
  it('refuses base: it searches the baseDN entry alone, so every recipient would be unknown (reject-all, seen against slapd)', () => {
    const issues = issuesOf({ directory: { ldap: { scope: 'base' } } });
    assert.deepEqual(issues.map((i) => i.path), ['directory.ldap.scope']);
    for (const scope of ['one', 'sub']) assert.doesNotThrow(() => validateConfig({ directory: { ldap: { scope } } }));
  });
});

describe('config check advice for LDAP', () => {
  const ldap = (extra: Record<string, unknown>, top: Record<string, unknown> = {}) =>
    validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://dc.example:389'], ...extra }, ...top } });

  it('warns when the bind password would cross the network in clear, and when caFile is set but unused', () => {
    const w = exposureWarnings(ldap({ bindDN: 'cn=reader,dc=example,dc=com', tls: { caFile: '/etc/ca.pem' } }, { canaries: ['a@example.com'] }));
    assert.deepEqual(w.map((x) => [x.level, x.path]), [['warning', 'directory.ldap.startTLS']]);
    assert.match(w[0]!.message, /in clear to ldap:\/\/dc\.example:389.*tls\.caFile is set but no connection uses TLS/);
    for (const safe of [{ startTLS: true }, { urls: ['ldaps://dc.example'] }, { urls: ['ldap://127.0.0.1:389'] }, {}]) {
      const bind = 'urls' in safe || 'startTLS' in safe ? { bindDN: 'cn=reader,dc=example,dc=com' } : {};
      assert.deepEqual(exposureWarnings(ldap({ ...bind, ...safe }, { canaries: ['a@example.com'] })), [], JSON.stringify(safe));
    }
  });

  it('notes that without canaries a bind account that loses its rights makes every recipient unknown', () => {
    assert.deepEqual(exposureWarnings(ldap({})).map((x) => [x.level, x.path]), [['note', 'directory.canaries']]);
    assert.deepEqual(exposureWarnings(validateConfig({})), []);
  });
});

describe('sync.maxAge', () => {
  const sync = (s: Record<string, unknown>) => ({
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'] } },
    sync: { enabled: true, snapshotPath: '/var/lib/rcptgate/snapshot', ...s },
  });

  it('refuses a maxAge not longer than the full sync interval: the snapshot would expire before the next full sync', () => {
    for (const [interval, maxAge] of [['1d', '24h'], ['2h', '1h']]) {
      const issues = issuesOf(sync({ interval, maxAge }));
      assert.deepEqual(issues.map((i) => i.path), ['sync.maxAge'], `${interval} / ${maxAge}`);
    }
    assert.doesNotThrow(() => validateConfig(sync({ interval: '1d', maxAge: '3d' })));
    assert.doesNotThrow(() => validateConfig({ sync: { interval: '2d' } }), 'nothing to compare while sync is off');
  });
});

describe('config check advice for the milter', () => {
  it('notes a lookup timeout or tarpit delay that reaches Sendmail\'s 10 s milter timeout, only while the milter listens', () => {
    const slow = { domains: ['example.com'], directory: { kind: 'ldap', canaries: ['a@example.com'], ldap: { urls: ['ldaps://dc.example'], timeout: '15s' } }, policy: { harvest: { maxDelay: '10s' } } };
    assert.deepEqual(exposureWarnings(validateConfig(slow)).map((w) => w.path).sort(), ['directory.ldap.timeout', 'policy.harvest.maxDelay']);
    assert.deepEqual(exposureWarnings(validateConfig({ ...slow, listen: { milter: null } })), []);
    assert.deepEqual(exposureWarnings(validateConfig({ ...slow, directory: { ...slow.directory, ldap: { urls: ['ldaps://dc.example'], timeout: '3s' } }, policy: {} })), []);
  });
});
describe('tarpit places of a flagged client', () => {
  it('are 4 by default, take any count from 1, and refuse anything else', () => {
    assert.equal(validateConfig({}).policy.harvest.maxHeld, 4);
    for (const n of [1, 16, 300]) assert.equal(validateConfig(at('policy.harvest.maxHeld', n)).policy.harvest.maxHeld, n);
    for (const bad of [0, -1, 2.5, '4']) assert.deepEqual(issuesOf(at('policy.harvest.maxHeld', bad)).map((i) => i.path), ['policy.harvest.maxHeld'], String(bad));
  });
});
