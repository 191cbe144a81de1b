import { DirectoryError, ErrorCodes } from '../errors.js';

/** First pause after a server refused the bind account, and the longest (it doubles). */
export const AUTH_HOLD_FIRST_MS = 60_000;
export const AUTH_HOLD_MAX_MS = 15 * 60_000;

/**
 * Binds paused at the servers that refused the bind account. Each refused bind counts against an
 * account lockout policy (AD's lockout threshold, OpenLDAP ppolicy's pwdMaxFailure), and lookups
 * asked for a new connection every time: a wrong or rotated password made about one refused bind
 * a second under traffic and locked the account within seconds, for every service using it, and
 * it stayed locked after the password was fixed. A refusal can also end by itself (a password
 * replicating, a lockout expiring), so binds resume after a pause that doubles up to 15 minutes;
 * a reload with a new password builds a new directory and binds at once. Only the servers that
 * refused are held: another that was merely down (restarting) is bound as soon as it is back.
 */
export class AuthHold {
  /** URLs whose server refused the bind, and until when (now()) no bind is sent there. */
  private readonly held = new Map<string, number>();
  private pause = 0;
  private reason = '';

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly firstMs = AUTH_HOLD_FIRST_MS,
    private readonly maxMs = AUTH_HOLD_MAX_MS,
  ) {}

  /** The URLs of `urls` a bind may be sent to now. */
  usable(urls: readonly string[]): readonly string[] {
    const now = this.now();
    return urls.filter((u) => (this.held.get(u) ?? 0) <= now);
  }

  /** The error to fail a new connection with while binds to every one of `urls` are paused, or undefined. */
  check(urls: readonly string[]): DirectoryError | undefined {
    if (urls.length === 0 || this.usable(urls).length > 0) return undefined;
    const left = Math.min(...urls.map((u) => this.held.get(u)!)) - this.now();
    return new DirectoryError(
      ErrorCodes.DIRECTORY_AUTH,
      `every LDAP server refused the bind account; no bind for ${Math.ceil(left / 1000)} s more, so an account lockout policy is not tripped (${this.reason})`,
    );
  }

  /** The servers at `urls` refused the bind (none accepted it): pause them, longer each time. Returns the pause in ms. */
  refused(err: DirectoryError, urls: readonly string[]): number {
    this.pause = this.pause === 0 ? this.firstMs : Math.min(this.pause * 2, this.maxMs);
    const until = this.now() + this.pause;
    for (const url of urls) this.held.set(url, until);
    this.reason = err.message;
    return this.pause;
  }

  /** The server at `url` accepted a bind: binds resume there, and once none is held the next refusal pauses for the first pause again. */
  accepted(url: string): void {
    this.held.delete(url);
    if (this.usable([...this.held.keys()]).length === this.held.size) {
      this.held.clear();
      this.pause = 0;
    }
  }
}
