/**
 * The socketmap front end against real Postfix clients: `postmap -q` (single and bulk on one
 * connection), a private Postfix primary MX using the `access` map, and a private backup MX using
 * `domains` + `recipients` with the engine backed by a real slapd (stopped mid-test).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSocketmapServer } from '../../src/socketmap/server.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { validateConfig } from '../../src/config/load.js';
import { EXAMPLE_LDIF, LdifDirectory } from '../../src/directory/ldif.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import type { Directory } from '../../src/directory/types.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { postmapBulk, postmapQuery, startPostfix, swaks, type PostfixInstance, type PostmapResult } from '../helpers/postfix.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** What a postmap run says about one key: found (with value), not found, or a lookup error. */
function outcome(r: PostmapResult): { found: string } | 'notfound' | { error: string } {
  if (r.code === 0) return { found: r.lines.join('\n') };
  if (r.code === 1 && r.stdout === '' && r.stderr.trim() === '') return 'notfound';
  return { error: `exit ${r.code}: ${r.stderr.trim()}` };
}

async function startRcptgate(directory: Directory, configInput: Record<string, unknown>) {
  const config = validateConfig(configInput);
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = silentLogger();
  const validator = new RecipientValidatorImpl({ config, directory, metrics, logger });
  const server = createSocketmapServer({ validator, metrics, logger, maxConnections: 100, idleTimeoutMs: 300_000 });
  const { port } = await server.listen('127.0.0.1:0');
  return { server, port, validator, metrics };
}

// The example directory (examples/directory.ldif), written out independently of the engine:
// every address that is valid and the canonical (first `mail`) address it answers with.
const EXAMPLE_VALID: Record<string, string> = {
  'alice@example.com': 'alice@example.com',
  'alice.smith@example.com': 'alice@example.com',
  'ally@example.com': 'alice@example.com',
  'bob@example.com': 'bob@example.com',
  'sales@example.com': 'bob@example.com',
  'carol.mixed@example.com': 'Carol.Mixed@Example.com',
  'first-last@example.com': 'first-last@example.com',
  'staff@example.com': 'staff@example.com',
  'carol@example.org': 'carol@example.org',
  'dave@example.org': 'dave@example.org',
};

const INJECTION_KEYS = [
  '*@example.com',
  '*)(mail=*@example.com',
  'alice@example.com)(|(mail=*',
  'al*ce@example.com',
  '\\2a@example.com',
  'alice\\@example.com',
  '(mail=*)@example.com',
  'alice@example.com*',
  'a\u0001lice@example.com',
  'alice@exa mple.com',
];

describe('socketmap with the real engine over the example directory', () => {
  let rcptgate: Awaited<ReturnType<typeof startRcptgate>>;
  let map: (name: string) => string;
  before(async () => {
    rcptgate = await startRcptgate(LdifDirectory.fromFile(EXAMPLE_LDIF), { directory: { kind: 'ldif', ldif: { path: EXAMPLE_LDIF } } });
    map = (name) => `socketmap:inet:127.0.0.1:${rcptgate.port}:${name}`;
  });
  after(() => rcptgate?.server.close(1000));

  describe('postmap -q recipients', () => {
    const cases: Array<[string, string, { found: string } | 'notfound']> = [
      ['a valid address', 'alice@example.com', { found: 'alice@example.com' }],
      ['a second mail value', 'alice.smith@example.com', { found: 'alice@example.com' }],
      ['an alternate address (alias)', 'sales@example.com', { found: 'bob@example.com' }],
      ['a group address', 'staff@example.com', { found: 'staff@example.com' }],
      ['a +tag sub-address', 'alice+newsletter@example.com', { found: 'alice@example.com' }],
      ['mixed case (postmap does not lowercase)', 'ALICE@Example.COM', { found: 'alice@example.com' }],
      ['mixed case in the directory', 'carol.mixed@EXAMPLE.com', { found: 'Carol.Mixed@Example.com' }],
      ['the second domain', 'dave@example.org', { found: 'dave@example.org' }],
      ['a trailing dot on the domain', 'bob@example.com.', { found: 'bob@example.com' }],
      ['postmaster (always valid)', 'postmaster@example.org', { found: 'postmaster@example.org' }],
      ['an unknown address', 'nobody@example.com', 'notfound'],
      ['an unknown +tag address', 'nobody+x@example.com', 'notfound'],
      ['a disabled account', 'mallory@example.com', 'notfound'],
      ['a domain that is not ours', 'alice@example.net', 'notfound'],
      ['a bare domain', 'example.com', 'notfound'],
      ['an @domain key', '@example.com', 'notfound'],
      ['a local part only', 'alice', 'notfound'],
    ];
    for (const [what, key, expected] of cases) {
      it(`answers ${expected === 'notfound' ? 'NOTFOUND' : 'OK'} for ${what} (${key})`, async () => {
        const got = outcome(await postmapQuery(key, map('recipients')));
        if (expected !== 'notfound' && typeof got === 'object' && 'found' in got && key.startsWith('carol.mixed')) {
          assert.equal(got.found.toLowerCase(), expected.found.toLowerCase());
        } else {
          assert.deepEqual(got, expected);
        }
      });
    }

    it('answers NOTFOUND, never OK and never an error, for filter injection attempts', async () => {
      const results = await Promise.all(INJECTION_KEYS.map((key) => postmapQuery(key, map('recipients'))));
      results.forEach((r, i) => assert.deepEqual(outcome(r), 'notfound', INJECTION_KEYS[i]));
    });
  });

  describe('postmap -q domains', () => {
    it('answers OK with the normalized domain for served domains and NOTFOUND otherwise', async () => {
      assert.deepEqual(outcome(await postmapQuery('example.com', map('domains'))), { found: 'example.com' });
      assert.deepEqual(outcome(await postmapQuery('EXAMPLE.ORG', map('domains'))), { found: 'example.org' });
      const keys = ['example.net', 'sub.example.com', 'alice@example.com', '*', 'example.com)(x=*', '.example.com'];
      const results = await Promise.all(keys.map((key) => postmapQuery(key, map('domains'))));
      results.forEach((r, i) => assert.deepEqual(outcome(r), 'notfound', keys[i]));
    });
  });

  describe('postmap -q access', () => {
    it('answers DUNNO for valid, a 550 5.1.1 rejection for unknown, NOTFOUND for the rest', async () => {
      assert.deepEqual(outcome(await postmapQuery('bob@example.com', map('access'))), { found: 'DUNNO' });
      assert.deepEqual(outcome(await postmapQuery('alice+x@example.com', map('access'))), { found: 'DUNNO' });
      assert.deepEqual(outcome(await postmapQuery('nobody@example.com', map('access'))), {
        found: '550 5.1.1 User unknown',
      });
      assert.deepEqual(outcome(await postmapQuery('mallory@example.com', map('access'))), {
        found: '550 5.1.1 User unknown',
      });
      const keys = ['alice@example.net', 'example.com', 'nobody@', '@example.com', ...INJECTION_KEYS.filter((k) => !k.includes('\u0001'))];
      const results = await Promise.all(keys.map((key) => postmapQuery(key, map('access'))));
      for (const [i, key] of keys.entries()) {
        const got = outcome(results[i]!);
        if (key.endsWith('@example.com') && !key.startsWith('@') && got !== 'notfound') {
          // Syntactically valid but unknown local parts (e.g. "al*ce") are unknown; invalid ones
          // in a served domain are refused for their syntax.
          assert.ok(['550 5.1.1 User unknown', '501 5.1.3 Bad recipient address syntax'].includes((got as { found: string }).found), `${key}: ${JSON.stringify(got)}`);
        } else {
          assert.deepEqual(got, 'notfound', key);
        }
      }
    });
  });

  it('access: refuses an invalid address in a served domain with 501 5.1.3 (a 65-octet local part, misplaced dots)', async () => {
    for (const key of [`${'x'.repeat(65)}@example.com`, 'a..b@example.com', 'user5.@example.com']) {
      assert.deepEqual(outcome(await postmapQuery(key, map('access'))), { found: '501 5.1.3 Bad recipient address syntax' }, key);
    }
    // Not our domain: no opinion, whatever the syntax.
    assert.equal(outcome(await postmapQuery('a..b@example.net', map('access'))), 'notfound');
  });

  it('answers PERM (a lookup error) for an unknown map name', async () => {
    const got = outcome(await postmapQuery('alice@example.com', map('virtual')));
    assert.ok(typeof got === 'object' && 'error' in got, JSON.stringify(got));
  });

  it('answers several thousand keys on one postmap connection, each as expected', async () => {
    const keys: string[] = [];
    const expected = new Map<string, string | null>();
    const add = (key: string, value: string | null) => {
      if (expected.has(key)) return;
      keys.push(key);
      expected.set(key, value);
    };
    const valid = Object.entries(EXAMPLE_VALID);
    for (let i = 0; i < 6000; i++) {
      const [addr, canonical] = valid[i % valid.length]!;
      const [local, domain] = addr.split('@') as [string, string];
      switch (i % 6) {
        case 0: add(`${local}+t${i}@${domain}`, canonical); break;
        case 1: add(`${local}+T${i}@${domain.toUpperCase()}`, canonical); break;
        case 2: add(`nobody${i}@${domain}`, null); break;
        case 3: add(`${local}@other${i}.example`, null); break;
        case 4: add(`${local}${i}`, null); break;
        default: add(`*${i})(mail=*@${domain}`, null);
      }
    }
    for (const [addr, canonical] of valid) add(addr, canonical);
    assert.ok(keys.length > 5000);
    const r = await postmapBulk(keys, map('recipients'));
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    for (const [key, value] of expected) {
      const got = r.found.get(key) ?? null;
      if (value === null) assert.equal(got, null, key);
      else assert.equal(got?.toLowerCase(), value.toLowerCase(), key);
    }
    assert.equal(r.found.size, [...expected.values()].filter((v) => v !== null).length);
  });

  describe('a Postfix MX using check_recipient_access with the access map', () => {
    let mx: PostfixInstance;
    before(async () => {
      mx = await startPostfix({
        mainCf: {
          relay_domains: 'example.com, example.org',
          smtpd_recipient_restrictions: `check_recipient_access ${map('access')}, reject_unauth_destination`,
        },
      });
    });
    after(() => mx?.close());

    it('accepts valid recipients, rejects unknown ones with 550 5.1.1 and leaves other domains to Postfix', async () => {
      const r = await swaks({ port: mx.port, from: 'sender@client.test', to: ['Alice@example.com', 'nobody@example.com', 'someone@elsewhere.test', 'bob+x@example.com'] });
      const [alice, nobody, elsewhere, bob] = r.rcpt.map((x) => x.reply);
      assert.equal(alice?.code, 250, r.transcript);
      assert.equal(nobody?.code, 550, r.transcript);
      // smtpd wraps an access-map text as "<addr>: Recipient address rejected: TEXT".
      assert.match(nobody!.text, /^550 5\.1\.1 <nobody@example\.com>: Recipient address rejected: User unknown$/);
      assert.equal(elsewhere?.code, 454, r.transcript); // relay access denied: not our answer to give
      assert.equal(bob?.code, 250, r.transcript);
      assert.equal(r.data?.code, 250, r.transcript);
      const queued = await mx.queuedRecipients();
      assert.ok(queued.includes('alice@example.com'), JSON.stringify(queued));
      assert.ok(queued.includes('bob+x@example.com'), JSON.stringify(queued));
      assert.ok(!queued.includes('nobody@example.com'));
    });
  });
});

describe('Postfix backup MX with rcptgate over a real slapd', () => {
  let slapd: Slapd;
  let rcptgate: Awaited<ReturnType<typeof startRcptgate>>;
  let directory: LdapDirectory;
  let mx: PostfixInstance;

  before(async () => {
    slapd = await startSlapd();
    const configInput = {
      domains: ['example.com', 'example.org'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], bindDN: slapd.serviceDN, baseDN: slapd.baseDN, timeout: '2s' } },
    };
    const config = validateConfig(configInput);
    const metrics = new Metrics({ defaultMetrics: false });
    directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
    rcptgate = await startRcptgate(directory, configInput);
    const map = (name: string) => `socketmap:inet:127.0.0.1:${rcptgate.port}:${name}`;
    mx = await startPostfix({ mainCf: { relay_domains: map('domains'), relay_recipient_maps: map('recipients') } });
  });
  after(async () => {
    await mx?.close();
    await rcptgate?.server.close(1000);
    await directory?.close();
    await slapd?.close();
  });

  it('accepts a valid recipient (250, message queued) and rejects an unknown one with 550 5.1.1', async () => {
    const r = await swaks({ port: mx.port, from: 'sender@client.test', to: ['alice@example.com', 'nobody@example.com', 'sales@example.com'] });
    const [alice, nobody] = r.rcpt.map((x) => x.reply);
    assert.equal(alice?.code, 250, r.transcript);
    assert.equal(nobody?.code, 550, r.transcript);
    assert.match(nobody!.text, /^550 5\.1\.1 <nobody@example\.com>: .*User unknown in relay recipient table/);
    assert.equal(r.data?.code, 250, r.transcript);
    const queued = await mx.queuedRecipients();
    assert.ok(queued.includes('alice@example.com'), JSON.stringify(queued));
    assert.ok(!queued.includes('nobody@example.com'));
  });

  it('refuses to relay for domains it does not serve', async () => {
    const r = await swaks({ port: mx.port, from: 'sender@client.test', to: ['alice@example.net'] });
    assert.equal(r.rcpt[0]?.reply?.code, 454, r.transcript);
  });

  it('with slapd stopped: 451 4.3.0 for a never-cached address, 250 for a cached one', async () => {
    // Warm the cache for bob.
    const warm = await swaks({ port: mx.port, from: 'sender@client.test', to: ['bob@example.com'] });
    assert.equal(warm.rcpt[0]?.reply?.code, 250, warm.transcript);
    await slapd.stop();
    const r = await swaks({ port: mx.port, from: 'sender@client.test', to: ['bob@example.com', 'neverseen@example.com', 'dave@example.org'] });
    const [bob, neverseen, dave] = r.rcpt.map((x) => x.reply);
    assert.equal(bob?.code, 250, r.transcript);
    assert.equal(neverseen?.code, 451, r.transcript);
    assert.match(neverseen!.text, /^451 4\.3\.0 /);
    assert.equal(dave?.code, 451, r.transcript); // valid in the directory, but never asked: defer, never reject
    assert.equal(r.data?.code, 250, r.transcript);
    assert.ok((await mx.queuedRecipients()).includes('bob@example.com'));
    await slapd.start();
  });
});
