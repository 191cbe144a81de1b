/**
 * SIGTERM while the directory has stopped answering (slapd SIGSTOPped) and Postfix's smtpd
 * processes wait, through the milter, for the verdict on a RCPT TO: the drain time (2 s) is
 * shorter than the directory's timeout (30 s). Each must get a temporary failure before the
 * connection closes (a 4xx reply or tempfail), never a connection cut in mid-command, which
 * smtpd answers with milter_default_action (an operator's "accept" lets every recipient through). The
 * socketmap, policy and HTTP front ends have the same test (attack-r13l-stop-with-directory-stopped).
 * Real slapd, the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MilterPacketDecoder, encodeMilterPacket, type MilterPacket } from '../../src/milter/codec.js';
import { Cmd, Family } from '../../src/milter/constants.js';
import { connectFrom, milterOptneg, milterRcpt } from '../helpers/frontend-clients.js';
import { listenerPort, startServe, type ServeProcess } from '../helpers/process.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

/** One SMTP session's milter side: packets sent in order; the answer to the last one (its command letter, or the reply text). */
async function rcptVerdict(port: number, recipient: string): Promise<{ socket: net.Socket; answer: Promise<string> }> {
  const socket = await connectFrom(port);
  const decoder = new MilterPacketDecoder();
  const got: MilterPacket[] = [];
  const answer = new Promise<string>((resolve) => {
    socket.on('data', (d: Buffer) => {
      got.push(...decoder.push(d));
      // Replies to OPTNEG, CONNECT and MAIL come first; the fourth is the RCPT's.
      if (got.length >= 4) {
        const p = got[3]!;
        const cmd = String.fromCharCode(p.command);
        resolve(cmd === 'y' ? p.data.toString('utf8').replace(/\0$/, '') : cmd);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(`cut after ${got.length} replies`));
  });
  const p = Buffer.alloc(2);
  p.writeUInt16BE(25000);
  socket.write(milterOptneg());
  socket.write(encodeMilterPacket(Cmd.CONNECT, Buffer.concat([Buffer.from('client.example\0'), Buffer.from([Family.INET]), p, Buffer.from('192.0.2.7\0')])));
  socket.write(encodeMilterPacket(Cmd.MAIL, Buffer.from('<sender@client.example>\0')));
  socket.write(milterRcpt(recipient));
  return { socket, answer };
}

describe('SIGTERM with milter RCPT checks hanging on a stopped directory (real slapd, real CLI)', () => {
  let ldap: Slapd;
  let dir: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    ldap = await startSlapd({ generatedUsers: 20 });
    dir = await mkdtemp(path.join(tmpdir(), 'rcptgate-r13r-miltstop-'));
  });
  after(async () => {
    await serve?.kill();
    ldap?.resume();
    await ldap?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('each RCPT in flight gets a temporary failure before the drain ends; exit 0', async () => {
    const file = path.join(dir, 'rcptgate.yaml');
    await writeFile(file, JSON.stringify({
      listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: '127.0.0.1:0', metrics: null },
      domains: ['example.com'],
      directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN, timeout: '30s' } },
      server: { drainTimeout: '2s' },
      log: { level: 'info' },
    }));
    serve = startServe(['--config', file], { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword });
    const milterPort = await listenerPort(serve, 'milter');
    const client = await SocketmapClient.connect(await listenerPort(serve, 'socketmap'));
    assert.match(await client.query('recipients', 'alice@example.com'), /^OK /);
    client.close();
    // The directory answers through the milter too.
    const warm = await rcptVerdict(milterPort, 'bob@example.com');
    assert.equal(await warm.answer, 'c');
    warm.socket.destroy();

    await ldap.pause();
    const sessions = await Promise.all([1, 2, 3].map((i) => rcptVerdict(milterPort, `user${i}@example.com`)));
    await new Promise((r) => setTimeout(r, 300));
    const sent = Date.now();
    serve.child.kill('SIGTERM');
    const answers = await Promise.all(sessions.map((s) => s.answer));
    const code = await Promise.race([serve.exited, new Promise((r) => setTimeout(() => r('still running 30 s after SIGTERM'), 30_000))]);
    const took = Date.now() - sent;
    for (const s of sessions) s.socket.destroy();
    for (const a of answers) assert.ok(a === 't' || /^4\d\d /.test(a), `milter answers: ${answers.join(' | ')}`);
    assert.equal(code, 0, `exit; logs: ${JSON.stringify(serve.logs.filter((l) => (l.level as number) >= 40))}`);
    assert.ok(took < 12_000, `exited ${took} ms after SIGTERM`);
    ldap.resume();
  });
});
