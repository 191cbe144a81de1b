import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError, RcptgateError } from '../errors.js';
import { loadConfig } from './load.js';
import type { LoadReply } from './load-off-thread.js';

/** Runs loadConfig for load-off-thread.ts and posts its outcome back as plain data. */
const { file, env } = workerData as { file: string | null; env: NodeJS.ProcessEnv };
let reply: LoadReply;
try {
  const { config, file: used } = loadConfig(file, env);
  reply = { ok: true, config, file: used };
} catch (err) {
  if (err instanceof ConfigError) reply = { ok: false, issues: err.issues };
  else reply = { ok: false, message: err instanceof RcptgateError ? err.message : `cannot load the configuration: ${(err as Error)?.message ?? String(err)}` };
}
parentPort!.postMessage(reply);
