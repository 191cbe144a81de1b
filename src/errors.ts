/**
 * One base error with stable codes. Operators grep logs for these; tests assert on them.
 * A directory failure of any kind is a DirectoryError and always becomes `tempfail`.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'RCPTGATE_CONFIG_INVALID',
  CONFIG_READ: 'RCPTGATE_CONFIG_READ',
  USAGE: 'RCPTGATE_USAGE',
  DIRECTORY_UNAVAILABLE: 'RCPTGATE_DIRECTORY_UNAVAILABLE',
  DIRECTORY_TIMEOUT: 'RCPTGATE_DIRECTORY_TIMEOUT',
  DIRECTORY_AUTH: 'RCPTGATE_DIRECTORY_AUTH',
  DIRECTORY_PROTOCOL: 'RCPTGATE_DIRECTORY_PROTOCOL',
  DIRECTORY_OVERLOADED: 'RCPTGATE_DIRECTORY_OVERLOADED',
  /** The directory answered, but not for all of the key's scope (a continuation reference): that key is unknowable, the directory healthy. */
  DIRECTORY_PARTIAL: 'RCPTGATE_DIRECTORY_PARTIAL',
  LDIF_PARSE: 'RCPTGATE_LDIF_PARSE',
  PROTOCOL: 'RCPTGATE_PROTOCOL',
  FRAME_TOO_LARGE: 'RCPTGATE_FRAME_TOO_LARGE',
  SNAPSHOT_INVALID: 'RCPTGATE_SNAPSHOT_INVALID',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class RcptgateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RcptgateError';
    this.code = code;
  }
}

/** Any failure to get a definite answer from the directory. Never means "no such user". */
export class DirectoryError extends RcptgateError {
  constructor(
    code: Extract<
      ErrorCode,
      | 'RCPTGATE_DIRECTORY_UNAVAILABLE'
      | 'RCPTGATE_DIRECTORY_TIMEOUT'
      | 'RCPTGATE_DIRECTORY_AUTH'
      | 'RCPTGATE_DIRECTORY_PROTOCOL'
      | 'RCPTGATE_DIRECTORY_OVERLOADED'
      | 'RCPTGATE_DIRECTORY_PARTIAL'
    >,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'DirectoryError';
  }
}

/** A protocol peer sent something we cannot parse: close that connection, serve the rest. */
export class ProtocolError extends RcptgateError {
  constructor(message: string, code: 'RCPTGATE_PROTOCOL' | 'RCPTGATE_FRAME_TOO_LARGE' = 'RCPTGATE_PROTOCOL') {
    super(code, message);
    this.name = 'ProtocolError';
  }
}

export interface ConfigIssue {
  /** Key path, e.g. `directory.ldap.timeout`. */
  path: string;
  message: string;
}

export class ConfigError extends RcptgateError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(
      ErrorCodes.CONFIG_INVALID,
      `invalid configuration:\n${issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/**
 * The directory answered, but not for all of one address's scope (a continuation reference, a
 * server limit on that address): the address is deferred, the directory is healthy.
 */
export function isPartialAnswer(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === ErrorCodes.DIRECTORY_PARTIAL;
}
