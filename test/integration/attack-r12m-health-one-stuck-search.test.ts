/**
 * One LDAP search hangs on the server while the directory answers every other search. Its
 * lookups are deferred (451) and the breaker counts it once, but the health still read each of
 * them as the directory failing: "directory is failing" was logged, readiness and
 * rcptgate_directory_up dropped until the next answer, flapping with every stuck search. Real
 * slapd behind a proxy that drops the answers to the searches for the stalled users; the service
 * as `serve` builds it, asked over its HTTP API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { verdictOf } from '../helpers/http-verdict.js';
import { startAppWithLogs } from '../helpers/r12b-app-logs.js';
import { startStallProxy, type StallProxy } from '../helpers/r12b-stall-proxy.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** The one user whose search hangs (a slow index, a lock on that entry). */
const STALLED = ['uid=user1,'];

describe('health while one search is stuck and the directory answers the rest', () => {
  let slapd: Slapd;
  let proxy: StallProxy;
  let service: Awaited<ReturnType<typeof startAppWithLogs>> | undefined;
  before(async () => {
    slapd = await startSlapd({ generatedUsers: 300 });
    proxy = await startStallProxy(slapd.port, (msg) => STALLED.some((dn) => msg.toString('latin1').includes(dn)));
  });
  after(async () => {
    await service?.app.close();
    await proxy?.close();
    await slapd?.close();
  });

  test('the stuck lookup defers; the directory is not reported failing', async () => {
    service = await startAppWithLogs(
      {
        listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [proxy.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '3s', poolSize: 1 } },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
    );
    const port = service.app.addresses.http!.port;
    assert.equal(await verdictOf(port, 'user200@example.com'), 'valid/directory', 'warm');
    const stuck = verdictOf(port, 'user1@example.com');
    await sleep(50);
    const others: string[] = [];
    for (let k = 101; k <= 140; k++) {
      // Before the stuck search times out (3 s) and well after it.
      others.push(await verdictOf(port, `user${k}@example.com`));
      await sleep(100);
    }
    const stuckVerdict = await stuck;
    assert.ok(proxy.stalled >= 1, 'the stalled users were searched');
    assert.equal(stuckVerdict.split('/')[0], 'tempfail', 'the stuck lookup deferred');
    assert.deepEqual([...new Set(others)], ['valid/directory'], 'every other lookup answered');
    const failing = service.lines.filter((l) => /directory is failing/.test(l));
    assert.deepEqual(failing, [], 'the directory answered throughout: not reported failing');
  });
});
