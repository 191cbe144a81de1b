import type { Config } from '../config/schema.js';
import { readSecret } from '../config/load.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { canaryKeys } from '../recipient/address.js';
import { EXAMPLE_LDIF, LdifDirectory } from './ldif.js';
import { LdapDirectory } from './ldap.js';
import { BreakerDirectory } from './breaker.js';
import type { Directory } from './types.js';

export interface DirectoryContext {
  logger: Logger;
  metrics: Metrics;
  env?: NodeJS.ProcessEnv;
}

/** Builds the configured directory. Throws RcptgateError for unreadable files or secrets. */
export function createDirectory(config: Readonly<Config>, ctx: DirectoryContext): Directory {
  if (config.directory.kind === 'ldif') {
    return LdifDirectory.fromFile(config.directory.ldif.path ?? EXAMPLE_LDIF);
  }
  const env = ctx.env ?? process.env;
  const password = readSecret(config.directory.ldap.bindPasswordFile, env.RCPTGATE_LDAP_BIND_PASSWORD, 'bind password');
  const ldap = new LdapDirectory({ config: config.directory.ldap, bindPassword: password, metrics: ctx.metrics, logger: ctx.logger, canaries: canaryKeys(config.directory.canaries) });
  // After repeated failures, lookups fail at once (tempfail) instead of each waiting out the
  // timeout against a dead or frozen server; one trial request at a time probes for recovery.
  return new BreakerDirectory(ldap, {
    onStateChange: (state, reason) =>
      ctx.logger[state === 'open' ? 'warn' : 'info']({ component: 'ldap', breaker: state, reason }, `directory circuit ${state}`),
  });
}

export function isExampleDirectory(config: Readonly<Config>): boolean {
  return config.directory.kind === 'ldif' && config.directory.ldif.path === null;
}
