import type { ConfigIssue } from '../errors.js';
import { ms } from './duration.js';
import { isLoopbackHost, isLoopbackRange } from './cidr.js';
import { ruleNotes } from './rule-notes.js';
import type { Config } from './schema.js';

/**
 * What a configuration exposes to the network, in words for operators: the start-up log and
 * `rcptgate config check` both use it (README "Security and exposure", SECURITY.md).
 */

type ListenerName = keyof Config['listen'];

function hostOf(hostPort: string): string {
  return hostPort.slice(0, hostPort.lastIndexOf(':'));
}

/** Listeners bound to a non-loopback address. */
export function exposedListeners(config: Config): ListenerName[] {
  return (Object.entries(config.listen) as Array<[ListenerName, string | null]>)
    .filter(([, hp]) => hp !== null && !isLoopbackHost(hostOf(hp)))
    .map(([name]) => name);
}

export interface ExposureIssue extends ConfigIssue {
  /** warning: strangers can harvest; note: something will not work from other hosts. */
  level: 'warning' | 'note';
}

/** What `config check` and the start-up log point out (not errors: the operator may mean it). */
export function exposureWarnings(config: Config): ExposureIssue[] {
  const warnings: ExposureIssue[] = [];
  const exposed = exposedListeners(config);
  const wide = config.http.lookupAllowFrom.filter((r) => !isLoopbackRange(r));
  if (exposed.includes('http') && wide.length > 0) {
    warnings.push({
      level: 'warning',
      path: 'http.lookupAllowFrom',
      message:
        `the lookup API answers ${wide.join(', ')} without a token on an exposed listener (${config.listen.http}): ` +
        'anyone there can harvest valid addresses; prefer http.lookupTokenFile and keep this list to loopback',
    });
  }
  if (exposed.includes('http') && wide.length === 0 && config.http.lookupTokenFile === null) {
    // /metrics there admits the lookup API's clients only: a Prometheus elsewhere that scraped it
    // before that change gets 401 from the upgrade on, and no shipped alert fires for a silent target.
    const scrape = !exposed.includes('metrics');
    warnings.push({
      level: 'note',
      path: 'http.lookupTokenFile',
      message:
        `listen.http is exposed (${config.listen.http}) but the lookup API${scrape ? ' and /metrics answer' : ' answers'} loopback clients only: ` +
        `set http.lookupTokenFile to use ${scrape ? 'them' : 'it'} from other hosts${scrape ? ' (a bearer token), or put listen.metrics on an address Prometheus reaches' : ''}`,
    });
  }
  warnings.push(...directoryWarnings(config), ...milterTimeoutNotes(config), ...ruleNotes(config));
  return warnings;
}

/** Sendmail's default milter read timeout (T=R:10s). */
const SENDMAIL_MILTER_MS = 10_000;

/** Sendmail waits 10 s for a milter reply by default, then goes on without it (no F= flag: the mail passes). */
function milterTimeoutNotes(config: Config): ExposureIssue[] {
  if (config.listen.milter === null) return [];
  const { harvest } = config.policy;
  const slow: Array<[string, string]> = [['policy.harvest.maxDelay', harvest.maxDelay]];
  if (config.directory.kind === 'ldap') slow.push(['directory.ldap.timeout', config.directory.ldap.timeout]);
  // A tarpitted answer is held maxDelay from the recipient's arrival, alongside its lookup: the
  // reply comes at the later of the two, so each bounded alone bounds it.
  return slow
    .filter(([, d]) => ms(d) >= SENDMAIL_MILTER_MS)
    .map(([path, d]) => ({
      level: 'note' as const,
      path,
      message: `${d} reaches Sendmail's default milter timeout (10 s, T=R:10s): Sendmail would give up before rcptgate answers; keep it below, or raise the timeout in INPUT_MAIL_FILTER (Postfix waits 30 s)`,
    }));
}

/** LDAP settings that work but put the bind password on the wire in clear, or leave unknown answers unguarded. */
function directoryWarnings(config: Config): ExposureIssue[] {
  const ldap = config.directory.ldap;
  if (config.directory.kind !== 'ldap') return [];
  const out: ExposureIssue[] = [];
  const plain = ldap.urls.filter((u) => u.startsWith('ldap://') && !ldap.startTLS && !/^ldap:\/\/(localhost|127\.[\d.]+|\[::1\])(:|\/|$)/.test(u));
  if (ldap.bindDN !== null && plain.length > 0) {
    out.push({
      level: 'warning',
      path: 'directory.ldap.startTLS',
      message: `the bind password goes in clear to ${plain.join(', ')}: use ldaps:// or set directory.ldap.startTLS${ldap.tls.caFile ? ' (tls.caFile is set but no connection uses TLS)' : ''}`,
    });
  }
  if (config.directory.canaries.length === 0) {
    out.push({
      level: 'note',
      path: 'directory.canaries',
      message: 'no canary addresses: if the bind account loses its read rights, searches find nothing and every recipient is answered unknown; list one or two addresses that always exist',
    });
  }
  return out;
}

/**
 * The start-up hint when every listener is on loopback (the default): how to open them.
 * null when something is exposed already.
 */
export function loopbackNotice(config: Config): string | null {
  const open = Object.values(config.listen).filter((v) => v !== null);
  if (open.length === 0 || exposedListeners(config).length > 0) return null;
  return (
    'listeners bind loopback only (the default): other hosts cannot connect; to serve them set listen.* in the config ' +
    '(e.g. listen: { socketmap: "0.0.0.0:9465" }) or RCPTGATE_LISTEN_SOCKETMAP=0.0.0.0:9465, and protect the lookup API with http.lookupTokenFile'
  );
}

/** Replaces the userinfo of every URL in `text` (ldap://user:pw@host → ldap://[redacted]@host). */
export function redactUrlCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1[redacted]@');
}
