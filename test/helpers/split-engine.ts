/**
 * One engine that answers all three ways an MTA must handle, for front-end integration tests:
 * example.com / example.org from the real validator over examples/directory.ldif (valid and
 * unknown), example.net from a second real validator whose LDAP directory is a real slapd that
 * has been stopped (tempfail). One MTA then sees 250, 550 and 451 from one listener.
 */
import { validateConfig } from '../../src/config/load.js';
import { LdapDirectory } from '../../src/directory/ldap.js';
import { EXAMPLE_LDIF, LdifDirectory } from '../../src/directory/ldif.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { RecipientValidator } from '../../src/recipient/types.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { startSlapd, type Slapd } from './slapd.js';

export interface SplitEngine {
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  close(): Promise<void>;
}

/** Routes example.net to the engine with the dead directory, everything else to the LDIF one. */
export function routed(ldif: RecipientValidator, down: RecipientValidator): RecipientValidator {
  const pick = (address: string) => (/@example\.net$/i.test(address) ? down : ldif);
  return {
    lookup: (address, options) => pick(address).lookup(address, options),
    isServedDomain: (d) => ldif.isServedDomain(d) || down.isServedDomain(d),
    servedDomain: (d) => ldif.servedDomain(d) ?? down.servedDomain(d),
    flush: (a) => ldif.flush(a) + down.flush(a),
  };
}

export async function startSplitEngine(): Promise<SplitEngine> {
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = silentLogger();
  let slapd: Slapd | undefined = await startSlapd();
  try {
    await slapd.stop(); // a real directory that is down: every lookup must defer
    const ldifDirectory = LdifDirectory.fromFile(EXAMPLE_LDIF);
    const ldapConfig = validateConfig({
      domains: ['example.net'],
      directory: { kind: 'ldap', ldap: { urls: [slapd.url], baseDN: slapd.baseDN, bindDN: slapd.serviceDN, timeout: '2s' } },
    });
    const ldapDirectory = new LdapDirectory({ config: ldapConfig.directory.ldap, bindPassword: slapd.servicePassword, metrics, logger });
    const validator = routed(
      new RecipientValidatorImpl({ config: validateConfig({}), directory: ldifDirectory, metrics, logger }),
      new RecipientValidatorImpl({ config: ldapConfig, directory: ldapDirectory, metrics, logger }),
    );
    const s = slapd;
    slapd = undefined;
    return {
      validator,
      metrics,
      logger,
      async close() {
        await ldifDirectory.close();
        await ldapDirectory.close();
        await s.close();
      },
    };
  } finally {
    await slapd?.close();
  }
}
