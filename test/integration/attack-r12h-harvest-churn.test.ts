/**
 * Harvest protection counts one unknown address a client names again only once (a monitoring host
 * paging a departed address with every alert keeps its valid mail). What it remembered was one
 * set of (client, address) pairs for every client, 50,000 at most: a busy ISP's stream of unknown
 * recipients from thousands of senders, or a botnet spread over addresses (an IPv6 /48 holds
 * 65,536 networks), pushed the paging host's pair out, its next page counted again, and after
 * maxUnknown + 1 pages its valid mail was refused as before. The repeats are now remembered with
 * each client's own count, forgotten only together with it. The real service, its policy listener
 * (maxUnknown 2, reject), bundled directory; the flood comes from 26,000 clients with 2 distinct
 * unknown recipients each, none of them flagged.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

/** A policy connection as an MTA keeps it open: answers in order, requests sent in batches. */
class Policy {
  private buf = '';
  private readonly waiting: Array<(action: string) => void> = [];
  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n\n'); i >= 0; i = this.buf.indexOf('\n\n')) {
        const reply = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        this.waiting.shift()?.(reply.replace(/^action=/, ''));
      }
    });
  }
  static async open(port: number): Promise<Policy> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    return new Policy(s);
  }
  ask(client: string, recipient: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=${client}\nrecipient=${recipient}\n\n`);
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

describe('harvest protection under a stream of unknown recipients from many clients (real policy listener)', () => {
  let app: App;
  before(async () => {
    app = await startApp({
      listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
      policy: { harvest: { maxUnknown: 2, action: 'reject' } },
    });
  });
  after(async () => {
    await app?.close();
  });

  test('a host repeating one stale address keeps its valid mail while 52,000 other unknowns go by', async () => {
    const policy = await Policy.open(app.addresses.policy!.port);
    try {
      const pager = '192.0.2.70';
      const answers: string[] = [];
      let flood = 0;
      for (let round = 0; round < 3; round++) {
        answers.push(await policy.ask(pager, 'oncall-old@example.com'));
        // 26,000 clients, 2 distinct unknowns each (below the limit): 52,000 pairs.
        for (let c = 0; c < 26_000; c += 250) {
          const batch: Array<Promise<string>> = [];
          for (let k = c; k < c + 250; k++) {
            const client = `10.${round}.${k >> 8}.${k & 255}`;
            for (const n of [1, 2]) batch.push(policy.ask(client, `gone-${round}-${k}-${n}@example.com`));
          }
          for (const a of await Promise.all(batch)) if (!a.startsWith('550 5.1.1')) flood++;
        }
      }
      assert.equal(flood, 0, 'every flood recipient is an unknown answered 550');
      answers.push(await policy.ask(pager, 'alice@example.com'));
      assert.deepEqual(
        answers.map((a) => a.split(' ').slice(0, 2).join(' ')),
        ['550 5.1.1', '550 5.1.1', '550 5.1.1', 'DUNNO'],
        `the pager's answers: ${answers.join(' | ')}`,
      );
    } finally {
      policy.close();
    }
  });
});
