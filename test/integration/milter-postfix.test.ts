/**
 * The milter front end behind a real Postfix (smtpd_milters), driven by swaks.
 * Engine: the real validator over examples/directory.ldif for example.com/example.org, and a
 * second real validator whose LDAP directory is a real slapd that has been stopped, serving
 * example.net — so one Postfix sees 250, 550 and 451 from one milter listener.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createMilterServer } from '../../src/milter/server.js';
import { requirePostfixTools, startPostfix, swaks, type PostfixInstance, type SwaksResult } from '../helpers/postfix.js';
import { assertUnknownThenValid, rawRcpts, SOURCE_ROUTED } from '../helpers/raw-smtp.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

const FROM = 'sender@client.example';

function replies(r: SwaksResult): string[] {
  return r.rcpt.map((x) => (x.reply ? x.reply.text : '(no reply)'));
}

describe('milter behind a real Postfix', () => {
  let engine: SplitEngine | undefined;
  let server: TcpServer | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    requirePostfixTools();
    engine = await startSplitEngine();
    const { validator, metrics, logger } = engine;
    const harvest = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000, action: 'reject' });
    server = createMilterServer({ validator, metrics, logger, harvest, maxConnections: 50, idleTimeoutMs: 300_000 });
    const { port } = await server.listen('127.0.0.1:0');
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com, example.org, example.net',
        smtpd_milters: `inet:127.0.0.1:${port}`,
        // If the milter misbehaves Postfix says 451 4.7.1, which no assertion below accepts.
        milter_default_action: 'tempfail',
        // Harvest test sends 20+ rejected RCPTs per session: no tarpit, no early hang-up.
        smtpd_error_sleep_time: '0',
        smtpd_soft_error_limit: '100',
        smtpd_hard_error_limit: '100',
      },
    });
  });

  after(async () => {
    await mx?.close();
    await server?.close(1000);
    await engine?.close();
  });

  it('accepts a valid recipient, rejects an unknown one with 550 5.1.1 and defers with 451 4.3.0 when the directory is down', async () => {
    const r = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com', 'nobody@example.com', 'someone@example.net', 'dave@example.org'], clientAddress: '127.0.0.1' });
    const [valid, unknown, down, valid2] = r.rcpt.map((x) => x.reply);
    assert.equal(valid?.code, 250, r.transcript);
    assert.equal(unknown?.code, 550, r.transcript);
    assert.equal(unknown!.text, '550 5.1.1 User unknown');
    assert.equal(down?.code, 451, r.transcript);
    assert.equal(down!.text, '451 4.3.0 Recipient address lookup failed');
    assert.equal(valid2?.code, 250, r.transcript);
    // The accepted ones really went into the queue, the others did not.
    const queued = await mx!.queuedRecipients();
    assert.ok(queued.includes('alice@example.com') && queued.includes('dave@example.org'), queued.join(','));
    assert.ok(!queued.includes('nobody@example.com') && !queued.includes('someone@example.net'));
    // Negotiation, skipped stages and end of message went through without a protocol complaint.
    assert.doesNotMatch(await mx!.maillog(), /warning: milter/);
  });

  it('refuses every recipient of a client from its 21st unknown recipient on, while another client is unaffected', async () => {
    const harvester = '127.0.0.3';
    const unknowns = Array.from({ length: 20 }, (_, i) => `ghost${i}@example.com`);
    const first = await swaks({ port: mx!.port, from: FROM, to: unknowns, clientAddress: harvester });
    assert.deepEqual(first.rcpt.map((x) => x.reply?.code), unknowns.map(() => 550), replies(first).join('\n'));

    const second = await swaks({ port: mx!.port, from: FROM, to: ['ghost20@example.com'], clientAddress: harvester });
    assert.match(second.rcpt[0]!.reply?.text ?? '', /^421 4\.7\.0 Too many unknown recipients$/, second.transcript);

    const third = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com'], clientAddress: harvester });
    assert.match(third.rcpt[0]!.reply?.text ?? '', /^421 4\.7\.0 Too many unknown recipients$/, third.transcript);

    const other = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com', 'ghost0@example.com'], clientAddress: '127.0.0.4' });
    assert.equal(other.rcpt[0]!.reply?.code, 250, other.transcript);
    assert.match(other.rcpt[1]!.reply?.text ?? '', /^550 5\.1\.1 /, other.transcript);

    const blocked = (await engine!.metrics.harvestBlocked.get()).values.find((v) => v.labels.frontend === 'milter')?.value;
    assert.equal(blocked, 2);
  });

  it('refuses invalid addresses in a served domain permanently with 501 5.1.3 (Postfix alone would accept them)', async () => {
    const invalid = ['a..b@example.com', `${'x'.repeat(65)}@example.com`, 'user5.@example.com'];
    // The milter sees the quoted form, valid syntax: it must not be cut at the '>' (once it
    // became '"a', invalid, and passed); unknown to the directory, it is refused as unknown.
    const quoted = '"a>b"@example.com';
    const r = await swaks({ port: mx!.port, from: FROM, to: [...invalid, quoted, 'alice@example.com'], clientAddress: '127.0.0.5' });
    for (const [i, address] of invalid.entries()) {
      assert.match(r.rcpt[i]!.reply?.text ?? '', /^501 5\.1\.3 Bad recipient address syntax$/, `${address}\n${r.transcript}`);
    }
    assert.equal(r.rcpt[invalid.length]!.reply?.text, '550 5.1.1 User unknown', r.transcript);
    assert.equal(r.rcpt[invalid.length + 1]!.reply?.code, 250, r.transcript);
    const queued = await mx!.queuedRecipients();
    for (const address of [...invalid, quoted]) assert.ok(!queued.some((q) => q.toLowerCase() === address.toLowerCase()), queued.join(','));
  });

  it('reads each RCPT the way Postfix routes it: quoting, comments and white space do not let an unknown user through', async () => {
    // Each form is one Postfix relays to nobody@example.com (its internal form; the policy front
    // end is given that form). Read as raw text, several passed as foreign domains.
    const unknown = ['<"nobody@example.com">', '<nobody@example.com (comment)>', '<nobody@example.com >', '< nobody@example.com>', '<nobody(c)@example.com>', '<"nobody"@example.com>', '<nobody\\@example.com>', '<@relay.example:nobody@example.com>', '<nobody@(x)example.com>', '<nobody@example.com.(x)>', '<nobody@ example.com>', '<nobody@example.com;>', '<<nobody@example.com>>'];
    // And the same forms for a valid user reach it, not a syntax error.
    const valid = ['<"alice@example.com">', '<alice@example.com (comment)>', '< alice@example.com >', '<alice(c)@example.com>', '<<alice@example.com>>'];
    const got = await assertUnknownThenValid(mx!.port, '127.0.0.6', FROM, unknown, valid, ['<""@example.com>']);
    // `""` is a valid (quoted) local part in RFC 5321: looked up like any other, as the socketmap
    // and Postfix's own tables do (a catch-all entry would accept it).
    assert.match(got.at(-1)!, /^550 5\.1\.1 /, 'an empty quoted local part in a served domain');
  });

  it('answers a RCPT with a stray ")" or "]" and goes on answering (once the reader looped forever on it, filling memory)', async () => {
    const got = await rawRcpts(mx!.port, '127.0.0.8', FROM, ['<nobody)@example.com>', '<no]body@example.com>', '<a)b]c)@example.com>', '<alice@example.com>']);
    // Postfix routes them to the local parts "nobody)", "no]body" and "a)b]c)": unknown users.
    for (const [i, reply] of got.slice(0, 3).entries()) assert.match(reply, /^550 5\.1\.1 /, `${i}: ${reply}`);
    assert.match(got[3]!, /^250 /);
  });

  it('judges a source-routed RCPT where Postfix routes it: through its own domain ([127.0.0.1]) into a served one', async () => {
    await assertUnknownThenValid(mx!.port, '127.0.0.10', FROM, SOURCE_ROUTED.unknown, SOURCE_ROUTED.valid);
  });
});
