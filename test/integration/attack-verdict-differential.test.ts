/**
 * Differential test: rcptgate against Postfix's own `ldap:` table, with the same query, on the
 * same slapd. A corpus of tricky recipients (case, sub-addresses with several delimiters and empty
 * extensions, quoted local parts, percent hack, bang paths, trailing dots, IDN, 64/65-octet local
 * parts, filter metacharacters, `@domain` catch-all entries, aliases in mailAlternateAddress,
 * values under attribute options, duplicates, values stored with spaces, alias objects, an entry
 * outside the served domains) goes through two real Postfix backup MXes, one asking its
 * `ldap:` table and one asking rcptgate's socketmap. Every RCPT must get the same answer but for
 * the documented differences listed below. The same corpus asked concurrently (batched OR
 * searches) must answer as one at a time, and an entry moved between OUs is never unknown.
 * A referral object inside the base is left out: it makes every negative answer partial, so
 * rcptgate defers where the native table, which ignores references, rejects (on purpose; see
 * attack-r9b-dir-referrals.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { createMilterServer } from '../../src/milter/server.js';
import { createPolicyServer } from '../../src/policy/server.js';
import { createSocketmapServer } from '../../src/socketmap/server.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { postmapBulk, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { rawRcpts } from '../helpers/raw-smtp.js';
import { FIXTURE_DIR, startSlapd, type Slapd } from '../helpers/slapd.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const person = (uid: string, ...lines: string[]): string =>
  `dn: uid=${uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\n${lines.join('\n')}`;

/** What a careless directory administrator leaves behind, beside the fixture (alice, bob, carol, ...). */
const CORPUS_LDIF = [
  'dn: ou=moved,dc=example,dc=com\nobjectClass: organizationalUnit\nou: moved',
  person('catchall', 'mail: @catchall.example'),
  person('spaced', `mail:: ${b64(' spaced@example.com ')}`),
  person('owner', 'mail: owner@example.com'),
  person('list', 'mail: list@example.com'),
  person('dup1', 'mail: dup@example.com', 'employeeType: disabled'),
  person('dup2', 'mail: dup@example.com'),
  person('star', 'mail: a*b@example.com'),
  person('paren', 'mail: p(x)@example.com'),
  person('pct', 'mail: user%host@example.com'),
  person('bang', 'mail: host!user@example.com'),
  person('long', `mail: ${'l'.repeat(64)}@example.com`),
  person('toolong', `mail: ${'t'.repeat(65)}@example.com`),
  person('backslash', 'mail: a\\b@example.com'),
  person('stray', 'mail: stray@example.net'),
  person('tagged', 'mail: tagged@example.com', 'mailAlternateAddress;lang-de: tagged.de@example.com'),
  person('emptyext', 'mail: empty+@example.com'),
  person('plususer', 'mail: plus+fixed@example.com'),
  person('quoted', 'mail: "john doe"@example.com'),
  person('trail', 'mail: trail@example.com.'),
  person('mover', 'mail: mover@example.com'),
  'dn: cn=aliasobj,ou=people,dc=example,dc=com\nobjectClass: alias\nobjectClass: extensibleObject\ncn: aliasobj\naliasedObjectName: uid=bob,ou=people,dc=example,dc=com\nmail: aliased@example.com',
];

const DOMAINS = ['example.com', 'example.org', 'xn--bcher-kva.example', 'catchall.example'];
const DELIMITERS = '+-';

const CORPUS = [
  'alice@example.com', 'ALICE@EXAMPLE.COM', 'Alice@Example.Com', 'alice+x@example.com', 'alice+@example.com', '+alice@example.com',
  'alice++x@example.com', 'alice+x-y@example.com', 'alice-x+y@example.com', 'ally@example.com', 'ally+tag@example.com', 'alice.smith@example.com',
  'carol.mixed@example.com', 'CAROL.MIXED@example.com', 'bob@example.com.', 'bob@EXAMPLE.COM.', 'nobody@example.com', 'nobody+x@example.com',
  'mallory@example.com', 'dup@example.com', 'spaced@example.com', 'owner@example.com', 'owner-list@example.com', 'Owner-List@example.com',
  'list-request@example.com', 'list-x@example.com', 'list+x@example.com', 'first-last@example.com', 'first-last+x@example.com',
  'anyone@catchall.example', 'x+y@catchall.example', 'a*b@example.com', 'a*@example.com', '*@example.com', '"p(x)"@example.com',
  'user%host@example.com', 'host!user@example.com', 'user@host@example.com', `${'l'.repeat(64)}@example.com`, `${'l'.repeat(65)}@example.com`,
  'stray@example.net', 'tagged.de@example.com', 'TAGGED.DE@example.com', 'empty+@example.com', 'empty@example.com', 'plus+fixed@example.com',
  'plus@example.com', 'plus+other@example.com', '"john doe"@example.com', '"alice"@example.com', '"alice+x"@example.com', 'trail@example.com',
  'trail@example.com.', 'aliased@example.com', 'info@xn--bcher-kva.example', 'INFO@XN--BCHER-KVA.EXAMPLE',
  'info@bücher.example', 'dave@example.org', 'dave@example.org.', 'mover@example.com', '@catchall.example', '@example.com',
  'postmaster@example.com', `${'t'.repeat(65)}@example.com`, '"a\\\\b"@example.com', 'a\\b@example.com',
];

/**
 * Where rcptgate answers otherwise on purpose, with its reply code: postmaster is always valid
 * (RFC 5321 §4.5.1, README `alwaysValid`); an over-long local part is invalid. (`<@catchall.example>` agrees: Postfix asks for
 * `""@catchall.example`, which rcptgate, as Postfix, finds through the catch-all entry.)
 */
const DOCUMENTED: Record<string, string> = {
  '<postmaster@example.com>': '250',
  // A local part over 64 octets is invalid (RFC 5321 §4.5.3.1.1, README "Verdicts"), even where
  // a directory holds one: such an address cannot cross the Internet intact.
  [`<${'t'.repeat(65)}@example.com>`]: '550',
};

async function startRcptgate(slapd: Slapd, ldap: Record<string, unknown>, cache: Record<string, unknown> = {}) {
  const config = validateConfig({
    domains: DOMAINS,
    recipientDelimiter: DELIMITERS,
    cache,
    directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, ...ldap } },
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = new LdapDirectory({ config: config.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger: silentLogger() });
  const validator = new RecipientValidatorImpl({ config, directory, metrics, logger: silentLogger() });
  return { directory, validator, metrics };
}

const MX_SETTINGS = {
  relay_domains: DOMAINS.join(' '),
  recipient_delimiter: DELIMITERS,
  smtpd_hard_error_limit: '1000',
  smtpd_soft_error_limit: '1000',
  smtpd_error_sleep_time: '0',
  smtpd_recipient_limit: '1000',
};

describe("verdicts against Postfix's own ldap: table on the same slapd", () => {
  let slapd: Slapd;
  let tmp: string;
  let ours: Awaited<ReturnType<typeof startRcptgate>>;
  let server: TcpServer;
  let native: PostfixInstance;
  let viaRcptgate: PostfixInstance;
  let cf: string;
  let socketmap: string;

  before(async () => {
    slapd = await startSlapd({ ldifText: CORPUS_LDIF });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-differential-'));
    cf = path.join(tmp, 'ldap.cf');
    const table = [`server_host = ldap://127.0.0.1:${slapd.port}`, 'version = 3', 'bind = no', `search_base = ${slapd.baseDN}`, 'scope = sub'];
    table.push('query_filter = (|(mail=%s)(mailAlternateAddress=%s))', 'result_attribute = mail', 'timeout = 10');
    await writeFile(cf, `${table.join('\n')}\n`, { mode: 0o644 });
    ours = await startRcptgate(slapd, {});
    server = createSocketmapServer({ validator: ours.validator, metrics: ours.metrics, logger: silentLogger(), maxConnections: 100, idleTimeoutMs: 300_000 });
    const { port } = await server.listen('127.0.0.1:0');
    socketmap = `socketmap:inet:127.0.0.1:${port}:recipients`;
    native = await startPostfix({ mainCf: { ...MX_SETTINGS, relay_recipient_maps: `ldap:${cf}` } });
    viaRcptgate = await startPostfix({ mainCf: { ...MX_SETTINGS, relay_recipient_maps: socketmap } });
  });

  after(async () => {
    await native?.close();
    await viaRcptgate?.close();
    await server?.close(1000);
    await ours?.directory.close();
    await slapd?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('every RCPT of the corpus gets the answer of the native table, cold and then cached, but the documented differences', async () => {
    const args = CORPUS.map((k) => `<${k}>`);
    const expected = (await rawRcpts(native.port, '127.0.0.1', 'sender@sender.example', args)).map((r) => r.slice(0, 3));
    // The native table answers the cases this corpus is built around as the directory says.
    const nativeCode = (k: string): string => expected[CORPUS.indexOf(k)]!;
    assert.deepEqual(['anyone@catchall.example', 'owner-list@example.com', 'list-request@example.com', 'list-x@example.com'].map(nativeCode), ['250', '550', '550', '250']);
    for (const pass of ['cold', 'cached']) {
      const got = (await rawRcpts(viaRcptgate.port, '127.0.0.1', 'sender@sender.example', args)).map((r) => r.slice(0, 3));
      const wrong = args.filter((a, i) => got[i] !== (DOCUMENTED[a] ?? expected[i])).map((a) => `${a}: native ${expected[args.indexOf(a)]}, rcptgate ${got[args.indexOf(a)]}`);
      assert.deepEqual(wrong, [], `${pass}: answers that differ from Postfix's own ldap: table`);
    }
  });

  test('policy delegation and the milter behind real Postfix MXes answer the corpus as the native table does', async () => {
    const { validator, metrics } = ours;
    const logger = silentLogger();
    // The corpus is one client's many unknown recipients on purpose: no tarpit for it.
    const harvest = new HarvestGuard({ maxUnknown: 1_000_000, windowMs: 600_000 });
    const policy = createPolicyServer({ validator, metrics, logger, harvest, maxConnections: 20, idleTimeoutMs: 60_000 });
    const milter = createMilterServer({ validator, metrics, logger, harvest, maxConnections: 20, idleTimeoutMs: 60_000 });
    const mxes: PostfixInstance[] = [];
    try {
      const policyPort = (await policy.listen('127.0.0.1:0')).port;
      const milterPort = (await milter.listen('127.0.0.1:0')).port;
      const restrictions = `reject_unauth_destination, check_policy_service inet:127.0.0.1:${policyPort}, permit`;
      mxes.push(await startPostfix({ mainCf: { ...MX_SETTINGS, smtpd_recipient_restrictions: restrictions } }));
      mxes.push(await startPostfix({ mainCf: { ...MX_SETTINGS, smtpd_milters: `inet:127.0.0.1:${milterPort}`, milter_default_action: 'tempfail' } }));
      const args = CORPUS.map((k) => `<${k}>`);
      const expected = (await rawRcpts(native.port, '127.0.0.1', 'sender@sender.example', args)).map((r) => r.slice(0, 3));
      for (const [name, mx] of [['policy', mxes[0]!], ['milter', mxes[1]!]] as const) {
        const got = (await rawRcpts(mx.port, '127.0.0.1', 'sender@sender.example', args)).map((r) => r.slice(0, 3));
        const wrong: string[] = [];
        for (let i = 0; i < args.length; i++) {
          const want = DOCUMENTED[args[i]!] ?? expected[i]!;
          // An invalid address in a served domain is 501 5.1.3 from policy and milter (README), where the table says 550.
          const invalid = got[i] === '501' && want === '550' && (await validator.lookup(CORPUS[i]!, { frontend: 'http' })).verdict === 'invalid';
          if (got[i] !== want && !invalid) wrong.push(`${args[i]}: native ${expected[i]}, rcptgate ${got[i]}`);
        }
        assert.deepEqual(wrong, [], `${name}: answers that differ from Postfix's own ldap: table`);
      }
    } finally {
      for (const mx of mxes) await mx.close();
      await policy.close(1000);
      await milter.close(1000);
    }
  });

  test('postmap -q: the keys only one side finds are those rcptgate normalizes and Postfix never sends raw', async () => {
    // One postmap process per map (each start costs seconds here), every key on one connection.
    const [nativeRun, oursRun] = [await postmapBulk(CORPUS, `ldap:${cf}`), await postmapBulk(CORPUS, socketmap)];
    assert.equal(nativeRun.stderr.trim() + oursRun.stderr.trim(), '', 'no lookup errors');
    const onlyNative = CORPUS.filter((k) => nativeRun.found.has(k) && !oursRun.found.has(k));
    const onlyOurs = CORPUS.filter((k) => oursRun.found.has(k) && !nativeRun.found.has(k));
    // postmap asks the native table the raw key; smtpd would first strip the trailing dot, try
    // the sub-address's base and @domain. A value outside the served domains is not ours. And
    // keys over the RFC limits, without a local part or with an unquoted backslash are no
    // addresses as written (smtpd sends `""@…` and `"a\\b"@…`).
    const notRaw = ['@catchall.example', 'stray@example.net', `${'t'.repeat(65)}@example.com`, 'trail@example.com.', 'a\\b@example.com'];
    assert.deepEqual(onlyNative.sort(), notRaw.sort());
    // rcptgate does what smtpd does before asking a table: sub-addresses, trailing dots, quotes
    // that are not needed, U-labels, @domain; and postmaster is always valid.
    assert.deepEqual(onlyOurs.sort(), [
      'alice+x@example.com', 'alice+@example.com', 'alice++x@example.com', 'alice+x-y@example.com', 'alice-x+y@example.com', 'ally+tag@example.com',
      'bob@example.com.', 'bob@EXAMPLE.COM.', 'list-x@example.com', 'list+x@example.com', 'anyone@catchall.example',
      'x+y@catchall.example', '"p(x)"@example.com', '"alice"@example.com', '"alice+x"@example.com', 'info@bücher.example', 'dave@example.org.',
      'postmaster@example.com', '"a\\\\b"@example.com',
    ].sort());
  });

  test('the corpus asked all at once, so batched OR searches mix its keys, answers as one search per key does', async () => {
    const single = await startRcptgate(slapd, { batchSize: 1 }, { maxEntries: 0 });
    // One connection, one search at a time: the lookups queue and leave in batches of 16.
    const batched = await startRcptgate(slapd, { batchSize: 16, poolSize: 1, maxInFlightPerConnection: 1 }, { maxEntries: 0 });
    try {
      const expected: string[] = [];
      for (const k of CORPUS) expected.push((await single.validator.lookup(k, { frontend: 'http' })).verdict);
      assert.ok(expected.includes('valid') && expected.includes('unknown'), 'the corpus has valid and unknown addresses');
      for (let round = 0; round < 3; round++) {
        const got = await Promise.all([...CORPUS, ...CORPUS].map(async (k) => (await batched.validator.lookup(k, { frontend: 'http' })).verdict));
        assert.deepEqual(got, [...expected, ...expected], `round ${round}: batching changed a verdict`);
      }
      assert.ok((await batched.metrics.registry.getSingleMetricAsString('rcptgate_directory_searches_total')).includes('kind="batch"'), 'batches were sent');
    } finally {
      await single.directory.close();
      await batched.directory.close();
    }
  });

  test('an entry moved between OUs while it is looked up is never unknown', async () => {
    const probe = await startRcptgate(slapd, {}, { maxEntries: 0 });
    const move = (from: string, to: string) =>
      slapd.modify(`dn: uid=mover,ou=${from},dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=mover\ndeleteoldrdn: 1\nnewsuperior: ou=${to},dc=example,dc=com\n`);
    let moving = true;
    const verdicts = new Map<string, number>();
    const asker = (async () => {
      while (moving) {
        const r = await probe.validator.lookup('mover@example.com', { frontend: 'http' });
        verdicts.set(r.verdict, (verdicts.get(r.verdict) ?? 0) + 1);
      }
    })();
    try {
      for (let i = 0; i < 10; i++) {
        await move('people', 'moved');
        await move('moved', 'people');
      }
    } finally {
      moving = false;
      await asker;
      await probe.directory.close();
    }
    assert.deepEqual([...verdicts.keys()], ['valid'], `verdicts while the entry moved: ${JSON.stringify([...verdicts])}`);
    assert.ok(verdicts.get('valid')! >= 20, 'the lookups ran during the moves');
  });
});

/**
 * SMTPUTF8 addresses in a directory that holds UTF-8 (mailAlternateAddress as a caseIgnoreMatch
 * directory string): U-label domains, non-ASCII local parts in either case, NFC and NFD spellings.
 * Postfix sends such keys as the client wrote them (lowercased by smtpd); rcptgate must find
 * whatever the native table finds.
 */
describe("SMTPUTF8 keys against Postfix's own ldap: table", () => {
  const utf8 = (uid: string, address: string): string => person(uid, `mailAlternateAddress:: ${b64(address)}`);
  let slapd: Slapd;
  let tmp: string;
  before(async () => {
    const entries = [utf8('ulabel', 'info@bücher.example'), utf8('jose', 'josé@example.com'), utf8('nfd', 'rene\u0301@example.com'), utf8('upper', 'ÄRGER@example.com')];
    slapd = await startSlapd({ fixture: false, schemaFile: path.join(FIXTURE_DIR, 'unicode-alternate.schema'), ldifText: entries });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-differential-'));
  });
  after(async () => {
    await slapd?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('every key the native table finds, rcptgate finds, whether the directory holds the U-label or the client writes the A-label', async () => {
    const cf = path.join(tmp, 'ldap.cf');
    const table = [`server_host = ldap://127.0.0.1:${slapd.port}`, 'version = 3', 'bind = no', `search_base = ${slapd.baseDN}`, 'scope = sub'];
    table.push('query_filter = (|(mail=%s)(mailAlternateAddress=%s))', 'result_attribute = mailAlternateAddress');
    await writeFile(cf, `${table.join('\n')}\n`, { mode: 0o644 });
    const ours = await startRcptgate(slapd, {});
    const server = createSocketmapServer({ validator: ours.validator, metrics: ours.metrics, logger: silentLogger(), maxConnections: 10, idleTimeoutMs: 60_000 });
    try {
      const { port } = await server.listen('127.0.0.1:0');
      const keys = ['info@bücher.example', 'INFO@BÜCHER.EXAMPLE', 'josé@example.com', 'JOSÉ@example.com', 'jose\u0301@example.com', 'rené@example.com', 'rene\u0301@example.com', 'ärger@example.com', 'ÄRGER@example.com', 'nobody@bücher.example'];
      const native = await postmapBulk(keys, `ldap:${cf}`);
      const viaRcptgate = await postmapBulk([...keys, 'info@xn--bcher-kva.example'], `socketmap:inet:127.0.0.1:${port}:recipients`);
      assert.deepEqual(keys.filter((k) => native.found.has(k)), keys.slice(0, -1), 'the native table finds every spelling but nobody@');
      assert.deepEqual(keys.filter((k) => native.found.has(k) && !viaRcptgate.found.has(k)), [], 'keys the native table finds and rcptgate does not');
      assert.ok(!viaRcptgate.found.has('nobody@bücher.example'));
      // The same mailbox written with the A-label (RFC 5890: the same domain).
      assert.equal(viaRcptgate.found.get('info@xn--bcher-kva.example'), 'info@bücher.example');
    } finally {
      await server.close(1000);
      await ours.directory.close();
    }
  });
});
