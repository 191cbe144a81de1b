/**
 * Real Postfix for integration tests: `postmap -q` against a map, a private Postfix instance
 * (own config, queue and data directories; smtpd on a free loopback port), and swaks as the SMTP
 * client. Missing tools make the caller FAIL with a message naming the tool — never skip.
 *
 *   const mx = await startPostfix({ mainCf: { relay_domains: 'socketmap:inet:127.0.0.1:9465:domains' } });
 *   const r = await swaks({ port: mx.port, from: 'a@b.example', to: ['alice@example.com'] });
 *   r.rcpt[0].code === 250; (await mx.queue()).some(m => m.recipients.includes('alice@example.com'));
 *   await mx.close();
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './ports.js';

/** Where Debian puts Postfix and swaks, in case PATH lacks the sbin directories. */
const EXTRA_PATH = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'];

/** Absolute path of a tool, or an error naming it and the Debian package that has it. */
export function requireTool(name: 'postfix' | 'postmap' | 'postqueue' | 'postconf' | 'swaks'): string {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_PATH];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  const pkg = name === 'swaks' ? 'swaks' : 'postfix';
  throw new Error(`${name} not found in PATH: install the Debian package "${pkg}" (apt-get install ${pkg})`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {}); // the tool may exit before reading all input
    child.stdin.end(options.input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// postmap -q

export interface PostmapResult extends RunResult {
  /** stdout split into lines, without the trailing empty one. */
  lines: string[];
}

export interface PostmapBulkResult extends PostmapResult {
  /** key → value for every key postmap found (`key<TAB>value` lines). */
  found: Map<string, string>;
  /** Wall time of the postmap process, ms (benchmarks). */
  elapsedMs: number;
}

/** A throwaway config directory with the main.cf that the Postfix client tools need. */
async function withClientConfig<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-postmap-'));
  try {
    await writeFile(path.join(dir, 'main.cf'), 'compatibility_level = 3.6\n');
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** `postmap -q KEY MAP`: exit 0 and the value on stdout when found, exit 1 when not. */
export async function postmapQuery(key: string, mapSpec: string): Promise<PostmapResult> {
  const postmap = requireTool('postmap');
  return withClientConfig(async (dir) => {
    const r = await run(postmap, ['-c', dir, '-q', key, mapSpec]);
    return { ...r, lines: splitLines(r.stdout) };
  });
}

/** `postmap -q - MAP < keys`: every lookup on one client connection, like smtpd does. */
export async function postmapBulk(keys: string[], mapSpec: string): Promise<PostmapBulkResult> {
  const postmap = requireTool('postmap');
  return withClientConfig(async (dir) => {
    const started = process.hrtime.bigint();
    const r = await run(postmap, ['-c', dir, '-q', '-', mapSpec], { input: keys.map((k) => `${k}\n`).join('') });
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const lines = splitLines(r.stdout);
    const found = new Map<string, string>();
    for (const line of lines) {
      const tab = line.indexOf('\t');
      if (tab >= 0) found.set(line.slice(0, tab), line.slice(tab + 1));
    }
    return { ...r, lines, found, elapsedMs };
  });
}

// ---------------------------------------------------------------------------------------------
// A private Postfix instance

export interface QueuedMessage {
  queueName: string;
  queueId: string;
  sender: string;
  recipients: Array<{ address: string; delayReason?: string }>;
}

export interface PostfixInstance {
  /** smtpd's port on 127.0.0.1. */
  port: number;
  /** The instance's directory (config in DIR/etc, queue in DIR/queue, log in DIR/maillog). */
  dir: string;
  configDir: string;
  /** Every message in the queue (`postqueue -j`, the machine-readable form of `postqueue -p`). */
  queue(): Promise<QueuedMessage[]>;
  /** Every recipient address in the queue, lowercased. */
  queuedRecipients(): Promise<string[]>;
  /** The instance's log so far. */
  maillog(): Promise<string>;
  /** `postfix -c DIR stop`, then kill whatever of this instance is left. */
  stop(): Promise<void>;
  /** stop() and remove the directory. */
  close(): Promise<void>;
}

export interface StartPostfixOptions {
  /** main.cf lines added to (and overriding) the base configuration. */
  mainCf?: Record<string, string>;
  /** Appended to master.cf verbatim. */
  masterCfExtra?: string;
}

/** Services the instance runs; nothing chrooted, so no files need copying into the queue. */
function masterCf(port: number): string {
  const services = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'proxywrite unix - - n - 1 proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  return `${services.join('\n')}\n`;
}

function mainCfText(settings: Record<string, string>): string {
  return `${Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')}\n`;
}

/** PIDs whose environment says they belong to this instance (Postfix passes MAIL_CONFIG down). */
async function instancePids(configDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = await readFile(`/proc/${entry}/environ`, 'latin1');
      if (env.split('\0').includes(`MAIL_CONFIG=${configDir}`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a private Postfix: smtpd on a free 127.0.0.1 port, no local delivery, relay_transport
 * and default_transport pointing at a closed port so accepted mail stays in the queue.
 * The client (swaks from 127.0.0.1) is NOT in mynetworks: it is treated like the internet.
 */
export async function startPostfix(options: StartPostfixOptions = {}): Promise<PostfixInstance> {
  const postfix = requireTool('postfix');
  const postqueue = requireTool('postqueue');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-postfix-'));
  await chmod(dir, 0o755); // Postfix daemons run as the postfix user and must reach the queue
  const configDir = path.join(dir, 'etc');
  const queueDir = path.join(dir, 'queue');
  const dataDir = path.join(dir, 'data');
  const maillogFile = path.join(dir, 'maillog');
  const env = { ...process.env, MAIL_CONFIG: configDir };
  let started = false;

  const stop = async () => {
    if (started) await run(postfix, ['-c', configDir, 'stop'], { env, timeoutMs: 20_000 }).catch(() => undefined);
    started = false;
    // Give master a moment to take its children down, then kill whatever remains.
    const deadline = Date.now() + 5_000;
    let pids = await instancePids(configDir);
    while (pids.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      pids = (await instancePids(configDir)).filter(alive);
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };

  try {
    const port = await freePort();
    const closedPort = await freePort(); // nothing listens here: relayed mail stays deferred
    await mkdir(configDir);
    await mkdir(queueDir);
    await mkdir(dataDir);
    const { uid, gid } = await postfixUser();
    await chown(dataDir, uid, gid);
    const base: Record<string, string> = {
      compatibility_level: '3.6',
      queue_directory: queueDir,
      data_directory: dataDir,
      mail_owner: 'postfix',
      setgid_group: 'postdrop',
      myhostname: 'mx.rcptgate.test',
      mydomain: 'rcptgate.test',
      myorigin: '$myhostname',
      mydestination: '',
      inet_interfaces: '127.0.0.1',
      inet_protocols: 'ipv4',
      // A documentation network: the test client on 127.0.0.1 is a stranger, as on a real MX.
      mynetworks: '192.0.2.0/24',
      relay_transport: `relay:[127.0.0.1]:${closedPort}`,
      default_transport: `smtp:[127.0.0.1]:${closedPort}`,
      smtp_host_lookup: 'native',
      alias_maps: '',
      alias_database: '',
      local_recipient_maps: '',
      biff: 'no',
      append_dot_mydomain: 'no',
      smtpd_banner: '$myhostname ESMTP',
      maillog_file: maillogFile,
      maillog_file_prefixes: dir,
      smtputf8_enable: 'no',
      // Keep the queue manager from retrying during a test.
      queue_run_delay: '1h',
      minimal_backoff_time: '1h',
      maximal_backoff_time: '2h',
    };
    await writeFile(path.join(configDir, 'main.cf'), mainCfText({ ...base, ...options.mainCf }));
    await writeFile(path.join(configDir, 'master.cf'), masterCf(port) + (options.masterCfExtra ? `${options.masterCfExtra}\n` : ''));
    const r = await run(postfix, ['-c', configDir, 'start'], { env, timeoutMs: 30_000 });
    started = true;
    if (r.code !== 0) {
      const log = await readFile(maillogFile, 'utf8').catch(() => '');
      throw new Error(`postfix -c ${configDir} start failed (exit ${r.code}): ${r.stderr}${r.stdout}\n${log}`);
    }
    await waitForPort(port, 15_000, `postfix smtpd on 127.0.0.1:${port}`);

    const queue = async (): Promise<QueuedMessage[]> => {
      const q = await run(postqueue, ['-c', configDir, '-j'], { env });
      if (q.code !== 0) throw new Error(`postqueue -j failed (exit ${q.code}): ${q.stderr}`);
      return splitLines(q.stdout).map((line) => {
        const m = JSON.parse(line) as {
          queue_name: string;
          queue_id: string;
          sender: string;
          recipients: Array<{ address: string; delay_reason?: string }>;
        };
        return {
          queueName: m.queue_name,
          queueId: m.queue_id,
          sender: m.sender,
          recipients: m.recipients.map((x) => (x.delay_reason ? { address: x.address, delayReason: x.delay_reason } : { address: x.address })),
        };
      });
    };

    return {
      port,
      dir,
      configDir,
      queue,
      queuedRecipients: async () => (await queue()).flatMap((m) => m.recipients.map((x) => x.address.toLowerCase())),
      maillog: () => readFile(maillogFile, 'utf8').catch(() => ''),
      stop,
      close: async () => {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function postfixUser(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postfix:'));
  const fields = line?.split(':');
  if (!fields || fields.length < 4) throw new Error('postfix user missing: install the Debian package "postfix"');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

// ---------------------------------------------------------------------------------------------
// swaks

export interface SmtpReply {
  code: number;
  /** Every line of the reply, codes included, joined with "\n". */
  text: string;
}

export interface SwaksResult {
  exitCode: number;
  /** One per recipient, in order; null if swaks never got to that RCPT. */
  rcpt: Array<{ address: string; reply: SmtpReply | null }>;
  mail: SmtpReply | null;
  /** The reply to the end of DATA (the queue ID is in its text), or null when not reached. */
  data: SmtpReply | null;
  transcript: string;
}

export interface SwaksOptions {
  port: number;
  server?: string;
  from: string;
  to: string[];
  helo?: string;
  /** Source address of the connection (any 127.x.y.z on loopback): distinct SMTP clients. */
  clientAddress?: string;
  /** The SMTP client address Postfix is told by XCLIENT (`IPV6:2001:db8::1`); needs smtpd_authorized_xclient_hosts. */
  xclientAddress?: string;
  timeoutSeconds?: number;
}

/**
 * One SMTP transaction with every recipient (swaks goes on to DATA when at least one is
 * accepted). Replies are read from swaks' transcript: `-> ` lines are ours, `<- ` and `<** `
 * the server's.
 */
export async function swaks(options: SwaksOptions): Promise<SwaksResult> {
  const bin = requireTool('swaks');
  const args = [
    '--server', options.server ?? '127.0.0.1',
    '--port', String(options.port),
    '--from', options.from,
    '--to', options.to.join(','),
    '--helo', options.helo ?? 'client.rcptgate.test',
    '--timeout', String(options.timeoutSeconds ?? 120),
    '--header', 'Subject: rcptgate integration test',
    '--body', 'rcptgate integration test\n',
  ];
  if (options.clientAddress) args.push('--local-interface', options.clientAddress);
  if (options.xclientAddress) args.push('--xclient-addr', options.xclientAddress);
  const r = await run(bin, args, { timeoutMs: ((options.timeoutSeconds ?? 120) + 30) * 1000 });
  const transcript = r.stdout + r.stderr;
  return { exitCode: r.code, ...parseTranscript(transcript, options.to), transcript };
}

/** Pairs each command swaks sent with the server reply that followed it. */
export function parseTranscript(transcript: string, to: string[]): Omit<SwaksResult, 'exitCode' | 'transcript'> {
  const exchanges: Array<{ command: string; reply: SmtpReply | null }> = [];
  let current: { command: string; lines: string[] } | null = null;
  const close = () => {
    if (!current) return;
    const first = current.lines[0];
    const code = first ? Number(first.slice(0, 3)) : NaN;
    exchanges.push({ command: current.command, reply: Number.isFinite(code) ? { code, text: current.lines.join('\n') } : null });
    current = null;
  };
  for (const raw of transcript.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const sent = /^ ?-> (.*)$/.exec(line);
    const got = /^ ?(?:<-|<\*\*) +(.*)$/.exec(line);
    if (sent) {
      // Message content lines also start with "->": only SMTP verbs open an exchange.
      const cmd = sent[1]!;
      if (/^(EHLO|HELO|MAIL FROM|RCPT TO|DATA|QUIT|RSET|STARTTLS|\.$)/i.test(cmd)) {
        close();
        current = { command: cmd, lines: [] };
      }
    } else if (got && current) {
      current.lines.push(got[1]!);
    }
  }
  close();
  const rcptReplies = exchanges.filter((e) => /^RCPT TO:/i.test(e.command));
  const find = (re: RegExp) => exchanges.find((e) => re.test(e.command))?.reply ?? null;
  return {
    mail: find(/^MAIL FROM:/i),
    rcpt: to.map((address, i) => ({ address, reply: rcptReplies[i]?.reply ?? null })),
    data: find(/^\.$/),
  };
}

/** Throws naming the first of postfix, postmap, postqueue, swaks that is missing. */
export function requirePostfixTools(): void {
  for (const t of ['postfix', 'postmap', 'postqueue', 'swaks'] as const) requireTool(t);
}
