/**
 * LDAP-injection battery through every front end (HTTP, socketmap, policy, milter) against a
 * real slapd, with the cache off so each front end sends its own directory request. Zero
 * matches: no payload is ever answered as a valid recipient, and the directory reports no
 * `found` outcome for any of them (a positive control shows the counter works). Then the
 * request size limits of every front end.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { MilterPacketDecoder, encodeMilterPacket, type MilterPacket } from '../../src/milter/codec.js';
import { Cmd, Reply } from '../../src/milter/constants.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startApp } from '../helpers/app.js';

/** Every entry of the fixture would match one of these if a value reached the filter unescaped. */
const PAYLOADS = [
  '*@example.com',
  'al*@example.com',
  '*alice@example.com',
  'a*e@example.com',
  'user1*@example.com',
  'staff*@example.com',
  '*+tag@example.com',
  '"*"@example.com',
  '"al*"@example.com',
  'alice)(mail=*)@example.com',
  '"alice)(mail=*"@example.com',
  '"alice)(|(mail=*)"@example.com',
  '*)(objectClass=*@example.com',
  '"*)(objectClass=*"@example.com',
  'alice@example.com)(|(mail=*',
  '(mail=*)@example.com',
  '\\2a@example.com',
  '"\\2a"@example.com',
  '"\\\\2a"@example.com',
  '"al\\\\2a"@example.com',
  '\\28mail=\\2a\\29@example.com',
  'alice\0@example.com',
  '"alice\\\0"@example.com',
  'alice@example.com\0',
  '\0*@example.com',
  '%s@example.com',
  '%u@example.com',
  '%d@example.com',
  '"%s"@example.com',
  '"alice@example.com"@example.com',
  '*@*',
  'alice@*',
  'alice@example.*',
  '*',
  '"*@example.com"',
  'ALICE*@EXAMPLE.COM',
  'alice\\@example.com',
  'alice\r\n@example.com',
];

function ldapConfig(ldap: Slapd) {
  return {
    listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
    domains: ['example.com', 'example.org'],
    directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
    cache: { maxEntries: 0 },
    policy: { harvest: { maxUnknown: 0 } },
    log: { level: 'silent' },
  };
}

async function directoryOutcome(app: App, outcome: string): Promise<number> {
  const m = new RegExp(`^rcptgate_directory_requests_total\\{outcome="${outcome}"\\} (\\S+)$`, 'm').exec(await app.metrics.registry.metrics());
  return m ? Number(m[1]) : 0;
}

/** Reads whole replies off a socket: `split` returns complete replies and the rest. */
function replyReader(socket: net.Socket, split: (buf: Buffer) => { replies: Buffer[]; rest: Buffer }) {
  let buf = Buffer.alloc(0);
  const queue: Buffer[] = [];
  const waiters: Array<(b: Buffer) => void> = [];
  socket.on('data', (chunk: Buffer) => {
    const r = split(Buffer.concat([buf, chunk]));
    buf = Buffer.from(r.rest);
    for (const reply of r.replies) (waiters.shift() ?? ((b: Buffer) => queue.push(b)))(reply);
  });
  return () => new Promise<Buffer>((resolve) => (queue.length ? resolve(queue.shift()!) : waiters.push(resolve)));
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

class PolicyClient {
  private constructor(private readonly socket: net.Socket, private readonly next: () => Promise<Buffer>) {}
  static async connect(port: number): Promise<PolicyClient> {
    const s = await connect(port);
    return new PolicyClient(
      s,
      replyReader(s, (buf) => {
        const replies: Buffer[] = [];
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          replies.push(buf.subarray(0, i));
          buf = buf.subarray(i + 2);
        }
        return { replies, rest: buf };
      }),
    );
  }
  async ask(recipient: string): Promise<string> {
    this.socket.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\nrecipient=${recipient}\n\n`);
    return (await this.next()).toString('utf8');
  }
  close(): void {
    this.socket.destroy();
  }
}

class MilterClient {
  private constructor(private readonly socket: net.Socket, private readonly next: () => Promise<MilterPacket>) {}
  static async connect(port: number): Promise<MilterClient> {
    const s = await connect(port);
    const decoder = new MilterPacketDecoder();
    const packets: MilterPacket[] = [];
    const waiters: Array<(p: MilterPacket) => void> = [];
    s.on('data', (c: Buffer) => {
      for (const p of decoder.push(c)) (waiters.shift() ?? ((x: MilterPacket) => packets.push(x)))(p);
    });
    const client = new MilterClient(s, () => new Promise((r) => (packets.length ? r(packets.shift()!) : waiters.push(r))));
    const optneg = Buffer.alloc(12);
    optneg.writeUInt32BE(6, 0);
    optneg.writeUInt32BE(0x1ff, 4);
    optneg.writeUInt32BE(0x1fffff, 8);
    s.write(encodeMilterPacket(Cmd.OPTNEG, optneg));
    assert.equal((await client.next()).command, Reply.OPTNEG);
    return client;
  }
  /** RCPT TO:<recipient>; returns 'continue' or the reply code text. */
  async rcpt(recipient: string): Promise<string> {
    this.socket.write(encodeMilterPacket(Cmd.RCPT, Buffer.from(`<${recipient}>\0`, 'utf8')));
    const p = await this.next();
    if (p.command === Reply.CONTINUE) return 'continue';
    if (p.command === Reply.REPLYCODE) return p.data.toString('utf8').replace(/\0$/, '');
    return `command 0x${p.command.toString(16)}`;
  }
  close(): void {
    this.socket.destroy();
  }
}

describe('LDAP injection through every front end (real slapd)', () => {
  let ldap: Slapd;
  let app: App;
  let http: string;

  before(async () => {
    ldap = await startSlapd();
    app = await startApp(ldapConfig(ldap), { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    http = `http://127.0.0.1:${app.addresses.http!.port}`;
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('positive control: a real recipient is found on every front end and counted', async () => {
    const before = await directoryOutcome(app, 'found');
    const body = (await (await fetch(`${http}/v1/recipients/alice%40example.com`)).json()) as { verdict: string };
    assert.equal(body.verdict, 'valid');
    const sm = await SocketmapClient.connect(app.addresses.socketmap!.port);
    const policy = await PolicyClient.connect(app.addresses.policy!.port);
    const milter = await MilterClient.connect(app.addresses.milter!.port);
    try {
      assert.equal(await sm.query('recipients', 'alice@example.com'), 'OK alice@example.com');
      assert.equal(await policy.ask('bob@example.com'), 'action=DUNNO');
      assert.match(await policy.ask('nobody@example.com'), /^action=550 5\.1\.1 /);
      assert.equal(await milter.rcpt('bob@example.com'), 'continue');
      assert.equal(await milter.rcpt('nobody@example.com'), '550 5.1.1 User unknown');
    } finally {
      sm.close();
      policy.close();
      milter.close();
    }
    assert.equal(await directoryOutcome(app, 'found'), before + 4, 'one found per valid answer');
  });

  const servedDomain = (p: string): boolean => /@example\.com$/i.test(p);
  /**
   * The milter reads a RCPT argument as Postfix routes it (README "Invalid addresses"): comments
   * dropped, quoted strings and backslash escapes unquoted. Where that reading differs from the
   * HTTP API's, this is the milter's answer; none of them is a filter match.
   */
  const MILTER_READS = new Map<string, string>([
    ['alice)(mail=*)@example.com', '550 5.1.1 User unknown'], // "(mail=*)" is a comment: "alice)"@example.com
    ['(mail=*)@example.com', '550 5.1.1 User unknown'], // the comment leaves ""@example.com, as Postfix writes it: no such user
    ['\\2a@example.com', '550 5.1.1 User unknown'], // 2a@example.com
    ['\\28mail=\\2a\\29@example.com', '550 5.1.1 User unknown'], // 28mail=2a29@example.com
    ['"*@example.com"', '550 5.1.1 User unknown'], // *@example.com, the "*" matched literally
    ['alice\\@example.com', 'continue'], // alice@example.com: Postfix delivers it to alice
  ]);

  /**
   * The policy server is given Postfix's internal form, quotes removed, and reads it as Postfix
   * routes it (src/policy/route.ts): a local part with characters that need quoting is that
   * quoted local part ("alice)(mail=*)"@example.com), a well-formed address unknown to the
   * directory, not a syntax error. None of them is a filter match.
   */
  const POLICY_READS = new Set(['alice)(mail=*)@example.com', '*)(objectClass=*@example.com', '(mail=*)@example.com', '\\2a@example.com', '\\28mail=\\2a\\29@example.com', 'alice\\@example.com']);

  test(`${PAYLOADS.length} injection payloads match nothing on any front end`, async () => {
    const foundBefore = await directoryOutcome(app, 'found');
    const requestsBefore = (await directoryOutcome(app, 'not_found')) + foundBefore;
    const sm = await SocketmapClient.connect(app.addresses.socketmap!.port);
    const policy = await PolicyClient.connect(app.addresses.policy!.port);
    const milter = await MilterClient.connect(app.addresses.milter!.port);
    const problems: string[] = [];
    let syntacticallyValid = 0;
    try {
      for (const p of PAYLOADS) {
        const res = await fetch(`${http}/v1/recipients/${encodeURIComponent(p)}`);
        const verdict = res.status === 400 ? 'invalid' : ((await res.json()) as { verdict: string }).verdict;
        if (!['unknown', 'invalid', 'not_ours'].includes(verdict)) problems.push(`http ${JSON.stringify(p)} → ${res.status} ${verdict}`);
        if (verdict === 'unknown') syntacticallyValid++;

        for (const map of ['recipients', 'access']) {
          const reply = await sm.query(map, p);
          const accepted = map === 'recipients' ? reply.startsWith('OK') : reply === 'OK DUNNO';
          if (accepted || reply.startsWith('TEMP')) problems.push(`socketmap ${map} ${JSON.stringify(p)} → ${reply}`);
        }
        // A line break cannot travel inside a policy attribute; Postfix never sends one.
        if (!/[\r\n]/.test(p)) {
          const action = await policy.ask(p);
          // An invalid address in a served domain is refused for its syntax (README "Invalid addresses").
          const expected =
            verdict === 'unknown' || POLICY_READS.has(p) ? /^action=550 5\.1\.1 / : verdict === 'invalid' && servedDomain(p) ? /^action=501 5\.1\.3 / : /^action=DUNNO$/;
          if (!expected.test(action)) problems.push(`policy ${JSON.stringify(p)} (${verdict}) → ${action}`);
        }
        // NUL ends a milter string: "alice@example.com\0" on that wire IS alice@example.com.
        if (!p.includes('\0')) {
          const m = await milter.rcpt(p);
          const expected =
            MILTER_READS.get(p) ?? (verdict === 'unknown' ? '550 5.1.1 User unknown' : verdict === 'invalid' && servedDomain(p) ? '501 5.1.3 Bad recipient address syntax' : 'continue');
          if (m !== expected) problems.push(`milter ${JSON.stringify(p)} (${verdict}) → ${m}`);
        }
      }
      const batch = await fetch(`${http}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ addresses: PAYLOADS }) });
      const results = ((await batch.json()) as { results: Array<{ address: string; verdict: string }> }).results;
      for (const r of results) if (r.verdict === 'valid' || r.verdict === 'tempfail') problems.push(`http batch ${JSON.stringify(r.address)} → ${r.verdict}`);
    } finally {
      sm.close();
      policy.close();
      milter.close();
    }
    assert.deepEqual(problems, []);
    // No payload matched an entry, except the one the milter reads as the real alice@example.com
    // (MILTER_READS; the cache is off here, so each lookup reaches the directory).
    const milterValid = [...MILTER_READS.values()].filter((a) => a === 'continue').length;
    assert.equal(await directoryOutcome(app, 'found'), foundBefore + milterValid, 'the directory matched no entry for any payload');
    assert.ok(syntacticallyValid >= 15, `most payloads reached the directory as well-formed addresses (${syntacticallyValid})`);
    assert.ok((await directoryOutcome(app, 'not_found')) + foundBefore - requestsBefore >= syntacticallyValid * 4, 'each front end asked the directory itself');
  });
});

describe('request size limits on every front end', () => {
  let app: App;
  let http: string;
  before(async () => {
    app = await startApp({ listen: { http: '127.0.0.1:0', socketmap: '127.0.0.1:0', policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null }, log: { level: 'silent' } }, process.env);
    http = `http://127.0.0.1:${app.addresses.http!.port}`;
  });
  after(() => app.close());

  /** Sends bytes (without waiting for them to drain) and resolves with what came back once the server closed. */
  async function closedAfter(port: number, bytes: Buffer): Promise<string> {
    const s = await connect(port);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.write(bytes, () => undefined);
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('server kept the connection open')), 10_000).unref());
    await Promise.race([closed, timeout]);
    return got;
  }

  test('socketmap: a netstring over 10,000 bytes closes the connection before its payload is read', async () => {
    assert.equal(await closedAfter(app.addresses.socketmap!.port, Buffer.from('10001:')), '');
    assert.equal(await closedAfter(app.addresses.socketmap!.port, Buffer.from('99999999999999999999:')), '');
  });

  test('policy: a request over 16 KiB closes the connection; a line over 2,048 bytes is kept cut and answered', async () => {
    const lines = Array.from({ length: 20 }, (_, i) => `x${i}=${'b'.repeat(1_000)}\n`).join('');
    assert.equal(await closedAfter(app.addresses.policy!.port, Buffer.from(lines)), '');
    // smtpd passes a client's EHLO argument on as it came: its line may pass 2,048 bytes.
    const s = await connect(app.addresses.policy!.port);
    try {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nhelo_name=${'h'.repeat(3_000)}\nrecipient=alice@example.com\n\n`);
      for (let i = 0; i < 200 && !got.includes('\n\n'); i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(got, 'action=DUNNO\n\n');
    } finally {
      s.destroy();
    }
  });

  test('milter: a packet over 65,536 bytes closes the connection before its data is read', async () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(65_537, 0);
    header[4] = Cmd.BODY;
    assert.equal(await closedAfter(app.addresses.milter!.port, header), '');
    header.writeUInt32BE(0xffffffff, 0);
    assert.equal(await closedAfter(app.addresses.milter!.port, header), '');
  });

  test('HTTP: oversized body 413, oversized headers 431, overlong address 400', async () => {
    const big = JSON.stringify({ addresses: Array.from({ length: 1_000 }, (_, i) => `${'x'.repeat(300)}${i}@example.com`) });
    const r1 = await fetch(`${http}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    assert.equal(r1.status, 413);
    assert.match(r1.headers.get('content-type') ?? '', /problem\+json/);
    const r2 = await closedAfter(app.addresses.http!.port, Buffer.from(`GET /v1/recipients/a HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(64 * 1024)}\r\n\r\n`));
    assert.match(r2, /^HTTP\/1\.1 431 /);
    const r3 = await fetch(`${http}/v1/recipients/${'a'.repeat(300)}%40example.com`);
    assert.equal(r3.status, 400);
    const r4 = await fetch(`${http}/v1/recipients:check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ addresses: Array.from({ length: 1_001 }, (_, i) => `u${i}@example.com`) }) });
    assert.equal(r4.status, 400, 'more than 1000 addresses in one batch are refused');
  });
});
