import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, type ServeProcess } from './process.js';

/** The built CLI, as the package's bin and the container image run it (`npm run build` first). */
export const DIST_MAIN = path.join(REPO_ROOT, 'dist/main.js');

/**
 * `node dist/main.js serve ARGS`, with the same view of it as startServe (JSON log lines, exit);
 * `fdLimit`: under that open-file limit (`ulimit -n`, as systemd's LimitNOFILE= sets it);
 * `prefix`: a command that runs it (setpriv with fewer capabilities, say).
 */
export function startDistServe(args: string[], env: NodeJS.ProcessEnv = {}, options: { fdLimit?: number; prefix?: string[] } = {}): ServeProcess {
  if (!existsSync(DIST_MAIN)) throw new Error(`${DIST_MAIN} is missing: run npm run build first`);
  let argv = [...(options.prefix ?? []), process.execPath, DIST_MAIN, 'serve', ...args];
  if (options.fdLimit !== undefined) argv = ['/bin/sh', '-c', `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, ...argv];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    child,
    logs,
    exited,
    get stderr() {
      return stderr;
    },
    async waitForLog(pred, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = logs.find(pred);
        if (found) return found;
        if (gone) throw new Error(`rcptgate exited (${await exited}) before the log line; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`);
        if (Date.now() > deadline) throw new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Signals `pid` catches, from /proc (bit n-1 for signal n); 0n once it is gone. */
export function caughtSignals(pid: number): bigint {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('SigCgt:'));
    return line ? BigInt(`0x${line.slice(7).trim()}`) : 0n;
  } catch {
    return 0n;
  }
}
