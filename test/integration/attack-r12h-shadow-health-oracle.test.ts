/**
 * Shadow mode answers every recipient valid, and the lookup counters and hit ratio now go to the
 * lookup API's clients only. What a stranger still reads, /readyz and the status page, carries the
 * cache's entry count: if a fresh unknown guess added more entries than a fresh valid one (a
 * negative for the address and one for its base without the sub-address, say), the count would
 * tell the verdict the MTA hides. Real policy and HTTP listeners, bundled directory, the client
 * outside lookupAllowFrom: each fresh guess of the same shape adds as many entries, valid or not.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';

/** One policy request on its own connection, as a new SMTP session would bring it. */
function ask(port: number, recipient: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setEncoding('utf8');
    s.on('error', reject);
    s.on('data', (d: string) => {
      buf += d;
      if (!buf.includes('\n\n')) return;
      s.destroy();
      resolve(buf.trim().replace(/^action=/, ''));
    });
    s.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=203.0.113.5\nrecipient=${recipient}\n\n`);
  });
}

describe('shadow mode: the cache entry count a stranger reads (real policy and HTTP listeners)', () => {
  let app: App;
  before(async () => {
    app = await startApp({
      listen: { http: '127.0.0.1:0', socketmap: null, policy: '127.0.0.1:0', milter: null, metrics: null },
      mode: 'shadow',
      http: { lookupAllowFrom: ['::1/128'] },
    });
  });
  after(async () => {
    await app?.close();
  });

  test('fresh valid and unknown guesses, plain and with a sub-address, add the same number of entries', async () => {
    const http = `http://127.0.0.1:${app.addresses.http!.port}`;
    assert.equal((await fetch(`${http}/v1/recipients/alice@example.com`)).status, 403, 'the lookup API refuses this client');
    const entries = async (): Promise<number> => {
      const res = await fetch(`${http}/readyz`);
      return ((await res.json()) as { cache: { entries: number } }).cache.entries;
    };
    const policy = app.addresses.policy!.port;
    assert.equal(await ask(policy, 'warm-up@example.com'), 'DUNNO');
    // [guess, valid]: pairs of the same shape, never asked before.
    const guesses: Array<[string, boolean]> = [
      ['alice@example.com', true],
      ['ghost1@example.com', false],
      ['bob@example.com', true],
      ['ghost2@example.com', false],
      ['first-last+z@example.com', true],
      ['ghost3+z@example.com', false],
      ['mallory+x@example.com', false],
      ['staff+x@example.com', true],
    ];
    const added: string[] = [];
    for (const [guess, valid] of guesses) {
      const before = await entries();
      assert.equal(await ask(policy, guess), 'DUNNO', `shadow mode answers ${guess} as valid`);
      added.push(`${valid ? 'valid' : 'unknown'} ${guess} +${(await entries()) - before}`);
    }
    const by = (shape: RegExp, valid: boolean) => new Set(added.filter((a) => a.startsWith(valid ? 'valid' : 'unknown') && shape.test(a)).map((a) => a.split('+').pop()));
    for (const shape of [/^\S+ [^+]+@/, /^\S+ \S+\+\w@/]) {
      assert.deepEqual(by(shape, true), by(shape, false), `entries added: ${added.join(', ')}`);
    }
  });
});
