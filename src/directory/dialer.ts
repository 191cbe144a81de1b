import { DirectoryError, ErrorCodes } from '../errors.js';
import type { AuthHold } from './auth-hold.js';
import type { LdapConnection } from './connection.js';
import { connectFirst, type ConnectOptions } from './connect.js';
import { isSecurityRefusal } from './ldap-errors.js';

/** How long a server that said busy or unavailable, hung or refused the bind is tried last by new connections. */
const REST_MS = 30_000;

export interface DialerOptions extends ConnectOptions {
  urls: string[];
  /** Binds paused after every server refused the bind account (auth-hold.ts). */
  authHold: AuthHold;
}

/**
 * Opens and binds the pool's connections: the URLs in their configured order, those whose server
 * lately said busy, hung or refused the bind last; while no connection is open, one attempt at a
 * time, so a wrong password costs one refused bind per server and not one per waiting lookup; and
 * none while the auth hold lasts.
 */
export class Dialer {
  /** URLs whose server said busy or unavailable, hung or refused the bind, and until when (performance.now()) new connections try them last. */
  private readonly resting = new Map<string, number>();
  /** Connections still connecting or binding: close() must not leave them to finish. */
  private readonly opening = new Set<LdapConnection>();
  /** The attempt made while no connection was open; the next waits for it. */
  private first: Promise<LdapConnection> | undefined;

  constructor(
    private readonly o: DialerOptions,
    private readonly closed: () => boolean,
    private readonly anyOpen: () => boolean,
  ) {}

  async connect(deadline: number, urls?: readonly string[]): Promise<LdapConnection> {
    while (!this.anyOpen() && this.first) await this.first.catch(() => undefined);
    const wanted = urls ?? this.order();
    // Servers that refused the bind are skipped while their pause lasts; the others are tried.
    const usable = this.o.authHold.usable(wanted);
    if (usable.length === 0 && wanted.length > 0) throw this.o.authHold.check(wanted)!;
    const skipped = wanted.filter((u) => !usable.includes(u));
    const attempt = this.bind(deadline, usable).catch((err: unknown) => {
      // The others failing too is still the refused account (a configuration error), not only an outage.
      if (skipped.length === 0 || !(err instanceof DirectoryError) || err.code === ErrorCodes.DIRECTORY_AUTH) throw err;
      const hold = this.o.authHold.check(skipped);
      throw hold ? new DirectoryError(ErrorCodes.DIRECTORY_AUTH, `${err.message}; ${hold.message}`, { cause: err }) : err;
    });
    if (!this.anyOpen()) {
      this.first = attempt;
      const clear = () => {
        if (this.first === attempt) this.first = undefined;
      };
      attempt.then(clear, clear);
    }
    return attempt;
  }

  /** New connections try `url` last for a while; returns whether some other URL is not resting. */
  rest(url: string): boolean {
    const now = performance.now();
    this.resting.set(url, now + REST_MS);
    return this.o.urls.some((u) => (this.resting.get(u) ?? 0) <= now);
  }

  isResting(url: string): boolean {
    return (this.resting.get(url) ?? 0) > performance.now();
  }

  /** Connections still binding to `url` (its server just said busy or unavailable) go on to their next URL. */
  abandon(url: string): void {
    for (const conn of this.opening) if (conn.url === url) conn.destroy();
  }

  close(): void {
    for (const conn of this.opening) conn.destroy();
    this.opening.clear();
  }

  private async bind(deadline: number, urls: readonly string[]): Promise<LdapConnection> {
    const mine: LdapConnection[] = [];
    const refused: string[] = [];
    let refusal: DirectoryError | undefined;
    const o: ConnectOptions = {
      ...this.o,
      onBindRefused: (url, err) => {
        // Refused for want of TLS, before any password was checked: no lockout to spare, and no pause
        // after the directory's administrator takes the requirement back (mail deferred for minutes).
        if (!isSecurityRefusal(err)) {
          refused.push(url);
          refusal = err;
        }
        this.o.onBindRefused?.(url, err);
      },
    };
    const opened = (conn: LdapConnection) => {
      mine.push(conn);
      this.opening.add(conn);
    };
    try {
      // A server that refused the bind is tried last for a while: each attempt there costs a bind (and may count towards a lockout).
      const conn = await connectFirst(urls, deadline, o, this.closed, opened, (url) => this.rest(url));
      // Another server accepted: those that refused are still paused (each refused bind counts towards a lockout).
      if (refusal) this.o.authHold.refused(refusal, refused);
      this.o.authHold.accepted(conn.url);
      return conn;
    } catch (err) {
      if (err instanceof DirectoryError && err.code === ErrorCodes.DIRECTORY_AUTH && refused.length > 0 && !this.closed()) {
        const pause = this.o.authHold.refused(err, refused);
        this.o.log.error(
          { err: err.message, pauseSeconds: pause / 1000, held: refused },
          'LDAP servers refused the bind account; no new bind to them until the pause ends or a reload, so an account lockout policy is not tripped (the others are still tried)',
        );
      }
      throw err;
    } finally {
      for (const conn of mine) this.opening.delete(conn);
    }
  }

  /** A bind made outside the pool (the snapshot change feed) was refused by the server at `url`: paused like the pool's own. */
  bindRefused(url: string, err: DirectoryError): void {
    this.rest(url);
    if (!isSecurityRefusal(err)) this.o.authHold.refused(err, [url]);
  }

  /** The URLs a new connection would bind to now, in the order it would try them. */
  bindable(): readonly string[] {
    return this.o.authHold.usable(this.order());
  }

  /** The URLs in their configured order, those resting after the others. */
  private order(): readonly string[] {
    if (this.resting.size === 0) return this.o.urls;
    const now = performance.now();
    for (const [url, until] of this.resting) if (until <= now) this.resting.delete(url);
    return [...this.o.urls.filter((u) => !this.resting.has(u)), ...this.o.urls.filter((u) => this.resting.has(u))];
  }
}
