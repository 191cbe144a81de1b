import net from 'node:net';
import type tls from 'node:tls';
import { DirectoryError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import { LdapConnection, deadlineRace } from './connection.js';
import { toDirectoryError } from './ldap-errors.js';

export interface ConnectOptions {
  /** Human form of the timeout, for messages. */
  timeoutText: string;
  startTLS: boolean;
  tlsOptions: tls.ConnectionOptions | undefined;
  bindDN: string | null;
  bindPassword: string | null;
  log: Logger;
  /** A server refused the bind account (metrics: while another answers, nothing else shows it). */
  onBindRefused?: (url: string, err: DirectoryError) => void;
}

/**
 * Opens and binds a connection, trying `urls` in order; each gets an equal share of the time
 * left, so a hanging first server still leaves time for the next. A server that refuses the bind
 * is passed over too (`refused` hears of it): replicas need not agree on the account (a rotated
 * password not yet replicated, a lockout or an account missing on one server restored from an
 * old backup). When every server failed and one refused the bind, the error is that refusal's
 * (a configuration error). `stop()` true: the caller closed meanwhile; `opened` sees each
 * connection as it is created (so the caller can close one still binding); `refused` hears of a
 * server that refused the bind or did not answer it in time (tried last for a while).
 */
export async function connectFirst(
  urls: readonly string[],
  deadline: number,
  o: ConnectOptions,
  stop: () => boolean,
  opened: (conn: LdapConnection) => void = () => undefined,
  refused: (url: string) => void = () => undefined,
): Promise<LdapConnection> {
  const failures: DirectoryError[] = [];
  for (let i = 0; i < urls.length; i++) {
    const url = urls[i]!;
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    const share = remaining / (urls.length - i);
    const conn = new LdapConnection(url, share, o.tlsOptions);
    opened(conn);
    let step = 'connect';
    try {
      await deadlineRace(handshake(conn, o, (s) => (step = s)), share, () => timeoutError(step, url, o.timeoutText));
      if (stop()) throw closedError();
      conn.guardErrors();
      return conn;
    } catch (err) {
      conn.destroy();
      const error = toDirectoryError(err, { operation: step, url, bindDN: o.bindDN });
      if (stop()) throw error;
      failures.push(error);
      if (error.code !== ErrorCodes.DIRECTORY_AUTH) {
        // Took TCP but did not answer the bind in time: each new connection would wait on it again, so it rests like a hung server.
        if (error.code === ErrorCodes.DIRECTORY_TIMEOUT) refused(url);
        o.log.debug({ url, err: error.message }, 'LDAP server failed; trying the next URL');
      } else {
        refused(url);
        o.onBindRefused?.(url, error);
        if (i < urls.length - 1) o.log.warn({ url, err: error.message }, 'LDAP server refused the bind account; trying the next URL');
      }
    }
  }
  if (failures.length === 0) throw timeoutError('connect', urls.join(', '), o.timeoutText);
  if (failures.length === 1) throw failures[0]!;
  const last = failures.find((f) => f.code === ErrorCodes.DIRECTORY_AUTH) ?? failures[failures.length - 1]!;
  throw new DirectoryError(last.code as ConstructorParameters<typeof DirectoryError>[0], `no LDAP server answered: ${failures.map((f) => f.message).join('; ')}`, {
    cause: last,
  });
}

/**
 * The TLS options of StartTLS on `url`: its host checked against the certificate and named to the
 * server (SNI), as LDAPS does. A copy: ldapts leaves the socket it upgrades in the object it gets.
 */
export function startTlsOptions(url: string, tlsOptions: tls.ConnectionOptions | undefined): tls.ConnectionOptions {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return { ...tlsOptions, host, ...(net.isIP(host) ? {} : { servername: host }) };
}

async function handshake(conn: LdapConnection, o: ConnectOptions, step: (name: string) => void): Promise<void> {
  if (o.startTLS && conn.url.startsWith('ldap:')) {
    step('StartTLS');
    await conn.client.startTLS(startTlsOptions(conn.url, o.tlsOptions));
  }
  step('bind');
  // An explicit anonymous bind opens the connection now, so failover happens here and not mid-search.
  if (o.bindDN === null) await conn.client.bind('', '');
  else await conn.client.bind(o.bindDN, o.bindPassword ?? '');
}

function timeoutError(operation: string, url: string, timeoutText: string): DirectoryError {
  return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP ${operation} on ${url} got no answer within ${timeoutText}`);
}

export function closedError(): DirectoryError {
  return new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'LDAP directory is closed');
}
