import { statSync } from 'node:fs';
import { readRegularFileSync, secretFileProblem } from '../config/regular-file.js';
import { trimSecret } from '../config/resolve.js';
import type { Logger } from '../log.js';

/** A bearer token as the HTTP API checks it: fixed, none (null), or read again as its file changes. */
export type Token = string | null | (() => string | null);

export function tokenGetter(token: Token): () => string | null {
  return typeof token === 'function' ? token : () => token;
}

/** How often a token file is looked at, at most (only while requests ask for the token). */
export const TOKEN_FILE_CHECK_MS = 1_000;

/** Larger than any token: a file this big is not one. */
const MAX_TOKEN_FILE_BYTES = 4_096;

/** What changes when a file is replaced or rewritten (Kubernetes swaps a symlink: a new inode). */
function identity(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

/**
 * The token of `path` (admin.tokenFile, http.lookupTokenFile), read again once the file changes:
 * a rotated Secret takes effect and a revoked token stops working without a restart. Read at
 * start only, clients given the new token got 403 and the old one kept working until a restart.
 * The file is looked at most once every TOKEN_FILE_CHECK_MS, synchronously, so the request that
 * notices the change is judged by the new token. A file that cannot be used (gone, empty, white
 * space: a rotation caught half way, or a mistake) keeps the previous token, with a warning:
 * never no token at all.
 */
export function tokenFile(path: string, initial: string, key: string, logger: Logger, now: () => number = () => performance.now()): () => string {
  let token = initial;
  let seen: string | null = null;
  let checkedAt = now();
  return () => {
    const t = now();
    if (t - checkedAt < TOKEN_FILE_CHECK_MS) return token;
    checkedAt = t;
    const id = identity(path);
    if (id === seen) return token;
    seen = id;
    try {
      const next = trimSecret(readRegularFileSync(path, 'utf8', MAX_TOKEN_FILE_BYTES));
      if (next === '' || /\s/.test(next)) throw new Error(next === '' ? 'the token is empty' : 'the token contains white space');
      if (next !== token) logger.info({ key, file: path }, 'token file changed: the new token is in use, the previous one is refused');
      token = next;
    } catch (err) {
      logger.warn({ key, problem: secretFileProblem(path, err) }, 'token file changed but cannot be used: the previous token stays in use');
    }
    return token;
  };
}
