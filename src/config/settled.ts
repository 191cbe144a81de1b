import { statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a file just written must stay unchanged before a reload reads it; how many waits at most. */
const SETTLE_MS = 250;
const SETTLE_TRIES = 20;

/**
 * Waits while `path` was modified less than SETTLE_MS ago and goes on changing. A SIGHUP sent
 * while a writer was still writing (cp or scp over the file, a watcher reacting to its first
 * write) read the part written so far: a list of domains cut after a complete line is a valid
 * config (every domain past the cut became not ours), an LDIF file or an allow list cut short
 * made every user past the cut unknown. A file written earlier is read at once. The wait is a
 * timer, not a blocking sleep: the front ends answer meanwhile.
 */
export async function settled(path: string | null): Promise<void> {
  const mtime = (): number | null => {
    try {
      return statSync(path!).mtimeMs;
    } catch {
      return null; // the read that follows says why
    }
  };
  let last = path === null ? null : mtime();
  for (let i = 0; last !== null && Date.now() - last < SETTLE_MS; i++) {
    if (i === SETTLE_TRIES) throw new Error(`${path} was still changing after ${(SETTLE_MS * SETTLE_TRIES) / 1000} s: not read while being written`);
    await sleep(SETTLE_MS);
    const now = mtime();
    // Unchanged for SETTLE_MS (a modification time ahead of the clock included).
    if (now === last) return;
    last = now;
  }
}

/** `settled` for each file a config reads besides itself: the LDIF directory and the override lists. */
export async function dataFilesSettled(config: {
  directory: { kind: string; ldif: { path: string | null } };
  overrides: { allowFile: string | null; denyFile: string | null };
}): Promise<void> {
  const paths = [config.overrides.allowFile, config.overrides.denyFile];
  if (config.directory.kind === 'ldif') paths.push(config.directory.ldif.path);
  await Promise.all(paths.map((p) => settled(p)));
}
