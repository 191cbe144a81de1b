import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { loadOverrides, type Overrides } from '../recipient/overrides.js';
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
}

function readText(path: string, key: string, what: string, issues: ConfigIssue[]): string | null {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    issues.push({ path: key, message: `cannot read the ${what} file ${path}: ${(err as Error).message}` });
    return null;
  }
}

/**
 * Reads every secret and file the config names, once, and cross-checks what only the files and
 * the environment can tell (a bindDN without a password). Used by `serve`, `check`, `sync` and
 * `config check` alike, so `config check` rejects exactly what `serve` would. Throws ConfigError
 * listing every problem.
 */
export function resolveConfig(config: Readonly<Config>, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const issues: ConfigIssue[] = [];
  const ldap = config.directory.ldap;
  const usesLdap = config.directory.kind === 'ldap';
  let bindPassword: string | null = null;
  let ca: Buffer | null = null;
  if (usesLdap) {
    bindPassword = ldap.bindPasswordFile ? readText(ldap.bindPasswordFile, 'directory.ldap.bindPasswordFile', 'bind password', issues) : (env.RCPTGATE_LDAP_BIND_PASSWORD ?? null);
    if (ldap.bindDN !== null && bindPassword === null && ldap.bindPasswordFile === null) {
      issues.push({ path: 'directory.ldap.bindPasswordFile', message: 'bindDN is set but no bind password was given (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)' });
    }
    if (ldap.tls.caFile !== null) {
      try {
        ca = readFileSync(ldap.tls.caFile);
      } catch (err) {
        issues.push({ path: 'directory.ldap.tls.caFile', message: `cannot read ${ldap.tls.caFile}: ${(err as Error).message}` });
      }
    }
  }
  const adminToken = config.admin.tokenFile ? readText(config.admin.tokenFile, 'admin.tokenFile', 'admin token', issues) : (env.RCPTGATE_ADMIN_TOKEN ?? null);
  const lookupToken = config.http.lookupTokenFile ? readText(config.http.lookupTokenFile, 'http.lookupTokenFile', 'lookup token', issues) : null;
  let overrides: Overrides = { allow: new Set(), deny: new Set() };
  try {
    overrides = loadOverrides(config.overrides.allowFile, config.overrides.denyFile);
  } catch (err) {
    issues.push({ path: 'overrides', message: (err as Error).message });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { config, bindPassword, adminToken, lookupToken, ca, overrides };
}
