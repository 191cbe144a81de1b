/**
 * The policy front end behind a real Postfix (check_policy_service), driven by swaks.
 * Engine: the real validator over examples/directory.ldif for example.com/example.org, and a
 * second real validator whose LDAP directory is a real slapd that has been stopped, serving
 * example.net — so one Postfix sees 250, 550 and 451 from one policy listener.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createPolicyServer } from '../../src/policy/server.js';
import { assertUnknownThenValid, SOURCE_ROUTED } from '../helpers/raw-smtp.js';
import { requirePostfixTools, startPostfix, swaks, type PostfixInstance, type SwaksResult } from '../helpers/postfix.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

const FROM = 'sender@client.example';

function replies(r: SwaksResult): string[] {
  return r.rcpt.map((x) => (x.reply ? x.reply.text : '(no reply)'));
}

describe('policy delegation behind a real Postfix', () => {
  let engine: SplitEngine | undefined;
  let server: TcpServer | undefined;
  let mx: PostfixInstance | undefined;

  before(async () => {
    requirePostfixTools();
    engine = await startSplitEngine();
    const { validator, metrics, logger } = engine;
    const harvest = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000, action: 'reject' });
    server = createPolicyServer({ validator, metrics, logger, harvest, maxConnections: 50, idleTimeoutMs: 300_000 });
    const { port } = await server.listen('127.0.0.1:0');
    mx = await startPostfix({
      mainCf: {
        relay_domains: 'example.com, example.org, example.net',
        smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit`,
        // Harvest test sends 20+ rejected RCPTs per session: no tarpit, no early hang-up.
        smtpd_error_sleep_time: '0',
        smtpd_soft_error_limit: '100',
        smtpd_hard_error_limit: '100',
        // XCLIENT from loopback names the IPv6 clients of the harvest test (no IPv6 network here to
        // send from); Postfix takes an IPv6 ADDR only with IPv6 enabled. It still listens on 127.0.0.1 only.
        smtpd_authorized_xclient_hosts: '127.0.0.0/8',
        inet_protocols: 'ipv4, ipv6',
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
    // Postfix puts "<addr>: Recipient address rejected: " before whatever text the policy gives.
    assert.match(unknown!.text, /^550 5\.1\.1 <nobody@example\.com>: Recipient address rejected: User unknown$/);
    assert.equal(down?.code, 451, r.transcript);
    assert.match(down!.text, /^451 4\.3\.0 <someone@example\.net>: Recipient address rejected: Recipient address lookup failed, try again later$/);
    assert.equal(valid2?.code, 250, r.transcript);
    // The accepted ones really went into the queue, the others did not.
    const queued = await mx!.queuedRecipients();
    assert.ok(queued.includes('alice@example.com') && queued.includes('dave@example.org'), queued.join(','));
    assert.ok(!queued.includes('nobody@example.com') && !queued.includes('someone@example.net'));
  });

  it('refuses every recipient of a client from its 21st unknown recipient on, while another client is unaffected', async () => {
    const harvester = '127.0.0.3';
    const unknowns = Array.from({ length: 20 }, (_, i) => `ghost${i}@example.com`);
    const first = await swaks({ port: mx!.port, from: FROM, to: unknowns, clientAddress: harvester });
    assert.deepEqual(first.rcpt.map((x) => x.reply?.code), unknowns.map(() => 550), replies(first).join('\n'));

    const second = await swaks({ port: mx!.port, from: FROM, to: ['ghost20@example.com'], clientAddress: harvester });
    assert.match(second.rcpt[0]!.reply?.text ?? '', /^421 4\.7\.0 .*Too many unknown recipients$/, second.transcript);

    const third = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com'], clientAddress: harvester });
    assert.match(third.rcpt[0]!.reply?.text ?? '', /^421 4\.7\.0 .*Too many unknown recipients$/, third.transcript);

    const other = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com', 'ghost0@example.com'], clientAddress: '127.0.0.4' });
    assert.equal(other.rcpt[0]!.reply?.code, 250, other.transcript);
    assert.match(other.rcpt[1]!.reply?.text ?? '', /^550 5\.1\.1 /, other.transcript);

    const blocked = (await engine!.metrics.harvestBlocked.get()).values.find((v) => v.labels.frontend === 'policy')?.value;
    assert.equal(blocked, 2);
  });

  it('counts IPv6 clients per /64: a harvester rotating its address within its network is still refused, its neighbour network is not', async () => {
    // Each session names a fresh address of 2001:db8:66:1::/64 (XCLIENT, as Postfix reports a
    // real client): 20 unknowns spread over 20 addresses, then the 21st unknown is refused.
    const session = (i: number, to: string) => swaks({ port: mx!.port, from: FROM, to: [to], xclientAddress: `IPV6:2001:db8:66:1:${(i + 1).toString(16)}::${i + 7}` });
    for (let i = 0; i < 20; i++) {
      const r = await session(i, `v6ghost${i}@example.com`);
      assert.equal(r.rcpt[0]!.reply?.code, 550, r.transcript);
    }
    const tripped = await session(20, 'v6ghost20@example.com');
    assert.match(tripped.rcpt[0]!.reply?.text ?? '', /^421 4\.7\.0 .*Too many unknown recipients$/, tripped.transcript);
    const rotated = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com'], xclientAddress: 'IPV6:2001:DB8:66:1:ffff:ffff:ffff:ffff' });
    assert.match(rotated.rcpt[0]!.reply?.text ?? '', /^421 4\.7\.0 .*Too many unknown recipients$/, rotated.transcript);
    const neighbour = await swaks({ port: mx!.port, from: FROM, to: ['alice@example.com', 'v6ghost0@example.com'], xclientAddress: 'IPV6:2001:db8:66:2::1' });
    assert.equal(neighbour.rcpt[0]!.reply?.code, 250, neighbour.transcript);
    assert.match(neighbour.rcpt[1]!.reply?.text ?? '', /^550 5\.1\.1 /, neighbour.transcript);
  });

  it('refuses invalid addresses in a served domain permanently with 501 5.1.3 (Postfix alone would accept them)', async () => {
    const invalid = ['a..b@example.com', `${'x'.repeat(65)}@example.com`, 'user5.@example.com'];
    // Postfix hands this one over unquoted (a>b@example.com); read as Postfix routes it, it is the
    // quoted local part "a>b", valid syntax, unknown to the directory: refused as unknown, as the
    // milter refuses it.
    const quoted = '"a>b"@example.com';
    const r = await swaks({ port: mx!.port, from: FROM, to: [...invalid, quoted, 'alice@example.com'], clientAddress: '127.0.0.5' });
    for (const [i, address] of invalid.entries()) {
      assert.match(r.rcpt[i]!.reply?.text ?? '', /^501 5\.1\.3 <.*>: Recipient address rejected: Bad recipient address syntax$/, `${address}\n${r.transcript}`);
    }
    assert.match(r.rcpt[invalid.length]!.reply?.text ?? '', /^550 5\.1\.1 <.*>: Recipient address rejected: User unknown$/, r.transcript);
    assert.equal(r.rcpt[invalid.length + 1]!.reply?.code, 250, r.transcript);
    const queued = await mx!.queuedRecipients();
    for (const address of [...invalid, quoted]) assert.ok(!queued.some((q) => q.toLowerCase() === address.toLowerCase()), queued.join(','));
  });

  it('judges each RCPT as Postfix routes it: percent hack, bang path and a requoted domain do not let an unknown user through', async () => {
    // Postfix gives the policy server the internal form (left) but relays each to
    // nobody@example.com: its resolver reads "user%site" and "site!user" as user@site when no
    // domain is left, and reads the domain again as RFC 822 tokens.
    const unknown = ['<nobody%example.com>', '<example.com!nobody>', '<"nobody%example.com">', '<nobody%"example.com">', '<nobody%EXAMPLE.COM>', '<nobody%example.com%>', '<nobody@"example.com ">', '<nobody@ex\\\\ample.com>', '<nobody@example.com\\\\ >'];
    const valid = ['<alice%example.com>', '<example.com!alice>', '<alice@"example.com ">'];
    await assertUnknownThenValid(mx!.port, '127.0.0.7', FROM, unknown, valid);
  });

  it('answers a request whose recipient has a stray ")" in the domain, sent straight to the policy port, and goes on answering', async () => {
    // Postfix itself refuses such a domain; a client on the policy port can send it anyway. Once
    // the domain reader looped forever on it (filling memory until the process died).
    const request = (recipient: string) => `request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.9\nrecipient=${recipient}\n\n`;
    const socket = net.connect({ port: server!.address()!.port, host: '127.0.0.1' });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.end(request('nobody@example.com)') + request('nobody@"exa)mple.com"') + request('alice@example.com'));
    await new Promise((resolve) => socket.once('close', resolve));
    assert.deepEqual(text.split('\n\n').filter(Boolean), ['action=DUNNO', 'action=DUNNO', 'action=DUNNO']);
  });

  it('judges a source-routed RCPT where Postfix routes it: through its own domain ([127.0.0.1]) into a served one', async () => {
    await assertUnknownThenValid(mx!.port, '127.0.0.10', FROM, SOURCE_ROUTED.unknown, SOURCE_ROUTED.valid);
  });
});
