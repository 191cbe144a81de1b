import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { connectFrom, netstring, netstrings, readUntilClose } from '../helpers/frontend-clients.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { startApp } from '../helpers/app.js';

/**
 * Per-client fairness against the real slapd: while one address floods from many connections, a
 * client asking one recipient at a time is sent to the directory ahead of the flood's backlog.
 * The directory does one search at a time here (one pooled connection, one search on it, no
 * batching), so the order in which lookups reach slapd shows as the flood answers a victim
 * lookup has to wait for. Counted, not timed: the machine may be loaded.
 */

const ROOM = 8;
const FLOOD_CONNECTIONS = 40;
const FLOOD_PER_CONNECTION = 250;
const VICTIM_LOOKUPS = 15;

/** Counts complete netstrings as they arrive (the replies' text is not needed for the flood). */
function countReplies(s: net.Socket, onReply: (text: string) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  s.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let i = 0;
    for (;;) {
      const colon = buf.indexOf(0x3a, i);
      if (colon < 0) break;
      const len = Number(buf.subarray(i, colon).toString('ascii'));
      if (colon + 1 + len >= buf.length) break;
      onReply(buf.subarray(colon + 1, colon + 1 + len).toString('utf8'));
      i = colon + 2 + len;
    }
    buf = buf.subarray(i);
  });
}

describe('turns between clients at the directory (real slapd)', { timeout: 120_000 }, () => {
  let slapd: Slapd;
  let app: App;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 100 });
    const config = {
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      server: { maxOutstanding: ROOM },
      directory: {
        kind: 'ldap',
        ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, poolSize: 1, maxInFlightPerConnection: 1, batchSize: 1, timeout: '30s' },
      },
    };
    app = await startApp(config, { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword });
  });
  after(async () => {
    await app?.close();
    await slapd?.close();
  });

  test("a one-connection client's lookup reaches the directory ahead of a 40-connection flood's backlog", async () => {
    const port = app.addresses.socketmap!.port;
    let floodAnswers = 0;
    const flood = await Promise.all(Array.from({ length: FLOOD_CONNECTIONS }, () => connectFrom(port, '127.0.0.1')));
    const victim = await connectFrom(port, '127.0.0.2');
    try {
      for (const s of flood) countReplies(s, () => floodAnswers++);
      flood.forEach((s, c) => s.write(Array.from({ length: FLOOD_PER_CONNECTION }, (_, i) => netstring(`recipients ghost-${c}-${i}@example.com`)).join('')));
      while (floodAnswers < 100) await new Promise((r) => setTimeout(r, 10));

      const replies: string[] = [];
      let waiting: ((text: string) => void) | null = null;
      countReplies(victim, (text) => waiting?.(text));
      const waitedBehind: number[] = [];
      for (let k = 1; k <= VICTIM_LOOKUPS; k++) {
        const before = floodAnswers;
        const reply = new Promise<string>((r) => (waiting = r));
        victim.write(netstring(`recipients user${k}@example.com`));
        replies.push(await reply);
        waitedBehind.push(floodAnswers - before);
      }
      const stillFlooding = floodAnswers < FLOOD_CONNECTIONS * FLOOD_PER_CONNECTION;
      assert.ok(stillFlooding, 'the flood lasted the whole victim run (else the test proves nothing)');
      replies.forEach((r, i) => assert.equal(r, `OK user${i + 1}@example.com`));
      // Ahead of the victim's lookup: at most the flood's lookups already in progress (ROOM).
      // Without turns the flood keeps its whole per-client share (256) queued ahead of it.
      assert.ok(Math.max(...waitedBehind) <= 3 * ROOM, `flood answers while each victim lookup waited: ${waitedBehind.join(' ')}`);
    } finally {
      for (const s of [...flood, victim]) s.destroy();
    }
  });

  test('a connection that sends its lookups and then FIN while they wait for their turn still gets every answer', async () => {
    const port = app.addresses.socketmap!.port;
    let floodAnswers = 0;
    const flood = await Promise.all(Array.from({ length: FLOOD_CONNECTIONS }, () => connectFrom(port, '127.0.0.1')));
    // The client's own other connection keeps lookups in progress, so the new one waits in turn.
    const busy = await connectFrom(port, '127.0.0.3');
    const client = await connectFrom(port, '127.0.0.3');
    try {
      for (const s of [...flood, busy]) countReplies(s, () => floodAnswers++);
      flood.forEach((s, c) => s.write(Array.from({ length: FLOOD_PER_CONNECTION }, (_, i) => netstring(`recipients late-${c}-${i}@example.com`)).join('')));
      busy.write(Array.from({ length: FLOOD_PER_CONNECTION }, (_, i) => netstring(`recipients own-${i}@example.com`)).join(''));
      while (floodAnswers < 100) await new Promise((r) => setTimeout(r, 10));
      // Waiting requests did not count as owed: the connection looked idle and our FIN closed it.
      const received = readUntilClose(client);
      client.end(Array.from({ length: 5 }, (_, k) => netstring(`recipients user${k + 1}@example.com`)).join(''));
      const replies = netstrings(await received);
      assert.ok(floodAnswers < (FLOOD_CONNECTIONS + 1) * FLOOD_PER_CONNECTION, 'the flood lasted until the client was answered (else the test proves nothing)');
      assert.deepEqual(replies, [1, 2, 3, 4, 5].map((k) => `OK user${k}@example.com`));
    } finally {
      for (const s of [...flood, busy, client]) s.destroy();
    }
  });
});
