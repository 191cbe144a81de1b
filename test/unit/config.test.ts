import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domainRules, envName, loadConfig, readSecret, redact, validateConfig } from '../../src/config/load.js';
import { ms, parseDuration } from '../../src/config/duration.js';
import { configSchema } from '../../src/config/schema.js';
import { ConfigError, ErrorCodes, RcptgateError } from '../../src/errors.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rcptgate-config-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes YAML to a fresh file and returns its path. */
function file(text: string): string {
  const p = join(dir, `config-${++n}.yaml`);
  writeFileSync(p, text);
  return p;
}

/** The issues a ConfigError carries, as "path: message" strings. */
function issuesOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

const paths = (issues: Array<{ path: string }>): string[] => issues.map((i) => i.path).sort();

describe('durations', () => {
  it('parses every documented unit', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('3s'), 3000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(ms('0s'), 0);
  });
  it('returns null for malformed text and ms() throws', () => {
    for (const t of ['', '3', 's', '3 sec', '-1s', '1w', '1h30m']) assert.equal(parseDuration(t), null, t);
    assert.throws(() => ms('soon'));
  });
});

describe('defaults', () => {
  it('an empty config is the documented default', () => {
    const { config, file: used } = loadConfig(null, {});
    assert.equal(used, null);
    // Closed by default: only loopback clients reach any listener.
    assert.equal(config.listen.http, '127.0.0.1:8080');
    assert.equal(config.listen.socketmap, '127.0.0.1:9465');
    assert.equal(config.listen.policy, '127.0.0.1:9466');
    assert.equal(config.listen.milter, '127.0.0.1:9467');
    assert.equal(config.listen.metrics, '127.0.0.1:9468');
    assert.equal(config.http.lookupTokenFile, null);
    assert.deepEqual(config.http.lookupAllowFrom, ['127.0.0.0/8', '::1/128']);
    assert.deepEqual(config.domains, []);
    assert.equal(config.recipientDelimiter, '+');
    assert.equal(config.directory.kind, 'ldif');
    assert.equal(config.directory.ldif.path, null);
    assert.equal(config.directory.ldap.timeout, '3s');
    assert.equal(config.directory.ldap.poolSize, 4);
    assert.equal(config.cache.maxEntries, 100_000);
    assert.equal(config.cache.positiveTtl, '1h');
    assert.equal(config.cache.negativeTtl, '5m');
    assert.equal(config.cache.staleIfError, '24h');
    assert.equal(config.onDirectoryError, 'tempfail');
    assert.equal(config.mode, 'enforce');
    assert.deepEqual(config.alwaysValid, ['postmaster', 'abuse']);
    assert.equal(config.policy.harvest.maxUnknown, 20);
    assert.equal(config.policy.harvest.window, '10m');
    assert.equal(config.log.level, 'info');
  });

  it('the loaded config is frozen', () => {
    const { config } = loadConfig(null, {});
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.cache));
    assert.throws(() => {
      (config.cache as { maxEntries: number }).maxEntries = 1;
    });
  });

  it('reads the file named by RCPTGATE_CONFIG', () => {
    const p = file('log: { level: debug }\n');
    const { config, file: used } = loadConfig(undefined, { RCPTGATE_CONFIG: p });
    assert.equal(used, p);
    assert.equal(config.log.level, 'debug');
  });

  it('an empty file is the default config', () => {
    assert.equal(loadConfig(file(''), {}).config.mode, 'enforce');
  });
});

describe('config errors', () => {
  it('reports an unknown top-level key', () => {
    assert.deepEqual(issuesOf(() => validateConfig({ cahce: {} })), [{ path: 'cahce', message: 'unknown key' }]);
  });

  it('reports a nested unknown key with its full key path', () => {
    const issues = issuesOf(() => validateConfig({ directory: { ldap: { tls: { caFlie: '/x' } } } }));
    assert.deepEqual(paths(issues), ['directory.ldap.tls.caFlie']);
    assert.match(issues[0]!.message, /unknown key/);
  });

  it('reports an unknown key inside a per-domain rule', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ domains: { 'example.com': { catchall: true } } }))), ['domains.example.com.catchall']);
  });

  it('reports wrong types by path', () => {
    const cases: Array<[unknown, string]> = [
      [{ cache: { maxEntries: 'many' } }, 'cache.maxEntries'],
      [{ cache: { maxEntries: -1 } }, 'cache.maxEntries'],
      [{ directory: { ldap: { poolSize: 1.5 } } }, 'directory.ldap.poolSize'],
      [{ directory: { ldap: { startTLS: 'yes' } } }, 'directory.ldap.startTLS'],
      [{ directory: { kind: 'sql' } }, 'directory.kind'],
      [{ onDirectoryError: 'ignore' }, 'onDirectoryError'],
      [{ mode: 'audit' }, 'mode'],
      [{ alwaysValid: 'postmaster' }, 'alwaysValid'],
      [{ listen: 8080 }, 'listen'],
      [{ log: { level: 'verbose' } }, 'log.level'],
      [{ statusPage: 'on' }, 'statusPage'],
    ];
    for (const [raw, path] of cases) assert.deepEqual(paths(issuesOf(() => validateConfig(raw))), [path], JSON.stringify(raw));
  });

  it('reports a bad duration', () => {
    for (const bad of ['3', '3 seconds', 'soon', '']) {
      const issues = issuesOf(() => validateConfig({ cache: { positiveTtl: bad } }));
      assert.deepEqual(paths(issues), ['cache.positiveTtl'], bad);
      assert.match(issues[0]!.message, /duration/);
    }
  });

  it('reports a bad host:port', () => {
    for (const bad of ['8080', 'localhost', 'localhost:', 'localhost:99999', ':8080', 'a b:80']) {
      const issues = issuesOf(() => validateConfig({ listen: { http: bad } }));
      assert.deepEqual(paths(issues), ['listen.http'], bad);
    }
  });

  it('accepts host:port forms, port 0, and null to disable', () => {
    const c = validateConfig({ listen: { http: '127.0.0.1:0', socketmap: '[::1]:9465', policy: 'localhost:9466', milter: null } });
    assert.equal(c.listen.http, '127.0.0.1:0');
    assert.equal(c.listen.milter, null);
  });

  it('requires urls and domains with directory.kind ldap', () => {
    const issues = issuesOf(() => validateConfig({ directory: { kind: 'ldap' } }));
    assert.deepEqual(paths(issues), ['directory.ldap.urls', 'domains']);
  });

  it('accepts a complete ldap directory', () => {
    const c = validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:389'], baseDN: 'dc=example,dc=com' } } });
    assert.deepEqual(c.directory.ldap.urls, ['ldap://127.0.0.1:389']);
  });

  it('refuses a url that is not ldap:// or ldaps://', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ directory: { ldap: { urls: ['http://x'] } } }))), ['directory.ldap.urls.0']);
  });

  it('refuses credentials in an LDAP URL, pointing at bindDN and bindPasswordFile, without echoing them', () => {
    for (const url of ['ldap://admin:s3cret@ldap.example', 'ldaps://user@ldap.example:636', 'LDAP://a:b@c']) {
      const issues = issuesOf(() =>
        validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldap://ok.example', url] } } }),
      );
      assert.deepEqual(paths(issues), ['directory.ldap.urls.1'], url);
      assert.match(issues[0]!.message, /directory\.ldap\.bindDN/);
      assert.match(issues[0]!.message, /directory\.ldap\.bindPasswordFile/);
      assert.doesNotMatch(JSON.stringify(issues), /s3cret|admin:|user@/);
    }
  });

  it('refuses CIDR ranges that are not ranges in http.lookupAllowFrom', () => {
    const bad = ['198.51.100.0/33', '::1/129', 'localhost', '198.51.100.0/24/1', '', '1.2.3.4/x'];
    const issues = issuesOf(() => validateConfig({ http: { lookupAllowFrom: bad } }));
    assert.deepEqual(paths(issues), bad.map((_, i) => `http.lookupAllowFrom.${i}`).sort());
    const ok = validateConfig({ http: { lookupAllowFrom: ['198.51.100.0/24', '192.0.2.7', '2001:db8::/32', '::1'] } });
    assert.equal(ok.http.lookupAllowFrom.length, 4);
  });

  it('refuses StartTLS with ldaps://', () => {
    const issues = issuesOf(() =>
      validateConfig({ domains: ['example.com'], directory: { kind: 'ldap', ldap: { urls: ['ldaps://dc:636'], startTLS: true } } }),
    );
    assert.deepEqual(paths(issues), ['directory.ldap.startTLS']);
  });

  it('checks the LDAP filter', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ directory: { ldap: { filter: '(mail=x)' } } }))), ['directory.ldap.filter']);
    assert.deepEqual(paths(issuesOf(() => validateConfig({ directory: { ldap: { filter: '(mail=%s' } } }))), ['directory.ldap.filter']);
  });

  it('reports bad and duplicate domain names', () => {
    const issues = issuesOf(() => validateConfig({ domains: ['example.com', 'Example.COM.', 'not a domain'], catchAllDomains: ['bad_domain'] }));
    assert.deepEqual(paths(issues), ['catchAllDomains.0', 'domains.Example.COM.', 'domains.not a domain']);
  });

  it('refuses a delimiter with "@" or whitespace', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ recipientDelimiter: '@' }))), ['recipientDelimiter']);
    assert.deepEqual(paths(issuesOf(() => validateConfig({ recipientDelimiter: '+ ' }))), ['recipientDelimiter']);
  });

  it('needs ldap and a snapshot path for sync', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ sync: { enabled: true } }))), ['sync.enabled', 'sync.snapshotPath']);
  });

  it('lists all three mistakes of one file', () => {
    const p = file(
      [
        'listen:',
        '  http: "nowhere"',
        'cache:',
        '  positiveTtl: "forever"',
        'directory:',
        '  ldap:',
        '    urlz: ["ldap://x"]',
        '',
      ].join('\n'),
    );
    const issues = issuesOf(() => loadConfig(p, {}));
    assert.deepEqual(paths(issues), ['cache.positiveTtl', 'directory.ldap.urlz', 'listen.http']);
    const err = (() => {
      try {
        loadConfig(p, {});
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    for (const path of ['cache.positiveTtl', 'directory.ldap.urlz', 'listen.http']) assert.match(err!.message, new RegExp(path.replace(/\./g, '\\.')));
  });

  it('lists schema mistakes and cross-check mistakes of one file together', () => {
    const p = file('directory:\n  kind: ldap\ncache:\n  positiveTtl: "forever"\n  maxEntrys: 5\n');
    assert.deepEqual(paths(issuesOf(() => loadConfig(p, {}))), ['cache.maxEntrys', 'cache.positiveTtl', 'directory.ldap.urls', 'domains']);
  });

  it('reports a YAML syntax error with its line', () => {
    const p = file('listen:\n  http: "127.0.0.1:8080"\ncache: [unclosed\n');
    const issues = issuesOf(() => loadConfig(p, {}));
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /YAML syntax error at line \d+/);
  });

  it('refuses a file that is not a mapping', () => {
    assert.match(issuesOf(() => loadConfig(file('- a\n- b\n'), {}))[0]!.message, /mapping/);
  });

  it('throws CONFIG_READ for a missing file', () => {
    assert.throws(
      () => loadConfig(join(dir, 'missing.yaml'), {}),
      (e: unknown) => e instanceof RcptgateError && !(e instanceof ConfigError) && e.code === ErrorCodes.CONFIG_READ,
    );
  });
});

describe('environment overrides', () => {
  it('derives names from key paths', () => {
    assert.equal(envName(['listen', 'http']), 'RCPTGATE_LISTEN_HTTP');
    assert.equal(envName(['cache', 'positiveTtl']), 'RCPTGATE_CACHE_POSITIVE_TTL');
    assert.equal(envName(['directory', 'ldap', 'bindDN']), 'RCPTGATE_DIRECTORY_LDAP_BIND_DN');
  });

  it('sets strings, lists, durations, booleans and numbers', () => {
    const { config } = loadConfig(null, {
      RCPTGATE_LISTEN_HTTP: '127.0.0.1:0',
      RCPTGATE_LISTEN_MILTER: 'null',
      RCPTGATE_DIRECTORY_KIND: 'ldap',
      RCPTGATE_DIRECTORY_LDAP_URLS: 'ldap://a:389, ldap://b:389',
      RCPTGATE_DOMAINS: 'example.com,example.org',
      RCPTGATE_CACHE_POSITIVE_TTL: '2h',
      RCPTGATE_CACHE_MAX_ENTRIES: '500',
      RCPTGATE_DIRECTORY_LDAP_START_TLS: 'true',
      RCPTGATE_DIRECTORY_LDAP_TLS_REJECT_UNAUTHORIZED: 'no',
      RCPTGATE_STATUS_PAGE: '0',
    });
    assert.equal(config.listen.http, '127.0.0.1:0');
    assert.equal(config.listen.milter, null);
    assert.equal(config.directory.kind, 'ldap');
    assert.deepEqual(config.directory.ldap.urls, ['ldap://a:389', 'ldap://b:389']);
    assert.deepEqual(config.domains, ['example.com', 'example.org']);
    assert.equal(config.cache.positiveTtl, '2h');
    assert.equal(config.cache.maxEntries, 500);
    assert.equal(config.directory.ldap.startTLS, true);
    assert.equal(config.directory.ldap.tls.rejectUnauthorized, false);
    assert.equal(config.statusPage, false);
  });

  it('overrides the file and keeps its other keys', () => {
    const p = file('cache:\n  positiveTtl: "10m"\n  negativeTtl: "1m"\n');
    const { config } = loadConfig(p, { RCPTGATE_CACHE_POSITIVE_TTL: '30m' });
    assert.equal(config.cache.positiveTtl, '30m');
    assert.equal(config.cache.negativeTtl, '1m');
  });

  it('reports an unknown RCPTGATE_ variable', () => {
    const issues = issuesOf(() => loadConfig(null, { RCPTGATE_LISTEN_HTTPS: '127.0.0.1:443' }));
    assert.deepEqual(issues, [{ path: 'env RCPTGATE_LISTEN_HTTPS', message: 'unknown configuration variable' }]);
  });

  it('ignores the reserved variables and other prefixes', () => {
    assert.doesNotThrow(() =>
      loadConfig(null, { RCPTGATE_LDAP_BIND_PASSWORD: 'x', RCPTGATE_ADMIN_TOKEN: 'y', RCPTGATEWAY: 'z', PATH: '/bin' }),
    );
  });

  it('reports bad values from the environment by key path', () => {
    const issues = issuesOf(() =>
      loadConfig(null, { RCPTGATE_CACHE_POSITIVE_TTL: 'forever', RCPTGATE_CACHE_MAX_ENTRIES: 'lots', RCPTGATE_STATUS_PAGE: 'maybe' }),
    );
    assert.deepEqual(paths(issues), ['cache.maxEntries', 'cache.positiveTtl', 'statusPage']);
  });

  it('lists environment and file problems together', () => {
    const p = file('mode: loud\n');
    assert.deepEqual(paths(issuesOf(() => loadConfig(p, { RCPTGATE_NOPE: '1' }))), ['env RCPTGATE_NOPE', 'mode']);
  });
});

describe('domains', () => {
  it('the list form gives every domain empty rules, normalized', () => {
    const rules = domainRules(validateConfig({ domains: ['Example.COM.', 'bücher.example'] }));
    assert.deepEqual([...rules.keys()], ['example.com', 'xn--bcher-kva.example']);
    assert.deepEqual(rules.get('example.com'), {});
  });

  it('the map form carries per-domain rules', () => {
    const p = file(
      [
        'domains:',
        '  example.com: {}',
        '  legacy.example: { catchAll: true }',
        '  new.example: { mode: shadow, onDirectoryError: tempfail, alwaysValid: [postmaster, abuse, hostmaster] }',
        '  bare.example:',
        '',
      ].join('\n'),
    );
    const rules = domainRules(loadConfig(p, {}).config);
    assert.deepEqual([...rules.keys()].sort(), ['bare.example', 'example.com', 'legacy.example', 'new.example']);
    assert.deepEqual(rules.get('legacy.example'), { catchAll: true });
    assert.deepEqual(rules.get('new.example'), { mode: 'shadow', onDirectoryError: 'tempfail', alwaysValid: ['postmaster', 'abuse', 'hostmaster'] });
    assert.deepEqual(rules.get('bare.example'), {});
  });

  it('reports a bad element of the list form by index', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ domains: ['example.com', 5] }))), ['domains.1']);
  });

  it('refuses bad values in a per-domain rule', () => {
    assert.deepEqual(paths(issuesOf(() => validateConfig({ domains: { 'example.com': { mode: 'loud' } } }))), ['domains.example.com.mode']);
  });
});

describe('secrets', () => {
  it('redacts secret-looking keys at any depth, but not paths to secret files', () => {
    const out = redact({
      bindPassword: 'hunter2',
      nested: { adminToken: 'abc', tokenFile: '/run/token', clientSecret: 's', none: null },
      list: [{ password: 'p' }],
      bindPasswordFile: '/run/pw',
      count: 3,
    });
    assert.deepEqual(out, {
      bindPassword: '[redacted]',
      nested: { adminToken: '[redacted]', tokenFile: '/run/token', clientSecret: '[redacted]', none: null },
      list: [{ password: '[redacted]' }],
      bindPasswordFile: '/run/pw',
      count: 3,
    });
  });

  it('redact keeps the default config intact (it holds no secrets)', () => {
    const c = configSchema.parse({});
    assert.deepEqual(redact(c), JSON.parse(JSON.stringify(c)));
  });

  it('readSecret prefers the file, drops one trailing newline, falls back to the env value', () => {
    const p = join(dir, 'secret');
    writeFileSync(p, 's3cret\n');
    assert.equal(readSecret(p, 'from-env', 'bind password'), 's3cret');
    assert.equal(readSecret(null, 'from-env', 'bind password'), 'from-env');
    assert.equal(readSecret(null, undefined, 'bind password'), null);
  });

  it('readSecret names the file it cannot read', () => {
    assert.throws(
      () => readSecret(join(dir, 'nope'), undefined, 'bind password'),
      (e: unknown) => e instanceof RcptgateError && e.code === ErrorCodes.CONFIG_READ && /bind password file/.test(e.message),
    );
  });
});
