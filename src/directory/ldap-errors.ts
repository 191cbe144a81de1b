import { ResultCodeError } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';

/**
 * The one place where LDAP result codes and socket/TLS failures become DirectoryError codes.
 * Every failure ends up here, so whatever the cause the engine gets a DirectoryError
 * (→ tempfail), never a silent "no such user".
 */

type DirectoryCode = ConstructorParameters<typeof DirectoryError>[0];

/** LDAP result codes (RFC 4511 §4.1.9) worth naming in messages. */
const RESULT_NAMES: Record<number, string> = {
  1: 'operationsError',
  2: 'protocolError',
  3: 'timeLimitExceeded',
  4: 'sizeLimitExceeded',
  7: 'authMethodNotSupported',
  8: 'strongerAuthRequired',
  10: 'referral',
  11: 'adminLimitExceeded',
  12: 'unavailableCriticalExtension',
  13: 'confidentialityRequired',
  32: 'noSuchObject',
  34: 'invalidDNSyntax',
  48: 'inappropriateAuthentication',
  49: 'invalidCredentials',
  50: 'insufficientAccessRights',
  51: 'busy',
  52: 'unavailable',
  53: 'unwillingToPerform',
  80: 'other',
};

/** LDAP result code 32: the base DN does not exist. */
export const NO_SUCH_OBJECT = 32;

/** Result codes that mean our credentials or transport security are not accepted: a configuration error. */
const AUTH_CODES = new Set([7, 8, 13, 48, 49, 50]);
/** The server is there but will not serve now; try again later. */
const UNAVAILABLE_CODES = new Set([51, 52]);
/** Busy (51) or unavailable (52): this server cannot serve now; another might. */
export function isUnavailableResult(code: number): boolean {
  return UNAVAILABLE_CODES.has(code);
}

/** A refusal of the credentials or security the connection is bound with. */
export function isAuthResult(code: number): boolean {
  return AUTH_CODES.has(code);
}

/** strongerAuthRequired (8), confidentialityRequired (13): the server wants TLS before it looks at any password. */
const SECURITY_CODES = new Set([8, 13]);

/** A bind refused for the connection's security, not its credentials: it counts towards no account lockout. */
export function isSecurityRefusal(err: DirectoryError): boolean {
  return err.cause instanceof ResultCodeError && SECURITY_CODES.has(err.cause.code);
}

/** unavailable (52): what the pool is told of a server that cannot serve any search. */
export const UNAVAILABLE = 52;

/**
 * Results a server gives every search while it cannot serve: its base missing (a replica not yet
 * filled, or holding another tree), searches refused (slapd `restrict`), an internal error, or
 * busy and unavailable. Another URL may answer: the lookup is asked there once (pool.refusedBy).
 */
const SERVER_FAILURE_CODES = new Set([1, NO_SUCH_OBJECT, 51, 52, 53, 80]);
export function failsEverySearch(code: number): boolean {
  return SERVER_FAILURE_CODES.has(code);
}

/** Socket error codes of a server that is down, unreachable or went away. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ETIMEDOUT',
]);

export interface ErrorContext {
  /** What we were doing: "bind", "search", "connect", "StartTLS", "paged search". */
  operation: string;
  /** Server URL. */
  url?: string;
  /** Bind DN, for auth messages. */
  bindDN?: string | null;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function where(ctx: ErrorContext): string {
  return ctx.url ? `${ctx.operation} on ${ctx.url}` : ctx.operation;
}

export function resultCodeName(code: number): string {
  return `${RESULT_NAMES[code] ?? 'result code'} (${code})`;
}

/** LDAP result code → DirectoryError code. Success and noSuchObject never get here. */
export function directoryCodeForResult(code: number): DirectoryCode {
  if (AUTH_CODES.has(code)) return ErrorCodes.DIRECTORY_AUTH;
  if (UNAVAILABLE_CODES.has(code)) return ErrorCodes.DIRECTORY_UNAVAILABLE;
  if (code === 3) return ErrorCodes.DIRECTORY_TIMEOUT;
  return ErrorCodes.DIRECTORY_PROTOCOL;
}

/**
 * What AD's sub-code (`data 775` in the diagnostic of an invalidCredentials bind) says about the
 * bind account, and what to do: a locked, disabled or expired account has the right password, and
 * "check the password" sent operators to rotate one that was fine.
 */
const AD_BIND_REASONS: Record<string, string> = {
  '525': 'the bind account does not exist: check directory.ldap.bindDN',
  '52e': 'wrong password for the bind account: check the bind password (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)',
  '530': 'the bind account may not log on at this time (logon hours)',
  '531': 'the bind account may not log on from this host (logon workstations)',
  '532': "the bind account's password has expired: set a new one in AD and in bindPasswordFile",
  '533': 'the bind account is disabled in AD: enable it',
  '701': 'the bind account has expired in AD (accountExpires): extend it',
  '773': 'the bind account must change its password (pwdLastSet 0): set a new one in AD and in bindPasswordFile',
  '775': 'the bind account is locked out in AD: unlock it (the password itself may be right); binds here pause meanwhile',
};

/** Active Directory's reason for a refused bind, from `data XXX` in its message, or null. */
export function adBindReason(diagnostic: string): string | null {
  const code = /AcceptSecurityContext error, data ([0-9a-f]+)/i.exec(diagnostic)?.[1]?.toLowerCase();
  const reason = code === undefined ? undefined : AD_BIND_REASONS[code];
  return reason === undefined ? null : `Active Directory says (data ${code}): ${reason}`;
}

function fromResultCode(err: ResultCodeError, ctx: ErrorContext): DirectoryError {
  const code = directoryCodeForResult(err.code);
  const name = resultCodeName(err.code);
  const detail = err.message ? `: ${err.message}` : '';
  let message: string;
  if (code === ErrorCodes.DIRECTORY_AUTH && ctx.operation === 'bind' && (err.code === 8 || err.code === 13)) {
    // strongerAuthRequired / confidentialityRequired: AD's default for simple binds without TLS.
    message =
      `LDAP bind refused by ${ctx.url ?? 'the server'} with ${name}${detail} — a configuration error: the server refuses ` +
      'simple binds without TLS; use ldaps:// (636, Global Catalog 3269) or directory.ldap.startTLS: true';
  } else if (code === ErrorCodes.DIRECTORY_AUTH && ctx.operation === 'bind') {
    const who = ctx.bindDN ? `as "${ctx.bindDN}"` : 'anonymously';
    const ad = adBindReason(err.message);
    message =
      `LDAP bind ${who} was refused by ${ctx.url ?? 'the server'} with ${name}${detail} — ` +
      (ad ?? 'a configuration error: check directory.ldap.bindDN and the bind password (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)');
  } else if (code === ErrorCodes.DIRECTORY_AUTH) {
    message = `LDAP ${where(ctx)} refused with ${name}${detail} — a configuration error: the bind account lacks the rights or the connection security the server requires`;
  } else if (err.code === 10) {
    message = `LDAP ${where(ctx)} answered with a referral${detail}; rcptgate does not chase referrals: point directory.ldap.baseDN at a naming context this server holds`;
  } else if (err.code === 4 || err.code === 11) {
    message = `LDAP ${where(ctx)} hit a server limit, ${name}${detail}: allow the bind account more (OpenLDAP: limits … size=unlimited) or lower directory.ldap.pageSize`;
  } else {
    message = `LDAP ${where(ctx)} failed with ${name}${detail}`;
  }
  return new DirectoryError(code, message, { cause: err });
}

/** TLS verification failures (Node's OpenSSL codes) — usually a wrong or missing CA file. */
function isTlsError(code: string | undefined, message: string): boolean {
  return (
    (code !== undefined && (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|ERR_SSL/.test(code))) ||
    /certificate|ssl|tls/i.test(message)
  );
}

/** Anything thrown while talking to the directory → DirectoryError with a clear message. */
export function toDirectoryError(err: unknown, ctx: ErrorContext): DirectoryError {
  if (err instanceof DirectoryError) return err;
  if (err instanceof ResultCodeError) return fromResultCode(err, ctx);
  const message = err instanceof Error ? err.message : String(err);
  const code = codeOf(err);
  if (/timed out|timeout/i.test(message) && code !== 'ETIMEDOUT') {
    return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP ${where(ctx)} timed out: ${message}`, { cause: err });
  }
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `LDAP server unreachable (${where(ctx)}): ${code} ${message}`, { cause: err });
  }
  if (isTlsError(code, message)) {
    return new DirectoryError(
      ErrorCodes.DIRECTORY_UNAVAILABLE,
      `TLS with the LDAP server failed (${where(ctx)}): ${message} — check directory.ldap.tls.caFile and that the certificate names the host in the URL`,
      { cause: err },
    );
  }
  if (/connection closed|socket|not established|ended by the other party/i.test(message)) {
    return new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `LDAP connection lost (${where(ctx)}): ${message}`, { cause: err });
  }
  if (err instanceof Error && /asn1|ber|parse|invalid/i.test(`${err.name} ${message}`)) {
    return new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `LDAP ${where(ctx)}: unexpected answer: ${message}`, { cause: err });
  }
  return new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `LDAP ${where(ctx)} failed: ${message}`, { cause: err });
}

/** True for failures of the connection itself (not of the request): worth one retry on a fresh connection. */
export function isConnectionFailure(err: DirectoryError): boolean {
  return err.code === ErrorCodes.DIRECTORY_UNAVAILABLE && !(err.cause instanceof ResultCodeError);
}

/** Limits a server may hit after sending entries: timeLimitExceeded (3), sizeLimitExceeded (4), adminLimitExceeded (11). */
const CUT_SHORT_CODES = new Set([3, 4, 11]);

/**
 * Whether a search ended with `status` and `entries` found what it looked for. A limit hit after an
 * entry was sent still proves that entry matched (a server that lost an index scans on after the
 * match and runs out of time): the user exists. With no entry it proves nothing.
 */
export function foundDespite(status: number, entries: number): boolean {
  return status === 0 || (entries > 0 && CUT_SHORT_CODES.has(status));
}

/**
 * sizeLimitExceeded with no entry, adminLimitExceeded: a server limit this key's search hit (an
 * address held by more entries than the server lets one search examine). That address cannot be
 * known, but the directory answered: one such address asked again and again (a spam run) must not
 * open the breaker for every other lookup.
 */
export function partialWhenLimited(status: number, err: DirectoryError): DirectoryError {
  return status === 4 || status === 11 ? new DirectoryError(ErrorCodes.DIRECTORY_PARTIAL, err.message, { cause: err }) : err;
}
