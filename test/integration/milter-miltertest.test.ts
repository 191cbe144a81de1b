/**
 * The milter front end driven by an independent client: Debian's `miltertest` (OpenDKIM), the
 * MTA side of libmilter in C, scripted in Lua. The script checks the negotiated options itself;
 * the reply to every RCPT is read from miltertest's verbose trace (command byte and length, which
 * tell 550, 451 and 421 apart). Engine as in milter-postfix: LDIF for example.com/example.org,
 * a stopped real slapd for example.net.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { MILTER_REPLIES, createMilterServer } from '../../src/milter/server.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { findTool } from '../helpers/slapd.js';
import { startSplitEngine, type SplitEngine } from '../helpers/split-engine.js';

const SCRIPT = String.raw`
local function check(what, err) if err ~= nil then error(what .. ": " .. tostring(err)) end end

local function session(ip)
  local conn = mt.connect("inet:" .. port .. "@127.0.0.1")
  if conn == nil then error("cannot connect to the milter") end
  check("negotiate", mt.negotiate(conn, nil, nil, nil))
  for _, opt in ipairs({ SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NOBODY, SMFIP_NOUNKNOWN, SMFIP_NODATA }) do
    if not mt.test_option(conn, opt) then error("milter did not ask to skip stage " .. opt) end
  end
  for _, opt in ipairs({ SMFIP_NOCONNECT, SMFIP_NORCPT, SMFIP_NR_RCPT }) do
    if mt.test_option(conn, opt) then error("milter asked for option " .. opt) end
  end
  for _, act in ipairs({ SMFIF_ADDHDRS, SMFIF_CHGBODY, SMFIF_ADDRCPT, SMFIF_DELRCPT, SMFIF_CHGHDRS }) do
    if mt.test_action(conn, act) then error("milter asked for action " .. act) end
  end
  check("conninfo", mt.conninfo(conn, "client.example.net", ip))
  if mt.getreply(conn) ~= SMFIR_CONTINUE then error("CONNECT not answered with continue") end
  check("helo", mt.helo(conn, "client.example.net"))
  check("mailfrom", mt.mailfrom(conn, "<sender@client.example>"))
  return conn
end

local function rcpt(conn, addr, ...)
  check("rcptto " .. addr, mt.rcptto(conn, addr, ...))
  mt.echo("RCPT " .. addr)
end

-- one client: every verdict, ESMTP parameters, an aborted message, end of message
local c = session("192.0.2.10")
rcpt(c, "<alice@example.com>")
rcpt(c, "<nobody@example.com>")
rcpt(c, "<someone@example.net>")
rcpt(c, "<bob@example.com>", "NOTIFY=NEVER", "ORCPT=rfc822;bob@example.com")
check("abort", mt.abort(c))
check("mailfrom", mt.mailfrom(c, "<sender@client.example>"))
rcpt(c, "<dave@example.org>")
check("eom", mt.eom(c))
if mt.getreply(c) ~= SMFIR_CONTINUE and mt.getreply(c) ~= SMFIR_ACCEPT then error("end of message not accepted") end
check("disconnect", mt.disconnect(c))

-- a harvester: 20 unknown recipients, then the 21st and a valid one
local h = session("192.0.2.66")
for i = 1, 21 do rcpt(h, "<ghost" .. i .. "@example.com>") end
rcpt(h, "<alice@example.com>")
check("disconnect", mt.disconnect(h))

-- another client, unaffected
local o = session("192.0.2.67")
rcpt(o, "<alice@example.com>")
rcpt(o, "<ghost1@example.com>")
check("disconnect", mt.disconnect(o))
`;

interface RcptReply {
  command: string;
  length: number;
}

/** Replies to RCPT commands, in order, from miltertest -vvv's trace of packets. */
function rcptReplies(trace: string): RcptReply[] {
  const out: RcptReply[] = [];
  const awaiting = new Set<string>();
  for (const line of trace.split('\n')) {
    const w = /mt_milter_write\((\d+)\): cmd (.)/.exec(line);
    if (w) {
      if (w[2] === 'R') awaiting.add(w[1]!);
      else awaiting.delete(w[1]!);
      continue;
    }
    const r = /mt_milter_read\((\d+)\): cmd (.), len (\d+)/.exec(line);
    if (r && awaiting.delete(r[1]!)) out.push({ command: r[2]!, length: Number(r[3]) });
  }
  return out;
}

/** What a reply code packet for `text` looks like in the trace: 'y', text plus its NUL. */
const code = (text: string): RcptReply => ({ command: 'y', length: Buffer.byteLength(text) + 1 });
const CONTINUE: RcptReply = { command: 'c', length: 0 };

describe('milter driven by miltertest', () => {
  let engine: SplitEngine | undefined;
  let server: TcpServer | undefined;
  let port = 0;
  let dir: string | undefined;

  before(async () => {
    if (!findTool('miltertest')) throw new Error('miltertest not found on PATH: install the Debian package "miltertest"');
    engine = await startSplitEngine();
    const { validator, metrics, logger } = engine;
    const harvest = new HarvestGuard({ maxUnknown: 20, windowMs: 600_000, action: 'reject' });
    server = createMilterServer({ validator, metrics, logger, harvest, maxConnections: 10, idleTimeoutMs: 60_000 });
    port = (await server.listen('127.0.0.1:0')).port;
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-miltertest-'));
  });

  after(async () => {
    await server?.close(1000);
    await engine?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('negotiates skips, answers every verdict and blocks the 21st unknown recipient of one client only', async () => {
    const script = path.join(dir!, 'rcptgate.lua');
    await writeFile(script, SCRIPT);
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(findTool('miltertest')!, ['-vvv', '-D', `port=${port}`, '-s', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.once('error', reject);
      child.once('close', (c) => {
        clearTimeout(timer);
        resolve({ code: c, stdout, stderr });
      });
    });
    assert.equal(run.code, 0, `miltertest failed:\n${run.stdout}\n${run.stderr}`);
    const expected: RcptReply[] = [
      CONTINUE, // alice
      code(MILTER_REPLIES.unknown), // nobody
      code(MILTER_REPLIES.tempfail), // someone@example.net, directory down
      CONTINUE, // bob, with ESMTP parameters
      CONTINUE, // dave, after ABORT
      ...Array.from({ length: 20 }, () => code(MILTER_REPLIES.unknown)),
      code(MILTER_REPLIES.harvest), // the 21st unknown
      code(MILTER_REPLIES.harvest), // and a valid one from the same client
      CONTINUE, // alice from another client
      code(MILTER_REPLIES.unknown),
    ];
    assert.deepEqual(rcptReplies(run.stderr + run.stdout), expected);
    assert.equal((run.stdout.match(/^RCPT /gm) ?? []).length, expected.length);
  });
});
