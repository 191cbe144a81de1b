/**
 * A directory that stops answering entirely (slapd SIGSTOPped: connections open, nothing heard)
 * under a steady stream of cold lookups, after the changes that count one stuck search once and
 * leave the health alone while later searches are answered. Nothing is answered after the stop,
 * so those must not apply: every lookup tempfails within its timeout (never unknown, never
 * waiting past it), /readyz reports the directory down (reasonCode directory_down) within a few timeouts, and the breaker
 * answers fast once open. Resumed, lookups are valid again. Real slapd, the real service.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const TIMEOUT_MS = 2_000;

describe('a directory that stops answering under steady lookups (real slapd, SIGSTOP)', { timeout: 300_000 }, () => {
  let ldap: Slapd;
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  let port = 0;

  before(async () => {
    ldap = await startSlapd({ generatedUsers: 2_000 });
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '2s' } },
        log: { level: 'silent' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    port = app.addresses.http!.port;
  });
  after(async () => {
    ldap?.resume();
    await app?.close();
    await ldap?.close();
  });

  async function ask(address: string): Promise<{ v: string; ms: number }> {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`);
    const body = (await res.json()) as { verdict: string; source: string };
    return { v: `${body.verdict}/${body.source}`, ms: performance.now() - t0 };
  }
  /** /readyz's reason code ('' when none): it stays 200 (cached answers serve), the reason tells the directory down. */
  const reason = async (): Promise<string> => ((await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { reasonCode?: string }).reasonCode ?? '';

  test('tempfail within the timeout, reported down, fast once the breaker is open, valid after resume', async () => {
    for (let i = 1; i <= 5; i++) assert.equal((await ask(`user${i}@example.com`)).v, 'valid/directory');
    assert.equal(await reason(), '');
    await ldap.pause();
    const stoppedAt = performance.now();
    const answers: Array<{ v: string; ms: number; at: number }> = [];
    let downAfter = -1;
    const flood: Promise<void>[] = [];
    // 20 cold lookups a second, valid and unknown, for 12 s.
    for (let i = 0; performance.now() - stoppedAt < 12_000; i++) {
      const address = i % 2 === 0 ? `user${100 + i}@example.com` : `nobody${i}@example.com`;
      flood.push(ask(address).then((a) => void answers.push({ ...a, at: performance.now() - stoppedAt })));
      if (downAfter < 0 && i % 10 === 0 && (await reason()) === 'directory_down') downAfter = performance.now() - stoppedAt;
      await sleep(50);
    }
    await Promise.all(flood);
    const kinds = [...new Set(answers.map((a) => a.v))];
    const slowest = Math.max(...answers.map((a) => a.ms));
    const late = answers.filter((a) => a.at > 8_000);
    const lateSlow = late.filter((a) => a.ms > 500).length;
    console.log(JSON.stringify({ asked: answers.length, kinds, slowest: Math.round(slowest), downAfter: Math.round(downAfter), late: late.length, lateSlow }));
    assert.deepEqual(kinds.filter((k) => !k.startsWith('tempfail/')), [], 'only tempfail while stopped');
    assert.ok(slowest < TIMEOUT_MS + 1_500, `a lookup waited ${Math.round(slowest)} ms (timeout ${TIMEOUT_MS})`);
    assert.ok(downAfter > 0 && downAfter < 4 * TIMEOUT_MS + 2_000, `reported down after ${Math.round(downAfter)} ms`);
    assert.ok(lateSlow <= late.length / 4, `after 8 s, ${lateSlow} of ${late.length} lookups still waited > 500 ms (breaker not open)`);

    ldap.resume();
    const end = Date.now() + 30_000;
    let v = '';
    while (Date.now() < end && (v = (await ask('user1999@example.com')).v) !== 'valid/directory') await sleep(500);
    assert.equal(v, 'valid/directory');
  });
});
