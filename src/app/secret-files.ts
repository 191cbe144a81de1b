import { createHash } from 'node:crypto';
import { readSecret } from '../config/load.js';
import { readRegularFileSync } from '../config/regular-file.js';
import type { Config } from '../config/schema.js';

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

/** Asks `changed` every SECRET_FILES_CHECK_MS and calls `refresh` when it says so; clearInterval stops it. */
export function watchSecretFiles(changed: () => boolean, refresh: () => unknown): NodeJS.Timeout {
  return setInterval(() => void (changed() && refresh()), SECRET_FILES_CHECK_MS).unref();
}
