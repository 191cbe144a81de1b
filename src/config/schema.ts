import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseCidr } from './cidr.js';

/**
 * The one configuration schema. Its defaults are the documented defaults (README
 * "Configuration"); `rcptgate config check` prints the result of parsing through it.
 */

const duration = z
  .string({ error: 'expected a duration with its unit, like "500ms", "3s", "5m", "1h", "1d"' })
  .refine((s) => parseDuration(s) !== null, { message: 'expected a duration like "500ms", "3s", "5m", "1h", "1d"', abort: true });

/** Node.js timers wait at most 2^31-1 ms (about 24.8 days): a longer one fires at once, in a loop. */
const MAX_TIMER = '24d';

/**
 * A duration that arms a timer. Bounded by what a timer can wait; `positive` also refuses 0,
 * for the keys where 0 would mean "every lookup times out" or "run again at once, forever".
 */
function timerDuration(positive: boolean) {
  const max = parseDuration(MAX_TIMER)!;
  const checked = duration.refine((s) => (parseDuration(s) ?? 0) <= max, { message: `at most ${MAX_TIMER}: a longer timer would fire at once` });
  return positive ? checked.refine((s) => (parseDuration(s) ?? 1) > 0, { message: 'must be more than 0 (0 does not mean "never" or "no limit" here)', abort: true }) : checked;
}

/** An interval of work that runs again as soon as it is due: at least 1s, or it runs back to back. */
function workInterval(work: string) {
  return timerDuration(true).refine((s) => (parseDuration(s) ?? 1000) >= 1000, { message: `must be at least 1s (more than 0, and long enough that ${work} does not run back to back)` });
}

const hostPort = z
  .string({ error: 'expected "host:port", such as "127.0.0.1:8080"' })
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d{1,5})$/, { message: 'expected "host:port"', abort: true })
  .refine((s) => {
    // Only judge the port of a well-formed value; the regex above reports the rest.
    const m = /:(\d{1,5})$/.exec(s);
    return m === null || Number(m[1]) <= 65535;
  }, { message: 'port must be 0..65535' })
  // Postfix, Dovecot and nginx write "all addresses" as "*": here it is a host name that never resolves (the start fails).
  .refine((s) => !/^\*:/.test(s), { message: '"*" is not a host: use "0.0.0.0" for every IPv4 address, or "[::]" for every address', abort: true })
  .refine((s) => {
    // Digits and dots, or brackets, promise an IP address: "999.1.1.1" would only fail at bind time, as an unknown host.
    const host = s.slice(0, s.lastIndexOf(':'));
    if (host.startsWith('[')) return isIP(host.slice(1, -1)) === 6;
    return !/^[\d.]+$/.test(host) || isIP(host) === 4;
  }, { message: 'not a valid IP address' });

const listenAddr = hostPort.nullable();

/** ldap[s]://host[:port][/]: a host name, IPv4 address or [IPv6] address, and digits for the port. */
const LDAP_URL = /^ldaps?:\/\/(\[[^\]\s/]+\]|[^\s/:@[\]]+)(:\d{1,5})?\/?$/;

function validLdapHostPort(url: string): boolean {
  const m = LDAP_URL.exec(url);
  if (!m) return true; // reported by the regex
  const host = m[1]!;
  const port = m[2] === undefined ? 389 : Number(m[2].slice(1));
  return port >= 1 && port <= 65535 && (!host.startsWith('[') || isIP(host.slice(1, -1)) === 6);
}

/** "10.0.0.0/8", "::1/128", or one address (a /32 or /128). */
const cidr = z.string().refine((s) => parseCidr(s) !== null, { message: 'expected an IP address or CIDR range like "10.0.0.0/8" or "::1/128"' });

const mode = z.enum(['enforce', 'shadow']);
const onDirectoryError = z.enum(['tempfail', 'accept', 'reject']);
const localPart = z
  .string()
  .min(1)
  .max(64)
  // Compared with the part before the @: a whole address here would never match anything.
  .refine((s) => !s.includes('@'), { message: 'a local part such as "postmaster", not an address: put whole addresses in overrides.allowFile' });

export const domainRuleSchema = z.strictObject({
  catchAll: z.boolean().optional(),
  mode: mode.optional(),
  onDirectoryError: onDirectoryError.optional(),
  alwaysValid: z.array(localPart).optional(),
});
export type DomainRule = z.infer<typeof domainRuleSchema>;

const domainName = z.string().min(1).max(253);

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      // Loopback by default: a recipient validator reachable by strangers is a harvest oracle.
      // The container image and the Helm chart bind 0.0.0.0 explicitly.
      http: listenAddr.default('127.0.0.1:8080'),
      socketmap: listenAddr.default('127.0.0.1:9465'),
      policy: listenAddr.default('127.0.0.1:9466'),
      milter: listenAddr.default('127.0.0.1:9467'),
      /** /metrics, /healthz and /readyz only, so monitoring never needs the lookup port. */
      metrics: listenAddr.default('127.0.0.1:9468'),
    })
    .prefault({}),
  /** Plain list, or map of domain → per-domain rules. */
  domains: z
    .union([z.array(domainName), z.record(domainName, domainRuleSchema.nullable())], { error: 'expected a list of domains, or a map of domain to its rules' })
    .default([]),
  catchAllDomains: z.array(domainName).default([]),
  recipientDelimiter: z.string().max(16).default('+'),
  directory: z
    .strictObject({
      kind: z.enum(['ldif', 'ldap']).default('ldif'),
      ldif: z.strictObject({ path: z.string().min(1).nullable().default(null) }).prefault({}),
      ldap: z
        .strictObject({
          urls: z
            .array(
              z
                .string()
                // Checked first and on its own: a password in a URL ends up in every log line that names the server.
                .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), {
                  message:
                    'credentials in the URL are refused: put the account in directory.ldap.bindDN and its password in directory.ldap.bindPasswordFile (or RCPTGATE_LDAP_BIND_PASSWORD)',
                  abort: true,
                })
                .regex(LDAP_URL, { message: 'expected ldap://host[:port] or ldaps://host[:port] (the search base goes in directory.ldap.baseDN)', abort: true })
                .refine(validLdapHostPort, { message: 'the port must be 1..65535 and a [bracketed] host an IPv6 address' }),
            )
            .default([]),
          startTLS: z.boolean().default(false),
          tls: z
            .strictObject({
              caFile: z.string().min(1).nullable().default(null),
              rejectUnauthorized: z.boolean().default(true),
            })
            .prefault({}),
          bindDN: z.string().min(1).nullable().default(null),
          bindPasswordFile: z.string().min(1).nullable().default(null),
          baseDN: z.string().default(''),
          scope: z.enum(['base', 'one', 'sub']).default('sub'),
          preset: z.enum(['openldap', 'activedirectory']).default('openldap'),
          /** null = the preset's filter. */
          filter: z.string().min(1).nullable().default(null),
          /** AD preset: also match userPrincipalName. */
          matchUserPrincipalName: z.boolean().default(false),
          timeout: timerDuration(true).default('3s'),
          poolSize: z.number().int().min(1).max(64).default(4),
          /** LDAP searches outstanding at once on one pooled connection (told apart by message ID). */
          maxInFlightPerConnection: z.number().int().min(1).max(1_000).default(8),
          /** Keys per batched search (one OR filter); 1 disables batching. */
          batchSize: z.number().int().min(1).max(100).default(16),
          /** Lookups accepted at once (searching or queued until `timeout`); more fail at once (tempfail). A memory bound, far above real load. */
          maxInFlight: z.number().int().min(1).max(1_000_000).default(10_000),
          /** Page size for full listings (snapshot sync). */
          pageSize: z.number().int().min(1).max(10_000).default(500),
          /** A pooled connection on any URL but the first tries the first again this long after it opened; 0: never. */
          failbackAfter: timerDuration(false)
            .refine((s) => (parseDuration(s) ?? 1) === 0 || (parseDuration(s) ?? 1000) >= 1000, { message: 'must be 0s (never) or at least 1s: each attempt opens a connection' })
            .default('1m'),
        })
        .prefault({}),
      /**
       * Addresses that must always be found. The readiness probe looks them up; while one is
       * missing (e.g. the bind account lost its read rights) every would-be `unknown` is `tempfail`.
       */
      canaries: z.array(z.string().min(1).max(320)).max(100).default([]),
    })
    .prefault({}),
  cache: z
    .strictObject({
      // The cache reserves every slot at start (about 80 bytes each before any answer): 10 million take ~0.8 GB.
      maxEntries: z.number().int().min(0).max(10_000_000, { message: 'at most 10000000: the cache reserves its slots at start (about 80 bytes each)' }).default(100_000),
      positiveTtl: duration.default('1h'),
      negativeTtl: duration.default('5m'),
      staleIfError: duration.default('24h'),
      /** File keeping the positive answers across restarts (saved periodically and at shutdown). */
      persistPath: z.string().min(1).nullable().default(null),
      persistInterval: workInterval('saving every cached answer to the file').default('5m'),
    })
    .prefault({}),
  sync: z
    .strictObject({
      enabled: z.boolean().default(false),
      interval: workInterval('listing the whole directory').default('15m'),
      /** Incremental refresh between full syncs (OpenLDAP modifyTimestamp, AD whenChanged). */
      incrementalInterval: workInterval('listing the changes of the directory').default('1m'),
      /** Measured from the last successful full sync; an older snapshot is not used: live lookups take over. */
      maxAge: duration.default('24h'),
      /** Ask the directory about an address the snapshot lacks (it may have been added since the last sync). */
      confirmMisses: z.boolean().default(true),
      /** A full sync that would drop more than this fraction of the snapshot's entries is refused. */
      maxShrink: z.number().min(0).max(1).default(0.1),
      snapshotPath: z.string().min(1).nullable().default(null),
      /** Incremental syncs also drop disabled, renamed and (Active Directory) deleted entries. */
      detectRemovals: z.boolean().default(true),
    })
    .prefault({}),
  onDirectoryError: onDirectoryError.default('tempfail'),
  mode: mode.default('enforce'),
  alwaysValid: z.array(localPart).default(['postmaster', 'abuse']),
  overrides: z
    .strictObject({
      allowFile: z.string().min(1).nullable().default(null),
      denyFile: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  policy: z
    .strictObject({
      harvest: z
        .strictObject({
          maxUnknown: z.number().int().min(0).default(20),
          window: duration.refine((s) => (parseDuration(s) ?? 1) > 0, { message: 'must be more than 0' }).default('10m'),
          /** tarpit: delay every answer for a flagged client; reject: 421 for every recipient. */
          action: z.enum(['tarpit', 'reject']).default('tarpit'),
          /** Tarpit delay added per unknown recipient past maxUnknown. */
          delayStep: timerDuration(false).default('1s'),
          /** Tarpit delay cap: below Sendmail's 10 s milter read timeout (docs/harvest-protection.md). */
          maxDelay: timerDuration(false).default('5s'),
          /** IPv6 clients count per network of this many leading bits: a host may send from any address of its /64. */
          ipv6Prefix: z.number().int().min(1).max(128).default(64),
          /** Tarpit: answers held back for one flagged client at once (each keeps an MTA process waiting); past them 421. */
          maxHeld: z.number().int().min(1).default(4),
        })
        .prefault({}),
    })
    .prefault({}),
  server: z
    .strictObject({
      /** Per socket listener (socketmap, policy, milter). */
      maxConnections: z.number().int().min(1).default(1000),
      /** Per socket listener and per client address (README "Limits per client address"). */
      maxConnectionsPerClient: z.number().int().min(1).default(300),
      /** Lookups of one client address waiting for the directory at once, per listener. */
      maxOutstandingPerClient: z.number().int().min(1).default(256),
      /** Lookups of all clients waiting for the directory at once, per listener; beyond it clients take turns. */
      maxOutstanding: z.number().int().min(1).default(64),
      /** Requests in progress or unanswered on one connection before reading from it pauses. */
      maxPipeline: z.number().int().min(1).max(10_000).default(64),
      /** No complete request for this long closes a connection (milter: once negotiated, at least 1h). */
      idleTimeout: timerDuration(false).default('5m'),
      /** A request begun must arrive whole within this; slower peers (slowloris) are closed. */
      requestTimeout: timerDuration(false).default('10s'),
      /** SIGTERM: time to finish in-flight requests before connections are forced closed. */
      drainTimeout: timerDuration(false).default('10s'),
    })
    .prefault({}),
  admin: z.strictObject({ tokenFile: z.string().min(1).nullable().default(null) }).prefault({}),
  http: z
    .strictObject({
      /** Bearer token for GET /v1/recipients/{address} and POST /v1/recipients:check; null = none. */
      lookupTokenFile: z.string().min(1).nullable().default(null),
      /** Clients answered by the lookup API without a token (CIDR or single address). */
      lookupAllowFrom: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
    })
    .prefault({}),
  statusPage: z.boolean().default(true),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
