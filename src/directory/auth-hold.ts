import { DirectoryError, ErrorCodes } from '../errors.js';

/** First pause after every server refused the bind account, and the longest (it doubles). */
export const AUTH_HOLD_FIRST_MS = 60_000;
export const AUTH_HOLD_MAX_MS = 15 * 60_000;

/**
 * Binds paused after every server refused the bind account. Each refused bind counts against an
 * account lockout policy (AD's lockout threshold, OpenLDAP ppolicy's pwdMaxFailure), and lookups
 * asked for a new connection every time: a wrong or rotated password made about one refused bind
 * a second under traffic and locked the account within seconds, for every service using it, and
 * it stayed locked after the password was fixed. A refusal can also end by itself (a password
 * replicating, a lockout expiring), so binds resume after a pause that doubles up to 15 minutes;
 * a reload with a new password builds a new directory and binds at once.
 */
export class AuthHold {
  private until = 0;
  private pause = 0;
  private reason = '';

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly firstMs = AUTH_HOLD_FIRST_MS,
    private readonly maxMs = AUTH_HOLD_MAX_MS,
  ) {}

  /** The error to fail a new connection with while binds are paused, or undefined. */
  check(): DirectoryError | undefined {
    const left = this.until - this.now();
    if (left <= 0) return undefined;
    return new DirectoryError(
      ErrorCodes.DIRECTORY_AUTH,
      `every LDAP server refused the bind account; no bind for ${Math.ceil(left / 1000)} s more, so an account lockout policy is not tripped (${this.reason})`,
    );
  }

  /** Every server tried refused the bind (none accepted it): pause, longer each time. Returns the pause in ms. */
  refused(err: DirectoryError): number {
    this.pause = this.pause === 0 ? this.firstMs : Math.min(this.pause * 2, this.maxMs);
    this.until = this.now() + this.pause;
    this.reason = err.message;
    return this.pause;
  }

  /** A bind was accepted: the next refusal pauses for the first pause again. */
  accepted(): void {
    this.pause = 0;
    this.until = 0;
  }
}
