/**
 * Sendmail waits 10 s for a milter reply (T=R:10s) and then goes on without it: with no F= flag
 * the recipient is taken unchecked. A tarpitted client's reply was held `policy.harvest.maxDelay`
 * after its lookup, which may itself take up to `directory.ldap.timeout`: with timeout 5s and
 * maxDelay 6s, each under 10 s, a flagged client's recipient was answered after 11 s against a
 * directory that stopped answering. The delay now runs from the recipient's arrival, alongside its
 * lookup, so the reply comes at the later of the two (6 s here), and `config check`, which names
 * each setting reaching 10 s alone, has nothing to add. Real milter listener, real slapd behind a
 * proxy that drops the traffic.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { MilterPacketDecoder, encodeMilterPacket } from '../../src/milter/codec.js';
import { Cmd, Family } from '../../src/milter/constants.js';
import { startApp } from '../helpers/app.js';
import { connectFrom, milterOptneg, milterRcpt } from '../helpers/frontend-clients.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { REPO_ROOT } from '../helpers/process.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** Sendmail's default milter read timeout. */
const SENDMAIL_READ_TIMEOUT_MS = 10_000;
const HARVEST = { maxUnknown: 2, delayStep: '6s', maxDelay: '6s' };
const TIMEOUT = '5s';

function milterConnect(address: string): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(25);
  return encodeMilterPacket(Cmd.CONNECT, Buffer.concat([Buffer.from('client.example\0'), Buffer.from([Family.INET]), port, Buffer.from(`${address}\0`, 'latin1')]));
}

/** A milter session whose replies are read one at a time. */
class Session {
  private readonly decoder = new MilterPacketDecoder();
  private readonly replies: string[] = [];
  private wake: (() => void) | null = null;
  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const p of this.decoder.push(chunk)) {
        const cmd = String.fromCharCode(p.command);
        this.replies.push(cmd === 'y' ? p.data.toString('utf8').replace(/\0$/, '') : cmd);
      }
      this.wake?.();
    });
  }
  async next(): Promise<string> {
    while (this.replies.length === 0) await new Promise<void>((r) => (this.wake = r));
    return this.replies.shift()!;
  }
  async ask(packet: Buffer): Promise<string> {
    this.socket.write(packet);
    return this.next();
  }
}

function configCheck(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check', '--config', file], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (out += c));
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('tarpit delay plus directory timeout against Sendmail\'s milter timeout (real slapd, real milter listener)', () => {
  let ldap: Slapd;
  let proxy: FaultProxy;
  let app: App;
  let dir: string;
  let config: Record<string, unknown>;

  before(async () => {
    ldap = await startSlapd();
    proxy = await startFaultProxy(ldap.port);
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-milter-tarpit-'));
    await writeFile(path.join(dir, 'bind-password'), `${ldap.servicePassword}\n`);
    config = {
      listen: { http: null, socketmap: null, policy: null, milter: '127.0.0.1:0', metrics: null },
      domains: ['example.com'],
      directory: {
        kind: 'ldap',
        canaries: ['alice@example.com'],
        ldap: { urls: [proxy.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, bindPasswordFile: path.join(dir, 'bind-password'), timeout: TIMEOUT },
      },
      cache: { maxEntries: 0 },
      policy: { harvest: HARVEST },
    };
    app = await startApp(config);
  });
  after(async () => {
    await app?.close();
    await proxy?.close();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a flagged client\'s reply comes within 10 s when each setting is under it; config check is quiet', async (t) => {
    const socket = await connectFrom(app.addresses.milter!.port);
    try {
      const s = new Session(socket);
      assert.equal(await s.ask(milterOptneg()), 'O');
      assert.equal(await s.ask(milterConnect('198.51.100.9')), 'c');
      for (let i = 0; i <= HARVEST.maxUnknown; i++) await s.ask(milterRcpt(`ghost-${i}@example.com`));
      // The directory stops answering (a hung server, a dropped route).
      proxy.mode = 'blackhole';
      for (const c of proxy.open()) c.blackhole();
      const began = Date.now();
      const reply = await s.ask(milterRcpt('alice@example.com'));
      const tookMs = Date.now() - began;
      t.diagnostic(`flagged client's reply after ${tookMs} ms`);
      assert.match(reply, /^451 /, 'the lookup failed, tempfail');
      assert.ok(tookMs < SENDMAIL_READ_TIMEOUT_MS, `the reply took ${tookMs} ms: past Sendmail's ${SENDMAIL_READ_TIMEOUT_MS} ms`);
      assert.ok(tookMs >= 5_500, `the reply took ${tookMs} ms: the tarpit's 6 s were not held`);
    } finally {
      socket.destroy();
    }

    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify(config));
    const { code, out } = await configCheck(file);
    assert.equal(code, 0, out);
    assert.doesNotMatch(out, /Sendmail/, `config check notes no milter timeout:\n${out}`);
  });
});
