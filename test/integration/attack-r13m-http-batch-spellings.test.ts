/**
 * The HTTP batch API at its limits, against the real service and a real slapd: a full batch of
 * 1,000 spellings (upper and lower case mixed) of one valid and one unknown address is answered
 * in order, each entry with its own spelling and the right verdict, for a handful of directory
 * requests rather than one per entry; 1,001 entries are refused whole with 400 and a pointer to
 * the list; a batch of 1,000 distinct unknown addresses is answered unknown throughout.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

interface Item {
  address: string;
  verdict: string;
}

/** `s` with the letters whose bit is set in `i` upper-cased: 4,096 spellings for 12 letters. */
function spelling(s: string, i: number): string {
  return [...s].map((c, j) => ((i >> (j % 12)) & 1 ? c.toUpperCase() : c)).join('');
}

describe('HTTP batches of many spellings, at the size limit and past it (real slapd)', () => {
  let ldap: Slapd;
  let app: App;
  let url: string;

  before(async () => {
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        log: { level: 'error' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
    url = `http://127.0.0.1:${app.addresses.http!.port}/v1/recipients:check`;
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  const post = async (addresses: string[]) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ addresses }) });
    return { status: res.status, body: (await res.json()) as { results?: Item[]; detail?: string; errors?: { pointer: string }[] } };
  };
  const directoryRequests = async () => (await app.metrics.registry.getSingleMetric('rcptgate_directory_requests_total')!.get()).values.reduce((n, v) => n + v.value, 0);

  test('1,000 spellings of two addresses: in order, right, a few directory requests', async () => {
    const addresses = Array.from({ length: 1000 }, (_, i) => spelling(i % 2 ? 'nobody.here@example.com' : 'alice@example.com', i));
    const before = await directoryRequests();
    const { status, body } = await post(addresses);
    const requests = (await directoryRequests()) - before;
    assert.equal(status, 200);
    assert.equal(body.results!.length, 1000);
    body.results!.forEach((r, i) => {
      assert.equal(r.address, addresses[i], `entry ${i}`);
      assert.equal(r.verdict, i % 2 ? 'unknown' : 'valid', `entry ${i}: ${r.address}`);
    });
    console.log(`directory requests for 1,000 spellings of 2 addresses: ${requests}`);
    assert.ok(requests <= 10, `${requests} directory requests`);
  });

  test('1,001 entries are refused whole', async () => {
    const { status, body } = await post(Array.from({ length: 1001 }, (_, i) => `u${i}@example.com`));
    assert.equal(status, 400);
    assert.equal(body.errors?.[0]?.pointer, '/addresses');
  });

  test('1,000 distinct unknown addresses are all unknown', async () => {
    const { status, body } = await post(Array.from({ length: 1000 }, (_, i) => `ghost${i}@example.com`));
    assert.equal(status, 200);
    assert.deepEqual(new Set(body.results!.map((r) => r.verdict)), new Set(['unknown']));
  });
});
