import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ConfigError, type ConfigIssue, ErrorCodes, RcptgateError } from '../errors.js';
import { deepFreeze, loadConfig, type LoadedConfig } from './load.js';
import type { Config } from './schema.js';

/** What the worker posts back: the config, or why it cannot be had. */
export type LoadReply = { ok: true; config: Config; file: string | null } | { ok: false; issues: ConfigIssue[] } | { ok: false; message: string };

/** The worker's module beside this one: .ts when run from the sources (tsx), .js once built. */
const WORKER = new URL(`./load-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/**
 * A file this large goes to a worker: parsing it takes about 0.1 s or more, and starting a worker
 * costs about that much (smaller files are read where they always were).
 */
export const OFF_THREAD_BYTES = 64 * 1024;

/** loadConfig for a SIGHUP reload: on a worker thread when the file is large (loadConfigOffThread). */
export function loadConfigForReload(file: string | null, env: NodeJS.ProcessEnv): Promise<LoadedConfig> {
  let size = 0;
  try {
    size = file === null ? 0 : statSync(file).size;
  } catch {
    // loadConfig says why it cannot be read.
  }
  if (size < OFF_THREAD_BYTES) return new Promise((resolve) => resolve(loadConfig(file, env)));
  return loadConfigOffThread(file, env);
}

/**
 * loadConfig on a worker thread, for a SIGHUP reload. Parsing YAML is slow (30,000 domains with
 * rules take seconds): on the main thread it stopped every front end for that long, and HTTP
 * connections kept alive past their timeout meanwhile were reset. The start and the one-shot
 * commands still load on the main thread: nothing is being answered yet.
 */
export function loadConfigOffThread(file: string | null, env: NodeJS.ProcessEnv): Promise<LoadedConfig> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: { file, env: { ...env } } });
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
    };
    worker.once('message', (reply: LoadReply) =>
      settle(() => {
        if (reply.ok) resolve({ config: deepFreeze(reply.config), file: reply.file });
        else if ('issues' in reply) reject(new ConfigError(reply.issues));
        else reject(new RcptgateError(ErrorCodes.CONFIG_READ, reply.message));
      }),
    );
    // A worker that dies (out of memory on a huge file) fails the reload; the service goes on.
    worker.once('error', (err) => settle(() => reject(new RcptgateError(ErrorCodes.CONFIG_READ, `cannot load the configuration: ${err.message}`))));
    worker.once('exit', (code) => settle(() => reject(new RcptgateError(ErrorCodes.CONFIG_READ, `the configuration loader stopped (exit ${code}) without an answer`))));
  });
}
