/**
 * The process at its file descriptor limit: `rcptgate serve` run with a low `ulimit -n` behind a
 * real slapd, then flooded with connections. At the limit libuv accepts and closes the waiting
 * connections itself (a descriptor kept in reserve), so they are closed unanswered while the open
 * ones are still served; before, nothing was logged at all, so an operator had no clue why MTAs
 * saw "lost connection". Now one error line says so (not one per dropped connection, no spin),
 * and one info line when descriptors are free again; new connections are then answered.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sleep } from '../helpers/frontend-clients.js';
import { REPO_ROOT } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { findTool, startSlapd, type Slapd } from '../helpers/slapd.js';
import { until } from '../helpers/wait.js';

const NOFILE = 120;
const FLOOD = 200;

type Line = Record<string, unknown>;

describe(`rcptgate serve at its file descriptor limit (ulimit -n ${NOFILE}, real slapd)`, { timeout: 120_000 }, () => {
  let slapd: Slapd;
  let dir: string;
  let child: ReturnType<typeof spawn> | undefined;
  const logs: Line[] = [];

  before(async () => {
    const sh = findTool('sh');
    assert.ok(sh, 'sh is needed to run the service with a low ulimit -n');
    slapd = await startSlapd({ generatedUsers: 20 });
    dir = await mkdtemp(join(tmpdir(), 'rcptgate-nofile-'));
    const config = join(dir, 'rcptgate.yaml');
    await writeFile(config, JSON.stringify({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null, metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN } },
    }));
    // Soft and hard limit both: Node raises the soft limit to the hard one at start.
    child = spawn(sh, ['-c', `ulimit -n ${NOFILE} && exec "$0" --import tsx src/main.ts serve --config "$1"`, process.execPath, config], {
      cwd: REPO_ROOT,
      env: { ...process.env, RCPTGATE_LDAP_BIND_PASSWORD: slapd.servicePassword },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          logs.push(JSON.parse(line) as Line);
        } catch {
          logs.push({ raw: line });
        }
      }
    });
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await slapd?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(`${FLOOD} connections past the limit: open ones still served, one error line, recovery`, async () => {
    await until('the socketmap listener is up', () => logs.some((l) => l.msg === 'listening' && l.frontend === 'socketmap'));
    const port = Number(String(logs.find((l) => l.msg === 'listening' && l.frontend === 'socketmap')!.address).split(':').pop());
    const mta = await SocketmapClient.connect(port);
    const flood: net.Socket[] = [];
    try {
      assert.equal(await mta.query('recipients', 'user1@example.com'), 'OK user1@example.com');
      for (let i = 0; i < FLOOD; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        flood.push(s);
      }
      const fdLines = () => logs.filter((l) => l.event === 'fd_limit');
      await until('the limit is logged', () => fdLines().length > 0, 20_000);
      // Some of the flood was closed unanswered: the process could not hold them all.
      await until('the connections over the limit are closed', () => flood.filter((s) => s.destroyed).length > 0, 20_000);

      // The connection opened before is still served, cached and cold.
      assert.equal(await mta.query('recipients', 'user1@example.com'), 'OK user1@example.com');
      assert.equal(await mta.query('recipients', 'user2@example.com'), 'OK user2@example.com');
      assert.equal(await mta.query('recipients', 'nobody@example.com'), 'NOTFOUND ');

      // Once per episode, however long it lasts and however many connections it drops.
      await sleep(3_000);
      for (let i = 0; i < 50; i++) flood.push(net.connect(port, '127.0.0.1').on('error', () => undefined));
      await sleep(2_000);
      assert.equal(fdLines().length, 1, JSON.stringify(fdLines()));
      assert.equal(fdLines()[0]!.level, 50, 'logged at error level');
      assert.equal(fdLines()[0]!.limit, NOFILE);
      assert.ok(logs.length < 30, `${logs.length} log lines`);

      for (const s of flood) s.destroy();
      await until('recovery is logged', () => fdLines().length === 2, 20_000);
      assert.equal(fdLines()[1]!.level, 30);
      const fresh = await SocketmapClient.connect(port);
      try {
        assert.equal(await fresh.query('recipients', 'user3@example.com'), 'OK user3@example.com');
      } finally {
        fresh.close();
      }
    } finally {
      mta.close();
      for (const s of flood) s.destroy();
    }
  });
});
