import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { createSocketmapServer } from '../../src/socketmap/server.js';
import { NetstringDecoder } from '../../src/socketmap/netstring.js';
import { framesOf, netstring } from '../helpers/netstring.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import type { LookupOptions, LookupResult, RecipientValidator, Verdict } from '../../src/recipient/types.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { FakeValidator, type FakeAnswer } from '../helpers/fake-validator.js';

type Answer = FakeAnswer;

const always = (a: Answer) => new FakeValidator(() => a);

/** The reply to one request, through a real socketmap listener and connection (no shortcut). */
async function socketmapReply(validator: RecipientValidator, request: string): Promise<string> {
  const server = createSocketmapServer({ validator, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), maxConnections: 10, idleTimeoutMs: 60_000 });
  const { port } = await server.listen('127.0.0.1:0');
  const socket = net.connect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    socket.write(netstring(request));
    const decoder = new NetstringDecoder(100_000);
    for await (const chunk of socket) {
      const [reply] = framesOf(decoder, chunk as Buffer);
      if (reply) return reply.toString();
    }
    throw new Error(`no reply to ${JSON.stringify(request)}`);
  } finally {
    socket.destroy();
    await server.close(0);
  }
}

/** The reply grammar of socketmap_table(5) plus our rules: no bare OK, no OK OK, clean reasons. */
function assertWellFormed(reply: string): void {
  assert.match(reply, /^(OK .+|NOTFOUND |TEMP [\x20-\x7e]+|PERM [\x20-\x7e]+)$/s, JSON.stringify(reply));
  assert.notEqual(reply.trim(), 'OK');
  assert.doesNotMatch(reply, /^OK\s+OK\b/i);
}

describe('socketmapReply', () => {
  const verdicts: Verdict[] = ['valid', 'unknown', 'not_ours', 'tempfail', 'invalid'];
  const expected: Record<'recipients' | 'access', Record<Verdict, string>> = {
    recipients: {
      valid: 'OK Alice@Example.com',
      unknown: 'NOTFOUND ',
      not_ours: 'NOTFOUND ',
      tempfail: 'TEMP directory timed out',
      invalid: 'NOTFOUND ',
    },
    access: {
      valid: 'OK DUNNO',
      unknown: 'OK 550 5.1.1 User unknown',
      not_ours: 'NOTFOUND ',
      tempfail: 'TEMP directory timed out',
      // An invalid address in a served domain is refused permanently (README "Invalid addresses").
      invalid: 'OK 501 5.1.3 Bad recipient address syntax',
    },
  };

  for (const map of ['recipients', 'access'] as const) {
    for (const verdict of verdicts) {
      it(`${map}: answers ${JSON.stringify(expected[map][verdict])} for a ${verdict} verdict`, async () => {
        const v = always({ verdict, canonical: verdict === 'valid' ? 'Alice@Example.com' : undefined, reason: 'directory timed out' });
        const reply = await socketmapReply(v, `${map} alice+tag@example.com`);
        assert.equal(reply, expected[map][verdict]);
        assertWellFormed(reply);
        assert.deepEqual(v.calls.map(({ address, options }) => ({ address, options })), [{ address: 'alice+tag@example.com', options: { frontend: 'socketmap' } }]);
      });
    }
  }

  it('recipients: falls back to the key when a valid answer has no canonical address', async () => {
    assert.equal(await socketmapReply(always({ verdict: 'valid' }), 'recipients postmaster@example.com'), 'OK postmaster@example.com');
  });

  it('recipients and access: answer OK for a shadow-mode valid verdict', async () => {
    const v = always({ verdict: 'valid', shadow: true, enforcedVerdict: 'unknown' });
    assert.equal(await socketmapReply(v, 'recipients nobody@example.com'), 'OK nobody@example.com');
    assert.equal(await socketmapReply(v, 'access nobody@example.com'), 'OK DUNNO');
  });

  it('domains: answers OK with the normalized domain for a served domain, NOTFOUND otherwise', async () => {
    const v = new FakeValidator();
    assert.equal(await socketmapReply(v, 'domains Example.COM.'), 'OK example.com');
    assert.equal(await socketmapReply(v, 'domains example.org'), 'OK example.org');
    assert.equal(await socketmapReply(v, 'domains example.net'), 'NOTFOUND ');
    assert.equal(await socketmapReply(v, 'domains .example.com'), 'NOTFOUND ');
    assert.equal(await socketmapReply(v, 'domains alice@example.com'), 'NOTFOUND ');
    assert.equal(v.calls.length, 0);
  });

  it('answers NOTFOUND without asking the engine for keys that are not full addresses', async () => {
    const v = always({ verdict: 'valid' });
    for (const map of ['recipients', 'access']) {
      for (const key of ['example.com', '@example.com', 'alice@', 'alice', 'sub.example.com']) {
        assert.equal(await socketmapReply(v, `${map} ${key}`), 'NOTFOUND ', `${map} ${key}`);
      }
    }
    assert.equal(v.calls.length, 0);
  });

  it('passes keys with spaces and odd characters to the engine unchanged', async () => {
    const v = always({ verdict: 'unknown' });
    await socketmapReply(v, 'recipients "john doe"@example.com');
    await socketmapReply(v, 'recipients *)(mail=*@example.com');
    assert.deepEqual(v.addresses, ['"john doe"@example.com', '*)(mail=*@example.com']);
  });

  it('answers PERM for an unknown map name', async () => {
    const reply = await socketmapReply(new FakeValidator(), 'virtual alice@example.com');
    assert.match(reply, /^PERM unknown map "virtual"/);
    assertWellFormed(reply);
  });

  it('answers PERM for a malformed request', async () => {
    for (const req of ['', 'recipients', 'recipients ', ' alice@example.com', 'recipients\nalice@example.com']) {
      const reply = await socketmapReply(new FakeValidator(), req);
      assert.match(reply, /^PERM /, JSON.stringify(req));
      assertWellFormed(reply);
    }
  });

  it('keeps TEMP reasons on one printable ASCII line', async () => {
    const v = always({ verdict: 'tempfail', reason: 'ldap://a\r\nfailed\0 — über' + 'x'.repeat(500) });
    const reply = await socketmapReply(v, 'recipients a@example.com');
    assertWellFormed(reply);
    assert.ok(reply.length < 220);
    assert.equal(await socketmapReply(always({ verdict: 'tempfail' }), 'access a@example.com'), 'TEMP directory lookup failed');
  });

  it('answers TEMP, not NOTFOUND, when the engine throws', async () => {
    const v = new FakeValidator(() => new Error('engine\nexploded'));
    for (const map of ['recipients', 'access']) {
      const reply = await socketmapReply(v, `${map} a@example.com`);
      // The engine's error text stays in the log: replies carry no internals.
      assert.equal(reply, 'TEMP internal error');
    }
  });

  it('never answers a bare OK or OK OK, whatever the engine says', async () => {
    const answer = fc.record({
      verdict: fc.constantFrom<Verdict>('valid', 'unknown', 'not_ours', 'tempfail', 'invalid'),
      canonical: fc.option(fc.oneof(fc.string(), fc.constant(''), fc.constant('OK'), fc.constant(' ')), { nil: undefined }),
      reason: fc.option(fc.string(), { nil: undefined }),
      shadow: fc.option(fc.boolean(), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(answer, fc.constantFrom('recipients', 'domains', 'access', 'other'), fc.string(), async (a, map, key) => {
        const reply = await socketmapReply(always(a), `${map} ${key}`);
        assertWellFormed(reply);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('socketmap server over a real socket', () => {
  const servers: TcpServer[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.close(100)));
  });

  async function start(validator: RecipientValidator) {
    const metrics = new Metrics({ defaultMetrics: false });
    const server = createSocketmapServer({ validator, metrics, logger: silentLogger(), maxConnections: 10, idleTimeoutMs: 60_000 });
    servers.push(server);
    const { port } = await server.listen('127.0.0.1:0');
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    await once(socket, 'connect');
    return { socket, metrics, server };
  }

  /** Reads `n` netstring replies (or fewer if the server closes first). */
  function replies(socket: net.Socket, n: number): Promise<{ replies: string[]; closed: boolean }> {
    const decoder = new NetstringDecoder(100_000);
    const out: string[] = [];
    return new Promise((resolve) => {
      const done = (closed: boolean) => {
        socket.off('data', onData);
        resolve({ replies: out, closed });
      };
      const onData = (d: Buffer) => {
        out.push(...framesOf(decoder, d).map((b) => b.toString()));
        if (out.length >= n) done(false);
      };
      socket.on('data', onData);
      socket.once('close', () => done(true));
    });
  }

  it('answers a request written one byte at a time', async () => {
    const { socket } = await start(new FakeValidator((a) => (a === 'bob@example.com' ? { verdict: 'valid', canonical: 'bob@example.com' } : { verdict: 'unknown' })));
    const got = replies(socket, 2);
    const wire = Buffer.concat([netstring('recipients bob@example.com'), netstring('recipients eve@example.com')]);
    for (const byte of wire) {
      socket.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual((await got).replies, ['OK bob@example.com', 'NOTFOUND ']);
    socket.destroy();
  });

  it('answers through the engine\'s synchronous path, in order behind a lookup still waiting', async () => {
    // alice waits 50 ms for the "directory"; the others are at hand (lookupNow) yet must queue behind her.
    const v = new FakeValidator((a) => (a.startsWith('alice') ? { verdict: 'valid', canonical: a, delayMs: 50 } : a.startsWith('bob') ? { verdict: 'valid', canonical: a } : { verdict: 'unknown' }), { sync: true });
    const { socket } = await start(v);
    const got = replies(socket, 4);
    socket.write(Buffer.concat(['bob@example.com', 'alice@example.com', 'bob@example.com', 'eve@example.com'].map((a) => netstring(`recipients ${a}`))));
    assert.deepEqual((await got).replies, ['OK bob@example.com', 'OK alice@example.com', 'OK bob@example.com', 'NOTFOUND ']);
    assert.deepEqual(
      v.calls.map((c) => [c.address, c.sync]),
      [['bob@example.com', true], ['alice@example.com', false], ['bob@example.com', true], ['eve@example.com', true]],
    );
    socket.destroy();
  });

  it('answers 100 pipelined requests in request order when lookups finish out of order', async () => {
    // Earlier requests take longer, so completion order is the reverse of request order.
    const v = new FakeValidator((a) => {
      const n = Number(a.slice(4, a.indexOf('@')));
      return n % 3 === 0 ? { verdict: 'unknown', delayMs: 100 - n } : { verdict: 'valid', canonical: a, delayMs: 100 - n };
    });
    const { socket } = await start(v);
    const keys = Array.from({ length: 100 }, (_, i) => `user${i}@example.com`);
    const got = replies(socket, 100);
    socket.write(Buffer.concat(keys.map((k) => netstring(`recipients ${k}`))));
    const { replies: answers } = await got;
    assert.deepEqual(answers, keys.map((k, i) => (i % 3 === 0 ? 'NOTFOUND ' : `OK ${k}`)));
    socket.destroy();
  });

  it('answers 3,000 pipelined requests in order while throttling reads (backpressure)', async () => {
    const v = new FakeValidator((a) => ({ verdict: 'valid', canonical: a, delayMs: a.startsWith('u1') ? 5 : 0 }));
    const { socket } = await start(v);
    const keys = Array.from({ length: 3000 }, (_, i) => `u${i}@example.com`);
    const got = replies(socket, keys.length);
    // Several writes so the server sees more than its pipeline limit before answering.
    for (let i = 0; i < keys.length; i += 500) {
      socket.write(Buffer.concat(keys.slice(i, i + 500).map((k) => netstring(`recipients ${k}`))));
    }
    const { replies: answers } = await got;
    assert.deepEqual(answers, keys.map((k) => `OK ${k}`));
    socket.destroy();
  });

  it('answers what was asked before a malformed netstring, then closes the connection', async () => {
    const { socket, metrics } = await start(always({ verdict: 'valid', delayMs: 30 }));
    const got = replies(socket, 5);
    socket.write(Buffer.concat([netstring('recipients a@example.com'), Buffer.from('5:hello;')]));
    const result = await got;
    assert.deepEqual(result.replies, ['OK a@example.com']);
    assert.equal(result.closed, true);
    assert.equal((await metrics.protocolErrors.get()).values[0]?.value, 1);
  });

  it('closes the connection on a request over 10,000 bytes without waiting for its payload', async () => {
    const { socket } = await start(always({ verdict: 'valid' }));
    const got = replies(socket, 1);
    socket.write('10001:');
    const result = await got;
    assert.deepEqual(result, { replies: [], closed: true });
  });

  it('keeps serving other connections after one sends garbage', async () => {
    const v = always({ verdict: 'valid' });
    const { socket, server } = await start(v);
    const bad = replies(socket, 1);
    socket.write('GET / HTTP/1.1\r\n\r\n');
    assert.equal((await bad).closed, true);
    const other = net.connect({ host: '127.0.0.1', port: server.address()!.port });
    await once(other, 'connect');
    const got = replies(other, 1);
    other.write(netstring('domains example.com'));
    assert.deepEqual((await got).replies, ['OK example.com']);
    other.destroy();
  });
});

describe('a peer that never reads its replies', () => {
  it('gets at most about 64 kB of replies held for it per read, however many tiny requests the read carried', async () => {
    const server = createSocketmapServer({ validator: always({ verdict: 'valid' }), metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), maxConnections: 10, idleTimeoutMs: 60_000 });
    // The listener's own sockets, to read how much waits in their write buffers.
    const accepted: net.Socket[] = [];
    (server as unknown as { server: net.Server }).server.on('connection', (s: net.Socket) => accepted.push(s));
    const { port } = await server.listen('127.0.0.1:0');
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    try {
      await once(socket, 'connect');
      socket.pause(); // never read
      // 6-byte requests answered at once by a 72-byte PERM: 12 times the bytes in replies.
      socket.write('3:a b,'.repeat(1_000_000));
      let held = 0;
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        held = Math.max(held, ...accepted.map((s) => s.writableLength));
      }
      assert.equal(accepted.length, 1);
      // About 95 kB now; 340 kB when a whole read was answered at once.
      assert.ok(held > 0 && held < 200_000, `${held} bytes of replies held in the write buffer`);
    } finally {
      socket.destroy();
      await server.close(0);
    }
  });
});
