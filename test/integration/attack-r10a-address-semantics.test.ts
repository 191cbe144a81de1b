/**
 * Address semantics against Postfix's own `ldap:` table on the same slapd: recipients a harvester
 * or a spammer writes on purpose, and what a careless directory admin stores, go through real
 * Postfix backup MXes (one asking its `ldap:` table, one asking rcptgate's socketmap, one asking
 * its policy server, one running its milter) and through rcptgate's HTTP API. Every front end must
 * give the native table's verdict.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { rawRcpts } from '../helpers/raw-smtp.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const person = (uid: string, ...lines: string[]): string =>
  `dn: uid=${uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: mailRecipient\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\n${lines.join('\n')}`;

const LDIF = [
  person('catchall', 'mail: @catchall.example'),
  person('long', `mail: ${'l'.repeat(64)}@example.com`),
  person('quotedbox', 'mail: "al x"@example.com'),
  person('spacebox', 'mail: al y@example.com'),
];
const DOMAINS = ['example.com', 'example.org', 'catchall.example'];
const DELIMITERS = '+-';
const MX = {
  relay_domains: DOMAINS.join(' '),
  recipient_delimiter: DELIMITERS,
  smtpd_hard_error_limit: '1000',
  smtpd_soft_error_limit: '1000',
  smtpd_error_sleep_time: '0',
  smtpd_recipient_limit: '1000',
};

/** What Postfix's SMTP reply code means as a verdict of the HTTP API. */
const HTTP_FOR: Record<string, string[]> = { '250': ['valid'], '550': ['unknown', 'invalid'], '501': ['invalid'], '451': ['tempfail'] };

describe("address semantics: every front end against Postfix's own ldap: table", () => {
  let slapd: Slapd;
  let tmp: string;
  let app: App;
  const mx: Record<'native' | 'socketmap' | 'policy' | 'milter', PostfixInstance | undefined> = { native: undefined, socketmap: undefined, policy: undefined, milter: undefined };

  before(async () => {
    slapd = await startSlapd({ ldifText: LDIF });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-r10a-'));
    const cf = path.join(tmp, 'ldap.cf');
    const table = [`server_host = ldap://127.0.0.1:${slapd.port}`, 'version = 3', 'bind = no', `search_base = ${slapd.baseDN}`, 'scope = sub'];
    table.push('query_filter = (|(mail=%s)(mailAlternateAddress=%s))', 'result_attribute = mail', 'timeout = 10');
    await writeFile(cf, `${table.join('\n')}\n`, { mode: 0o644 });
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
        domains: DOMAINS,
        recipientDelimiter: DELIMITERS,
        directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
        // One client asks many unknown recipients on purpose: no tarpit for it.
        policy: { harvest: { maxUnknown: 0 } },
        log: { level: 'warn' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
    const a = app.addresses;
    mx.native = await startPostfix({ mainCf: { ...MX, relay_recipient_maps: `ldap:${cf}` } });
    mx.socketmap = await startPostfix({ mainCf: { ...MX, relay_recipient_maps: `socketmap:inet:127.0.0.1:${a.socketmap!.port}:recipients` } });
    const restrictions = `reject_unauth_destination, check_policy_service inet:127.0.0.1:${a.policy!.port}, permit`;
    mx.policy = await startPostfix({ mainCf: { ...MX, smtpd_recipient_restrictions: restrictions } });
    mx.milter = await startPostfix({ mainCf: { ...MX, smtpd_milters: `inet:127.0.0.1:${a.milter!.port}`, milter_default_action: 'tempfail' } });
  });

  after(async () => {
    for (const m of Object.values(mx)) await m?.close();
    await app?.close();
    await slapd?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** The recipients' answers that differ from the native table's, one line each (empty: all agree). */
  async function differences(recipients: string[], http = true): Promise<string[]> {
    const args = recipients.map((r) => `<${r}>`);
    const codes: Record<string, string[]> = {};
    for (const [name, m] of Object.entries(mx)) codes[name] = (await rawRcpts(m!.port, '127.0.0.1', 'sender@sender.example', args)).map((r) => r.slice(0, 3));
    const res = await fetch(`http://127.0.0.1:${app.addresses.http!.port}/v1/recipients:check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ addresses: recipients }),
    });
    const verdicts = ((await res.json()) as { results: { verdict: string }[] }).results.map((r) => r.verdict);
    const wrong: string[] = [];
    recipients.forEach((r, i) => {
      const want = codes.native![i]!;
      const got = Object.keys(mx).filter((n) => n !== 'native').map((n) => `${n} ${codes[n]![i]}`);
      if (got.some((g) => !g.endsWith(want)) || (http && !HTTP_FOR[want]?.includes(verdicts[i]!))) wrong.push(`${r}: native ${want}; ${got.join(', ')}, http ${verdicts[i]}`);
    });
    return wrong;
  }

  test('a quoted local part with a sub-address is split unquoted, as Postfix splits it: "alice+x y"@ is alice\'s', async () => {
    const recipients = [
      '"alice+x y"@example.com', '"Alice+(x)"@example.com', '"alice-x y"@example.com', '"al x+z"@example.com', '"al y+z"@example.com',
      '"al x-z w"@example.com', '"owner-x y"@example.com', '"+alice x"@example.com', '"nobody+x y"@example.com', '"nobody+x y"@catchall.example',
    ];
    assert.deepEqual(await differences(recipients), []);
    // The corpus holds both answers: the native table accepts alice's and refuses nobody's.
    const native = await rawRcpts(mx.native!.port, '127.0.0.1', 'sender@sender.example', ['<"alice+x y"@example.com>', '<"nobody+x y"@example.com>']);
    assert.deepEqual(native.map((r) => r.slice(0, 3)), ['250', '550']);
  });

  test('a source route Postfix strips is judged where Postfix sends it: an empty local part, a domain with white space or quotes', async () => {
    // Postfix strips its own address literal and routes the rest, the new domain read again as
    // RFC 822 tokens. The HTTP API is given the address itself (no MTA routes it): not asked.
    const recipients = [
      '"@example.com"@[127.0.0.1]', '"%example.com"@[127.0.0.1]', '"example.com!"@[127.0.0.1]', '"@catchall.example"@[127.0.0.1]',
      '"nobody@example.com "@[127.0.0.1]', '"nobody@ example.com"@[127.0.0.1]', '"nobody@\\"example.com\\""@[127.0.0.1]',
      '"nobody%example.com "@[127.0.0.1]', '"example.com !nobody"@[127.0.0.1]', '"alice@example.com "@[127.0.0.1]',
    ];
    assert.deepEqual(await differences(recipients, false), []);
    const native = await rawRcpts(mx.native!.port, '127.0.0.1', 'sender@sender.example', ['<"@example.com"@[127.0.0.1]>', '<"nobody@example.com "@[127.0.0.1]>', '<"alice@example.com "@[127.0.0.1]>']);
    assert.deepEqual(native.map((r) => r.slice(0, 3)), ['550', '550', '250']);
  });

  test('needless escapes in a quoted local part name the same mailbox: "al\\ x"@ is "al x"@', async () => {
    // Postfix unquotes the client's text and writes the key with only the escapes it needs.
    const recipients = ['"al\\ x"@example.com', '"\\al\\ \\x"@example.com', '"AL\\ X"@example.com', '"al\\ x+tag"@example.com', '"no\\ body"@example.com'];
    assert.deepEqual(await differences(recipients), []);
    const native = await rawRcpts(mx.native!.port, '127.0.0.1', 'sender@sender.example', ['<"al\\ x"@example.com>', '<"no\\ body"@example.com>']);
    assert.deepEqual(native.map((r) => r.slice(0, 3)), ['250', '550']);
  });

  test('a source route whose outer local part is over 64 octets is judged where Postfix sends it', async () => {
    // The inner address is fine (55 letters); quoted with its domain inside another it is over
    // the limit, and Postfix routes it on all the same.
    const n = 'n'.repeat(55);
    const recipients = [`"${n}@example.com"@[127.0.0.1]`, `${n}%example.com@[127.0.0.1]`, `"example.com!${n}"@[127.0.0.1]`, `"${'l'.repeat(64)}@example.com"@[127.0.0.1]`];
    assert.deepEqual(await differences(recipients, false), []);
  });
});
