/**
 * Answers about one address that leave it unknowable while the directory works: a referral object
 * inside the search base makes every search that finds nothing partial (the referred part was not
 * searched), and a server limit (`size.unchecked`) refuses the search of an address held by more
 * entries than it lets one search examine. Each is tempfail for that address, never unknown. Each
 * was counted as a directory failure: five such lookups in a row (one spam run) opened the circuit
 * breaker and every lookup not cached, valid users included, was deferred. Real slapd, the real
 * service (breaker, health and socketmap as `serve` builds them).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from '../../src/app/app.js';
import { startApp } from '../helpers/app.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

const PARTNERS = 'ou=partners,ou=people,dc=example,dc=com';
const POSITIVE_TTL_MS = 1_000;

async function metric(app: App, line: RegExp): Promise<string | undefined> {
  return (await app.metrics.registry.metrics()).split('\n').find((l) => line.test(l));
}

/** The real service with a socketmap listener on `slapd`; `cache` settings added. */
function serviceOn(slapd: Slapd, cache: Record<string, unknown> = {}): Promise<App> {
  return startApp(
    {
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      cache,
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
    },
    { RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
  );
}

/** The socketmap replies to `addresses`, asked one after another. */
async function askAll(client: SocketmapClient, addresses: string[]): Promise<string[]> {
  const replies: string[] = [];
  for (const a of addresses) replies.push(await client.query('recipients', a));
  return replies;
}

const VALID = Array.from({ length: 20 }, (_, i) => `user${i + 1}@example.com`);

async function partials(app: App): Promise<number> {
  return Number((await metric(app, /^rcptgate_directory_requests_total\{outcome="partial"\}/))?.split(' ')[1] ?? 0);
}

describe('a referral object in the search base (real slapd, the real service)', () => {
  let slapd: Slapd;
  let app: App;
  before(async () => {
    // The reference names a server that is not there: nothing behind it can be known.
    slapd = await startSlapd({ generatedUsers: 40, ldifText: [`dn: ${PARTNERS}\nobjectClass: referral\nobjectClass: extensibleObject\nou: partners\nref: ldap://127.0.0.1:1/${PARTNERS}`] });
    app = await serviceOn(slapd, { positiveTtl: `${POSITIVE_TTL_MS}ms` });
  });
  after(async () => {
    await app?.close();
    await slapd?.close();
  });

  test('a user deleted after its answer was cached is deferred once that answer expires, not served stale', async () => {
    // staleIfError keeps a valid answer through an outage; a partial answer is none: the user may be gone.
    const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    try {
      assert.equal(await client.query('recipients', 'user40@example.com'), 'OK user40@example.com');
      await slapd.modify(`dn: uid=user40,ou=people,dc=example,dc=com\nchangetype: delete\n`);
      await sleep(POSITIVE_TTL_MS + 200);
      assert.equal((await client.query('recipients', 'user40@example.com')).split(' ')[0], 'TEMP');
    } finally {
      client.close();
    }
  });

  test('a run of unknown addresses is deferred, and valid users asked after it are still valid', async () => {
    const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    const partialsBefore = await partials(app);
    try {
      const unknown = await askAll(client, Array.from({ length: 20 }, (_, i) => `ghost${i}@example.com`));
      assert.deepEqual(new Set(unknown.map((r) => r.split(' ')[0])), new Set(['TEMP']), 'not found beside a reference: deferred, never NOTFOUND');
      assert.deepEqual(await askAll(client, VALID), VALID.map((a) => `OK ${a}`));
      assert.equal(await metric(app, /^rcptgate_directory_up /), 'rcptgate_directory_up 1');
      assert.equal((await partials(app)) - partialsBefore, 20, 'each counted as a partial answer');
    } finally {
      client.close();
    }
  });
});

describe('an address held by more entries than a server limit lets a search examine (real slapd)', () => {
  let slapd: Slapd;
  let app: App;
  before(async () => {
    // A careless admin gave one address to 30 entries; the service account may examine 5 candidates.
    const holders = Array.from({ length: 30 }, (_, i) => `dn: uid=shared${i},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: shared${i}\ncn: Shared ${i}\nsn: Shared\nmail: shared@example.com`);
    slapd = await startSlapd({ generatedUsers: 40, ldifText: holders, serviceLimits: 'size.unchecked=5' });
    app = await serviceOn(slapd);
  });
  after(async () => {
    await app?.close();
    await slapd?.close();
  });

  test('asked again and again it is deferred, and valid users asked after it are still valid', async () => {
    const client = await SocketmapClient.connect(app.addresses.socketmap!.port);
    try {
      const shared = await askAll(client, Array.from({ length: 20 }, () => 'shared@example.com'));
      assert.deepEqual(new Set(shared.map((r) => r.split(' ')[0])), new Set(['TEMP']), 'refused by a limit: deferred, never NOTFOUND');
      assert.deepEqual(await askAll(client, VALID), VALID.map((a) => `OK ${a}`));
      assert.equal(await metric(app, /^rcptgate_directory_up /), 'rcptgate_directory_up 1');
    } finally {
      client.close();
    }
  });
});
