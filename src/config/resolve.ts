import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { readAddressList, type Overrides } from '../recipient/overrides.js';
import { nonRegularKind, readRegularFileSync, secretFileProblem } from './regular-file.js';
import type { Config } from './schema.js';

/** What a validated config still needs from outside before anything runs: secrets and files. */
export interface ResolvedConfig {
  config: Readonly<Config>;
  /** Simple bind password; null = anonymous bind (then `bindDN` is null too). */
  bindPassword: string | null;
  /** Bearer token of the admin endpoints; null = admin endpoints disabled. */
  adminToken: string | null;
  /** Bearer token of the lookup API (`http.lookupTokenFile`); null = none. */
  lookupToken: string | null;
  /** PEM bundle of `directory.ldap.tls.caFile`, or null. */
  ca: Buffer | null;
  overrides: Overrides;
  /** Problems that do not stop the start (a data directory on a read-only filesystem). */
  warnings?: ConfigIssue[];
}

/**
 * What is never part of a secret, in a file or a variable: the line breaks at its end (an
 * editor's newline, CRLF, `echo >>`, a Kubernetes Secret made from a file and passed as an
 * environment variable) and a UTF-8 byte order mark at its start (Windows Notepad). Sent to the
 * server, each made the right password a refused bind, and every uncached recipient deferred.
 */
export function trimSecret(text: string): string {
  return text.replace(/^\uFEFF/, '').replace(/[\r\n]+$/, '');
}

/** A secret from the environment, trimmed as a file's is; null when unset. */
export function envSecret(value: string | undefined): string | null {
  return value === undefined ? null : trimSecret(value);
}

function readText(path: string, key: string, what: string, issues: ConfigIssue[]): string | null {
  try {
    return trimSecret(readRegularFileSync(path, 'utf8'));
  } catch (err) {
    issues.push({ path: key, message: `cannot read the ${what} file ${secretFileProblem(path, err)}` });
    return null;
  }
}

function addressList(file: string | null, key: string, issues: ConfigIssue[]): Set<string> {
  if (file === null) return new Set();
  try {
    return readAddressList(file);
  } catch (err) {
    issues.push({ path: key, message: (err as Error).message });
    return new Set();
  }
}

/**
 * Reads every secret and file the config names, once, and cross-checks what only the files and
 * the environment can tell (a bindDN without a password). Used by `serve`, `check`, `sync` and
 * `config check` alike, so `config check` rejects exactly what `serve` would. Throws ConfigError
 * listing every problem.
 */
export function resolveConfig(config: Readonly<Config>, env: NodeJS.ProcessEnv = process.env, configFile: string | null = null): ResolvedConfig {
  const issues: ConfigIssue[] = [];
  const ldap = config.directory.ldap;
  const usesLdap = config.directory.kind === 'ldap';
  let bindPassword: string | null = null;
  let ca: Buffer | null = null;
  if (usesLdap) {
    bindPassword = ldap.bindPasswordFile ? readText(ldap.bindPasswordFile, 'directory.ldap.bindPasswordFile', 'bind password', issues) : envSecret(env.RCPTGATE_LDAP_BIND_PASSWORD);
    if (ldap.bindDN !== null && bindPassword === null && ldap.bindPasswordFile === null) {
      issues.push({ path: 'directory.ldap.bindPasswordFile', message: 'bindDN is set but no bind password was given (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)' });
    }
    if (ldap.tls.caFile !== null) {
      try {
        ca = readRegularFileSync(ldap.tls.caFile);
      } catch (err) {
        issues.push({ path: 'directory.ldap.tls.caFile', message: `cannot read ${ldap.tls.caFile}: ${(err as Error).message}` });
      }
      const problem = ca && caProblem(ca);
      if (problem) issues.push({ path: 'directory.ldap.tls.caFile', message: `${ldap.tls.caFile}: ${problem}` });
    }
  }
  const adminToken = config.admin.tokenFile ? readText(config.admin.tokenFile, 'admin.tokenFile', 'admin token', issues) : envSecret(env.RCPTGATE_ADMIN_TOKEN);
  const lookupToken = config.http.lookupTokenFile ? readText(config.http.lookupTokenFile, 'http.lookupTokenFile', 'lookup token', issues) : null;
  const written: Array<[string, string | null]> = [
    ['sync.snapshotPath', config.sync.enabled ? config.sync.snapshotPath : null],
    ['cache.persistPath', config.cache.persistPath],
  ];
  const warnings: ConfigIssue[] = [];
  for (const [key, file] of written) {
    const problem = file === null ? null : writableDirProblem(file, key, warnings) ?? overwriteProblem(file, key, config, configFile);
    if (problem) issues.push({ path: key, message: problem });
  }
  const overrides: Overrides = {
    allow: addressList(config.overrides.allowFile, 'overrides.allowFile', issues),
    deny: addressList(config.overrides.denyFile, 'overrides.denyFile', issues),
  };
  secretProblems(issues, { bindPassword, adminToken, lookupToken }, config);
  if (issues.length > 0) throw new ConfigError(issues);
  return { config, bindPassword, adminToken, lookupToken, ca, overrides, warnings };
}

/**
 * Secrets that read fine but cannot work: an empty bind password turns a bind DN into an
 * unauthenticated bind (refused, or anonymous rights), and a Bearer header carries neither an
 * empty token nor one with whitespace, so such a token would lock everyone out.
 */
function secretProblems(issues: ConfigIssue[], s: { bindPassword: string | null; adminToken: string | null; lookupToken: string | null }, config: Readonly<Config>): void {
  const ldap = config.directory.ldap;
  if (config.directory.kind === 'ldap' && ldap.bindDN !== null && s.bindPassword === '') {
    const from = ldap.bindPasswordFile ? `the file ${ldap.bindPasswordFile}` : 'RCPTGATE_LDAP_BIND_PASSWORD';
    issues.push({ path: 'directory.ldap.bindPasswordFile', message: `the bind password (${from}) is empty` });
  }
  const tokens: Array<[string, string | null, string | null]> = [
    ['admin.tokenFile', config.admin.tokenFile, s.adminToken],
    ['http.lookupTokenFile', config.http.lookupTokenFile, s.lookupToken],
  ];
  for (const [key, file, token] of tokens) {
    if (token === null) continue;
    const from = file ? `the file ${file}` : 'RCPTGATE_ADMIN_TOKEN';
    if (token === '') issues.push({ path: key, message: `the token (${from}) is empty` });
    else if (/\s/.test(token)) issues.push({ path: key, message: `the token (${from}) contains whitespace, which an Authorization: Bearer header cannot carry` });
  }
}

/** Why a CA file cannot verify a server (every TLS connection would fail: all lookups defer), or null. */
function caProblem(ca: Buffer): string | null {
  const blocks = ca.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'no PEM certificate ("-----BEGIN CERTIFICATE-----") in the file: a DER file, a key or a CSR cannot verify the server';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${i + 1} of the file does not parse: ${(err as Error).message}`;
    }
  }
  return null;
}

/** Why a file cannot be written where it is (every save would fail, logged, and a restart start cold), or null. */
function writableDirProblem(link: string, key: string, warnings: ConfigIssue[]): string | null {
  // "/var/lib/rcptgate/" names a directory: every write would fail at its rename.
  if (link.endsWith('/')) return `${link} ends in "/", naming a directory: give the name of the file to write in it`;
  // A symbolic link is followed by the writer (snapshot/atomic-file.ts): check where it points.
  const file = realpathOr(link);
  const dir = dirname(resolve(file));
  // Read back at start and replaced by rename: a FIFO would hang the start, a device (/dev/null) be replaced.
  let there;
  try {
    there = statSync(file, { throwIfNoEntry: false });
  } catch (err) {
    // A link loop, a name too long: the service would crash at start (exit 70) on it.
    return `cannot use ${file}: ${(err as Error).message}`;
  }
  if (there && !there.isFile()) return `${file} is ${nonRegularKind(there)}, not a regular file: rcptgate reads it back at start and replaces it with a file of its own`;
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
    accessSync(dir, constants.W_OK);
    return null;
  } catch (err) {
    // A disk the kernel remounted read-only after I/O errors is a bad day, not a setting: refused,
    // a restart served nothing, though the file there still reads and the directory may answer.
    if ((err as NodeJS.ErrnoException).code !== 'EROFS') return `cannot write into ${dir}: ${(err as Error).message}`;
    // No file there yet: nothing to read and nothing ever saved, a path off the writable volume
    // (a container's read-only root, systemd's ProtectSystem), not a disk gone read-only.
    if (!there) return `cannot write into ${dir}: it is on a read-only filesystem and ${file} does not exist, so there is nothing to read and nothing could be saved: put the file on a writable volume`;
    warnings.push({ path: key, message: `${dir} is on a read-only filesystem: the file there is read, but not saved until it can be written again` });
    return null;
  }
}

/**
 * Why a file rcptgate writes (snapshot, answer file) would replace one it reads, or null. Spelled
 * another way, or through a link, `cache.persistPath: /etc/rcptgate/rcptgate.yaml` replaced the
 * config file with the answer file at the first save: the service ran on, and the next restart
 * or reload found no config. A secret or an override list went the same way.
 */
function overwriteProblem(written: string, key: string, config: Readonly<Config>, configFile: string | null): string | null {
  const ldap = config.directory.ldap;
  const read: Array<[string, string | null]> = [
    ['the config file', configFile],
    ['directory.ldif.path', config.directory.kind === 'ldif' ? config.directory.ldif.path : null],
    ['directory.ldap.bindPasswordFile', ldap.bindPasswordFile],
    ['directory.ldap.tls.caFile', ldap.tls.caFile],
    ['admin.tokenFile', config.admin.tokenFile],
    ['http.lookupTokenFile', config.http.lookupTokenFile],
    ['overrides.allowFile', config.overrides.allowFile],
    ['overrides.denyFile', config.overrides.denyFile],
    // Two writers of different formats on one file: each save destroys the other's.
    ['sync.snapshotPath', key !== 'sync.snapshotPath' && config.sync.enabled ? config.sync.snapshotPath : null],
  ];
  const hit = read.find(([, file]) => file !== null && sameFile(file, written));
  if (!hit) return null;
  return `${written} is also ${hit[0]}: rcptgate reads it, and each save would replace it with a file of its own; give ${key} a file of its own`;
}

/** One file, however it is spelled: the same path once links are followed, or the same inode. */
function sameFile(a: string, b: string): boolean {
  if (resolve(realpathOr(a)) === resolve(realpathOr(b))) return true;
  const sa = statOrNothing(a);
  const sb = statOrNothing(b);
  return sa !== undefined && sb !== undefined && sa.dev === sb.dev && sa.ino === sb.ino;
}

/** Nothing for a path that names no file, or none that can be reached (a link loop). */
function statOrNothing(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    try {
      return resolve(dirname(path), readlinkSync(path));
    } catch {
      return path;
    }
  }
}
