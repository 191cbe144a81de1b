/**
 * The C tools of the benchmark (bench/c/*.c), compiled at bench time with the system compiler
 * (`cc -O2`), and how to run them: the do-nothing socketmap responder (the Postfix client's true
 * ceiling) and the C load generator (sequential socketmap or LDAP clients, and the flood attacker).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, type Child } from './procs.js';

export interface NativeTools {
  nullSocketmap: string;
  loadgen: string;
  compiler: string;
}

export function compileTools(dir: string): NativeTools {
  const cc = process.env.CC ?? 'cc';
  let compiler: string;
  try {
    compiler = execFileSync(cc, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    throw new Error(`the benchmark compiles its C tools with "${cc}": not found (Debian: apt-get install gcc, or set CC)`);
  }
  const build = (name: string) => {
    const out = path.join(dir, name);
    execFileSync(cc, ['-O2', '-Wall', '-o', out, path.join(ROOT, 'bench', 'c', `${name}.c`)], { stdio: ['ignore', 'ignore', 'pipe'] });
    return out;
  };
  return { nullSocketmap: build('null-socketmap'), loadgen: build('loadgen'), compiler };
}

/** Starts the C responder on 127.0.0.1:port; resolves once it printed "ready". */
export function startNullSocketmap(tools: NativeTools, port: number): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(tools.nullSocketmap, [String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`null-socketmap exited (${code}): ${out}`)));
    child.stdout!.once('data', () => {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      resolve({
        pid: child.pid!,
        process: child,
        output: () => out,
        stop: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}

export interface SeqResult {
  /** Requests still unanswered 30 s after the deadline (the client stopped waiting). */
  unanswered: number;
  requests: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  p999: number;
  replies: Record<string, number>;
}

export interface FloodResult {
  sent: number;
  answered: number;
  seconds: number;
  rate: number;
  closedByServer: number;
  replies: Record<string, number>;
}

function runJson<T>(file: string, args: string[], timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${path.basename(file)} ${args.join(' ')}: ${err.message} ${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as T);
      } catch {
        reject(new Error(`${path.basename(file)}: unexpected output ${stdout.slice(0, 300)}`));
      }
    });
  });
}

/** Writes keys to a file the C tools read. */
export async function keyFile(dir: string, name: string, keys: readonly string[]): Promise<string> {
  const file = path.join(dir, `${name}.keys`);
  await writeFile(file, `${keys.join('\n')}\n`);
  return file;
}

/**
 * `connections` sequential socketmap clients; each key asked once; stops at `seconds`.
 * `source` binds the client side to another loopback address (another "host").
 */
export function socketmapSeq(tools: NativeTools, port: number, connections: number, seconds: number, keys: string, source?: string): Promise<SeqResult> {
  return runJson(tools.loadgen, ['socketmap', String(port), 'recipients', String(connections), String(seconds), keys, ...(source ? [source] : [])], (seconds + 90) * 1000);
}

/** `connections` sequential LDAP clients doing the openldap preset's search, anonymously. */
export function ldapSeq(tools: NativeTools, port: number, baseDN: string, connections: number, seconds: number, keys: string): Promise<SeqResult> {
  return runJson(tools.loadgen, ['ldap', String(port), baseDN, String(connections), String(seconds), keys], (seconds + 90) * 1000);
}

/** The attacker: `connections` connections pipelining random unknown addresses for `seconds`. */
export function flood(tools: NativeTools, port: number, connections: number, seconds: number, seed: number): Promise<FloodResult> {
  return runJson(tools.loadgen, ['flood', String(port), 'recipients', String(connections), String(seconds), String(seed)], (seconds + 30) * 1000);
}
