import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { BerReader, BerWriter, Client, PagedResultsControl } from 'ldapts';
import { configSchema } from '../../src/config/schema.js';
import { DirectoryError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { hasRawSearch } from '../../src/directory/raw-search.js';
import type { DirectoryRecord } from '../../src/directory/types.js';

/**
 * A canned-byte LDAP server for answers slapd never gives: a paged listing page that is empty yet
 * carries a cookie, and sizeLimitExceeded with no entry to a search that set a client size limit
 * (slapd's limits always let such a search return its first entries). Everything else about
 * these answers is tested against the real slapd (test/integration/ldap-*.test.ts).
 */

interface Page {
  entries: string[];
  status: number;
  cookie?: string;
}

function message(id: number, build: (w: BerWriter) => void, cookie?: string): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(id);
  build(w);
  if (cookie !== undefined) {
    const value = new BerWriter();
    value.startSequence();
    value.writeInt(0);
    value.writeString(cookie);
    value.endSequence();
    w.startSequence(0xa0);
    w.startSequence();
    w.writeString(PagedResultsControl.type);
    w.writeBuffer(value.buffer, 0x04);
    w.endSequence();
    w.endSequence();
  }
  w.endSequence();
  return w.buffer;
}

function result(tag: number, status: number): (w: BerWriter) => void {
  return (w) => {
    w.startSequence(tag);
    w.writeEnumeration(status);
    w.writeString('');
    w.writeString(status === 4 ? 'size limit exceeded' : '');
    w.endSequence();
  };
}

function entry(mail: string): (w: BerWriter) => void {
  return (w) => {
    w.startSequence(0x64);
    w.writeString(`uid=${mail.split('@')[0]},dc=example,dc=com`);
    w.startSequence();
    w.startSequence();
    w.writeString('mail');
    w.startSequence(0x31);
    w.writeString(mail);
    w.endSequence();
    w.endSequence();
    w.endSequence();
    w.endSequence();
  };
}

/** Answers binds, and each search with the next scripted page; records the cookie each search sent. */
async function fakeServer(pages: Page[]): Promise<{ url: string; cookiesSent: string[]; close: () => Promise<void> }> {
  const cookiesSent: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A client may reset a connection it no longer needs (one still binding when the directory closes), as slapd survives.
    socket.on('error', () => undefined);
    socket.on('data', (data: Buffer) => {
      const reader = new BerReader(data);
      reader.readSequence();
      const id = reader.readInt()!;
      const op = reader.peek();
      if (op === 0x60) socket.write(message(id, result(0x61, 0)));
      else if (op === 0x42) socket.end();
      else if (op === 0x63) {
        const sent = ['cookie-1', 'cookie-2', 'cookie-3'].find((c) => data.includes(Buffer.from(c)));
        cookiesSent.push(sent ?? '');
        const page = pages[Math.min(cookiesSent.length - 1, pages.length - 1)]!;
        const out = page.entries.map((mail) => message(id, entry(mail)));
        out.push(message(id, result(0x65, page.status), page.cookie));
        socket.write(Buffer.concat(out));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `ldap://127.0.0.1:${port}`,
    cookiesSent,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

function directoryAt(url: string): LdapDirectory {
  const config = configSchema.parse({ directory: { kind: 'ldap', ldap: { urls: [url], baseDN: 'dc=example,dc=com', batchSize: 1 } } }).directory.ldap;
  return new LdapDirectory({ config, bindPassword: null, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
}

describe('LDAP answers slapd never gives (fake server)', () => {
  test('the ldapts internals the raw search relies on exist in this ldapts version', () => {
    assert.ok(hasRawSearch(new Client({ url: 'ldap://127.0.0.1:1' })));
  });

  describe('a paged listing with an empty page that carries a cookie', () => {
    let fake: Awaited<ReturnType<typeof fakeServer>>;
    before(async () => {
      fake = await fakeServer([
        { entries: ['a@example.com', 'b@example.com'], status: 0, cookie: 'cookie-1' },
        { entries: [], status: 0, cookie: 'cookie-2' },
        { entries: ['c@example.com'], status: 0, cookie: '' },
      ]);
    });
    after(() => fake.close());

    test('follows the cookie past the empty page and lists everything', async () => {
      const dir = directoryAt(fake.url);
      try {
        const records: DirectoryRecord[] = [];
        for await (const r of dir.listAll()) records.push(r);
        assert.deepEqual(records.map((r) => r.canonical), ['a@example.com', 'b@example.com', 'c@example.com']);
        assert.deepEqual(fake.cookiesSent, ['', 'cookie-1', 'cookie-2']);
      } finally {
        await dir.close();
      }
    });
  });

  describe('sizeLimitExceeded with no entry', () => {
    let fake: Awaited<ReturnType<typeof fakeServer>>;
    before(async () => {
      fake = await fakeServer([{ entries: [], status: 4 }]);
    });
    after(() => fake.close());

    test('is tempfail for a lookup, never "no such entry"', async () => {
      const dir = directoryAt(fake.url);
      try {
        const outcome = await dir.lookup('bob@example.com').then(
          (answer) => answer,
          (err: unknown) => err,
        );
        assert.ok(outcome instanceof DirectoryError, `expected a DirectoryError, got ${JSON.stringify(outcome)}`);
        assert.match(outcome.message, /sizeLimitExceeded/);
      } finally {
        await dir.close();
      }
    });

    test('fails a paged listing instead of publishing it', async () => {
      const dir = directoryAt(fake.url);
      try {
        await assert.rejects(async () => {
          for await (const _ of dir.listAll()) void _;
        }, DirectoryError);
      } finally {
        await dir.close();
      }
    });
  });
});
