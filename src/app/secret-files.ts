import { createHash } from 'node:crypto';
import { readSecret } from '../config/load.js';
import { AUTH_HOLD_FIRST_MS, AUTH_HOLD_MAX_MS } from '../directory/auth-hold.js';
import { readRegularFileSync } from '../config/regular-file.js';
import type { Config } from '../config/schema.js';
import type { Engine } from './engines.js';

/**
 * The LDAP bind password and CA files are read when a directory is built; a rotation rewrites
 * them under the running service (a Kubernetes Secret updated by the kubelet, a secrets
 * manager's agent) and nobody sends SIGHUP. Looked at this often, a change rebuilds the
 * directory with what they now hold (reload.ts, secrets only).
 */
export const SECRET_FILES_CHECK_MS = 10_000;

/** A digest of a bind password and a CA bundle, for telling a rotation; null when none comes from a file. */
export function secretFilesDigest(config: Readonly<Config>, bindPassword: string | null, ca: Buffer | null): string | null {
  const ldap = config.directory.ldap;
  if (config.directory.kind !== 'ldap' || (ldap.bindPasswordFile === null && ldap.tls.caFile === null)) return null;
  return createHash('sha256')
    .update(JSON.stringify([ldap.bindPasswordFile ? bindPassword : null, ldap.tls.caFile ? (ca?.toString('base64') ?? null) : null]))
    .digest('hex');
}

/** The digest of what the files named by `config` hold now; null when none is named or one cannot be read right now (mid-rotation). */
export function currentSecretFilesDigest(config: Readonly<Config>): string | null {
  const ldap = config.directory.ldap;
  try {
    const password = ldap.bindPasswordFile ? readSecret(ldap.bindPasswordFile, undefined, 'bind password') : null;
    const ca = ldap.tls.caFile ? readRegularFileSync(ldap.tls.caFile) : null;
    return secretFilesDigest(config, password, ca);
  } catch {
    return null;
  }
}

/** Whether the running directory holds binds to some server because it refused the bind account (auth-hold.ts). */
export function bindRefused(engine: Pick<Engine, 'config' | 'directory'>): boolean {
  const urls = engine.directory.binding?.().urls;
  return urls !== undefined && urls.length < new Set(engine.config.directory.ldap.urls).size;
}

export interface SecretWatch {
  /** What the files hold now (currentSecretFilesDigest). */
  digestNow: () => string | null;
  /** What the running directory was built with. */
  installed: () => string | null;
  /** The running directory's bind account is refused now (bindRefused). */
  refusedNow: () => boolean;
  /** A reload that binds with what the files hold; false when refused. */
  refresh: () => Promise<boolean>;
  now?: () => number;
}

/**
 * Every SECRET_FILES_CHECK_MS, when the files hold something else than the running directory
 * was built with, calls `refresh`. A refused try is a refused bind, counted by an account
 * lockout policy (AD's threshold, ppolicy's pwdMaxFailure), and each try builds a new directory
 * without the running one's pause (auth-hold.ts): a file rewritten ahead of the directory, tried
 * every 10 s, locked the account within half a minute. The same content is tried again after
 * the same doubling pause; at once when the files change again, or when the running directory's
 * own password starts being refused (the directory took the new one). clearInterval stops it.
 */
export function watchSecretFiles(w: SecretWatch): NodeJS.Timeout {
  const now = w.now ?? (() => performance.now());
  let failed: { digest: string; until: number; refused: boolean } | null = null;
  let pause = 0;
  let running = false;
  return setInterval(() => {
    if (running) return;
    const digest = w.digestNow();
    if (digest === null || digest === w.installed()) return;
    const refused = w.refusedNow();
    if (failed !== null && failed.digest === digest && now() < failed.until && (failed.refused || !refused)) return;
    running = true;
    void w
      .refresh()
      .then((ok) => {
        if (ok) [failed, pause] = [null, 0];
        else {
          pause = pause === 0 ? AUTH_HOLD_FIRST_MS : Math.min(pause * 2, AUTH_HOLD_MAX_MS);
          failed = { digest, until: now() + pause, refused: w.refusedNow() };
        }
      })
      .finally(() => (running = false));
  }, SECRET_FILES_CHECK_MS).unref();
}
