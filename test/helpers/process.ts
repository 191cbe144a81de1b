import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line matching. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** SIGKILL if still running (cleanup). */
  kill(): Promise<void>;
  /** Standard error so far. */
  readonly stderr: string;
}

/** Starts the real CLI (`rcptgate serve`) as a child process running the TypeScript sources. */
export function startServe(args: string[], env: NodeJS.ProcessEnv = {}): ServeProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        logs.push(obj);
        for (const w of [...waiters]) if (w.pred(obj)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(obj);
        }
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    logs,
    exited,
    get stderr() {
      return stderr;
    },
    waitForLog(pred, timeoutMs = 15_000) {
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
        void exited.then((code) => reject(new Error(`rcptgate exited (${code}) before the log line; stderr: ${stderr}`)));
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** The bound address of a listener, from its "listening" log line. */
export async function listenerPort(p: ServeProcess, frontend: string): Promise<number> {
  const line = await p.waitForLog((l) => l.msg === 'listening' && l.frontend === frontend);
  return Number(String(line.address).split(':').pop());
}

/** The directory an HTTP-only serve asks: a slapd's tree and service account, at `url` (slapd's own, or a proxy in front). */
export interface HttpServeDirectory {
  url: string;
  baseDN: string;
  serviceDN: string;
  servicePassword: string;
}

/**
 * The real CLI serving only the HTTP API (on a free port) for example.com from `directory`, its
 * config in a temp dir named after `prefix`; `stop()` kills it and removes the dir.
 */
export async function startHttpServe(directory: HttpServeDirectory, prefix: string, env: NodeJS.ProcessEnv = {}): Promise<{ serve: ServeProcess; stop(): Promise<void> }> {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), `rcptgate-${prefix}-`));
  const config = join(dir, 'rcptgate.yaml');
  await writeFile(config, JSON.stringify({
    listen: { http: '127.0.0.1:0', socketmap: null, policy: null, milter: null, metrics: null },
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [directory.url], baseDN: directory.baseDN, bindDN: directory.serviceDN } },
    log: { level: 'info' },
  }));
  const serve = startServe(['--config', config], { RCPTGATE_LDAP_BIND_PASSWORD: directory.servicePassword, ...env });
  return {
    serve,
    async stop() {
      await serve.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
