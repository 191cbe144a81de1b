import { z } from 'zod';
import { parseDuration } from './duration.js';

/**
 * The one configuration schema. Its defaults are the documented defaults (README table,
 * CONTRACT.md); `rcptgate config check` prints the result of parsing through it.
 */

const duration = z
  .string()
  .refine((s) => parseDuration(s) !== null, { message: 'expected a duration like "500ms", "3s", "5m", "1h", "1d"' });

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d{1,5})$/, { message: 'expected "host:port"' })
  .refine((s) => {
    // Only judge the port of a well-formed value; the regex above reports the rest.
    const m = /:(\d{1,5})$/.exec(s);
    return m === null || Number(m[1]) <= 65535;
  }, { message: 'port must be 0..65535' });

const listenAddr = hostPort.nullable();

const mode = z.enum(['enforce', 'shadow']);
const onDirectoryError = z.enum(['tempfail', 'accept', 'reject']);
const localPart = z.string().min(1).max(64);

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
      http: listenAddr.default('0.0.0.0:8080'),
      socketmap: listenAddr.default('0.0.0.0:9465'),
      policy: listenAddr.default('0.0.0.0:9466'),
      milter: listenAddr.default('0.0.0.0:9467'),
    })
    .prefault({}),
  /** Plain list, or map of domain → per-domain rules. */
  domains: z.union([z.array(domainName), z.record(domainName, domainRuleSchema.nullable())]).default([]),
  catchAllDomains: z.array(domainName).default([]),
  recipientDelimiter: z.string().max(16).default('+'),
  directory: z
    .strictObject({
      kind: z.enum(['ldif', 'ldap']).default('ldif'),
      ldif: z.strictObject({ path: z.string().min(1).nullable().default(null) }).prefault({}),
      ldap: z
        .strictObject({
          urls: z
            .array(z.string().regex(/^ldaps?:\/\/[^\s/]+\/?$/, { message: 'expected ldap://host[:port] or ldaps://host[:port]' }))
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
          timeout: duration.default('3s'),
          poolSize: z.number().int().min(1).max(64).default(4),
          /** Directory requests accepted at once (running or waiting for a pooled connection, bounded by `timeout`); more fail at once (tempfail). */
          maxInFlight: z.number().int().min(1).max(10_000).default(64),
          /** Page size for full listings (snapshot sync). */
          pageSize: z.number().int().min(1).max(10_000).default(500),
        })
        .prefault({}),
    })
    .prefault({}),
  cache: z
    .strictObject({
      maxEntries: z.number().int().min(0).default(100_000),
      positiveTtl: duration.default('1h'),
      negativeTtl: duration.default('5m'),
      staleIfError: duration.default('24h'),
    })
    .prefault({}),
  sync: z
    .strictObject({
      enabled: z.boolean().default(false),
      interval: duration.default('15m'),
      /** Incremental refresh between full syncs (modifyTimestamp / uSNChanged). */
      incrementalInterval: duration.default('1m'),
      /** A snapshot older than this is not trusted for `unknown`: live lookups take over. */
      maxAge: duration.default('24h'),
      snapshotPath: z.string().min(1).nullable().default(null),
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
          window: duration.default('10m'),
        })
        .prefault({}),
    })
    .prefault({}),
  server: z
    .strictObject({
      /** Per socket listener (socketmap, policy, milter). */
      maxConnections: z.number().int().min(1).default(1000),
      idleTimeout: duration.default('5m'),
      /** SIGTERM: time to finish in-flight requests before connections are forced closed. */
      drainTimeout: duration.default('10s'),
    })
    .prefault({}),
  admin: z.strictObject({ tokenFile: z.string().min(1).nullable().default(null) }).prefault({}),
  statusPage: z.boolean().default(true),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
