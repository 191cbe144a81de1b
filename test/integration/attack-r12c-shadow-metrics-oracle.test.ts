/**
 * Shadow mode answers every recipient valid, so the MTA tells a harvester nothing and the harvest
 * guard never engages. /metrics on listen.http, open to anyone who reaches that port, moved with
 * the true verdict (rcptgate_shadow_rejections_total, the directory's found/not_found): a client
 * the lookup API refuses sent each guess through the policy listener (as through the MTA) and
 * read the verdict off a scrape, about 140 guesses a second, every one right. The status page's
 * cache hit ratio did the same, more coarsely: a fresh unknown guess adds a hit (the domain's
 * key, cached) and a miss, a valid one only a miss. /metrics on listen.http and those figures of
 * the status page now go to the lookup API's clients only; listen.metrics is unchanged. The
 * "stranger" is 127.0.0.1 with an allow list of ::1 only (real listeners, bundled directory).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

const LOOKUP_TOKEN = 'lookup-token-of-the-shadow-test';
/** Valid and unknown in the bundled example directory. */
const GUESSES: Array<[string, boolean]> = [
  ['alice@example.com', true],
  ['bob@example.com', true],
  ['nobody@example.com', false],
  ['guess-1@example.com', false],
];

/** A policy connection as an MTA keeps it open: one answer per request, in order. */
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
  ask(recipient: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=203.0.113.5\nrecipient=${recipient}\n\n`);
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

describe('shadow mode and /metrics on the lookup port (real policy and HTTP listeners)', () => {
  let app: App;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-shadow-oracle-'));
    await writeFile(path.join(dir, 'lookup-token'), `${LOOKUP_TOKEN}\n`);
    app = await startApp({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: '127.0.0.1:0' },
      mode: 'shadow',
      http: { lookupAllowFrom: ['::1/128'], lookupTokenFile: path.join(dir, 'lookup-token') },
    });
  });
  after(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a client the lookup API refuses learns no verdict from /metrics; the token and listen.metrics still scrape', async () => {
    const http = `http://127.0.0.1:${app.addresses.http!.port}`;
    assert.equal((await fetch(`${http}/v1/recipients/alice@example.com`)).status, 401, 'the lookup API refuses this client');
    const policy = await Policy.open(app.addresses.policy!.port);
    try {
      /** rcptgate_shadow_rejections_total as a scrape shows it to this client, or null when refused. */
      const observe = async (): Promise<number | null> => {
        const res = await fetch(`${http}/metrics`);
        const text = await res.text();
        if (res.status !== 200) {
          assert.equal(res.status, 401);
          assert.doesNotMatch(text, /rcptgate_/);
          return null;
        }
        return Number(/^rcptgate_shadow_rejections_total\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
      };
      let learned = 0;
      for (const [guess, valid] of GUESSES) {
        const before = await observe();
        assert.equal(await policy.ask(guess), 'DUNNO', `shadow mode answers ${guess} as valid`);
        const after = await observe();
        // The harvester's reading: a would-be rejection counted means unknown.
        if (before !== null && after !== null && (after > before) === !valid) learned++;
      }
      assert.equal(learned, 0, `the scrapes told this client ${learned} of ${GUESSES.length} verdicts right`);
    } finally {
      policy.close();
    }
    const scrape = (url: string, init?: RequestInit) => fetch(url, init).then(async (r) => ({ status: r.status, text: await r.text() }));
    const withToken = await scrape(`${http}/metrics`, { headers: { authorization: `Bearer ${LOOKUP_TOKEN}` } });
    assert.equal(withToken.status, 200);
    assert.match(withToken.text, /^rcptgate_shadow_rejections_total\{domain="example.com"\} 2$/m);
    const probeListener = await scrape(`http://127.0.0.1:${app.addresses.metrics!.port}/metrics`);
    assert.equal(probeListener.status, 200);
    assert.match(probeListener.text, /^rcptgate_shadow_rejections_total\{domain="example.com"\} 2$/m);
  });
  test('a client the lookup API refuses learns no verdict from the status page; an allowed one sees the figures', async () => {
    const http = `http://127.0.0.1:${app.addresses.http!.port}`;
    const policy = await Policy.open(app.addresses.policy!.port);
    /** The cache hit ratio the status page shows this client, or null when it shows none. */
    const ratio = async (init?: RequestInit): Promise<number | null> => {
      const res = await fetch(`${http}/`, init);
      assert.equal(res.status, 200);
      const m = /data-key="Cache hit ratio">([\d.]+) %</.exec(await res.text());
      return m ? Number(m[1]) : null;
    };
    try {
      await policy.ask('warm-up-guess@example.com');
      const fresh: Array<[string, boolean]> = [['first-last@example.com', true], ['guess-2@example.com', false], ['mallory@example.com', true], ['guess-3@example.com', false], ['staff@example.com', true], ['guess-4@example.com', false]];
      let learned = 0;
      for (const [guess, valid] of fresh) {
        const before = await ratio();
        assert.equal(await policy.ask(guess), 'DUNNO');
        const after = await ratio();
        // The harvester's reading: the ratio went up, so the guess added a hit: unknown.
        if (before !== null && after !== null && (after > before) === !valid) learned++;
      }
      assert.equal(learned, 0, `the status page told this client ${learned} of ${fresh.length} verdicts right`);
      assert.equal(await ratio(), null, 'no hit ratio for this client');
      assert.notEqual(await ratio({ headers: { authorization: `Bearer ${LOOKUP_TOKEN}` } }), null, 'the lookup token sees it');
    } finally {
      policy.close();
    }
  });
});
