import net from 'node:net';
import tls from 'node:tls';
import { Client } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';
import { LdapMessageStream } from './lookup-reader.js';
import { lookupSinkOf } from './raw-search.js';

/**
 * One LDAP connection (one ldapts Client) and every socket it opened, so it can be torn down
 * hard. Many searches share it: ldapts tells their answers apart by message ID, so `inFlight`
 * counts the message IDs outstanding on it.
 */

/** TCP keepalive so a silently vanished server is noticed on idle pooled connections. */
const KEEPALIVE_MS = 30_000;
/** An unbind never waits longer than this (the peer may be paused or gone). */
const UNBIND_GRACE_MS = 1_000;

export class LdapConnection {
  private readonly sockets = new Set<net.Socket>();
  private destroyed = false;
  /** A socket of this connection closed or ended. */
  private dead = false;
  readonly client: Client;
  /** Searches sent on it and not yet answered (each holds one message ID). */
  inFlight = 0;
  /** When the server last sent a whole message on it (performance.now()): how a silently cut connection shows. */
  lastMessageAt = performance.now();
  /** When the server last sent any bytes on it, a part of a message included: a connection still receiving is not cut off. */
  lastBytesAt = performance.now();
  /** When the pool tries the first URL again in its place (Infinity: never; pool.ts). */
  failbackAt = Infinity;
  /** Out of the pool's service: takes no new search, closes when its last one settles. */
  retired = false;
  private stream: LdapMessageStream | undefined;

  constructor(
    readonly url: string,
    connectTimeout: number,
    tlsOptions: tls.ConnectionOptions | undefined,
    /** ldapts' own timeout per request (ms), for callers that do not race each one themselves. */
    requestTimeout?: number,
  ) {
    const track = <S extends net.Socket>(socket: S): S => {
      this.sockets.add(socket);
      socket.setKeepAlive(true, KEEPALIVE_MS);
      socket.setNoDelay(true);
      socket.once('close', () => {
        this.sockets.delete(socket);
        // A partial message of a closed socket must not run into what a later one reads.
        this.stream?.reset();
        // ldapts keeps its handlers on the pre-TLS socket after StartTLS, so `isConnected`
        // can stay true for a dead TLS socket: our own flag catches it.
        this.dead = true;
      });
      socket.once('end', () => {
        this.dead = true;
      });
      socket.on('error', ignoreError);
      if (this.destroyed) socket.destroy();
      return socket;
    };
    const connect = net.connect as (...args: unknown[]) => net.Socket;
    const secureConnect = tls.connect as (...args: unknown[]) => tls.TLSSocket;
    this.client = new Client({
      url,
      connectTimeout: Math.max(1, Math.round(connectTimeout)),
      ...(requestTimeout ? { timeout: Math.max(1, Math.round(requestTimeout)) } : {}),
      // Only for ldaps://: ldapts would otherwise speak TLS at once on an ldap:// URL.
      ...(url.startsWith('ldaps:') && tlsOptions ? { tlsOptions } : {}),
      createConnection: ((...args: unknown[]) => track(connect(...args))) as typeof net.connect,
      createSecureConnection: ((...args: unknown[]) => track(secureConnect(...args))) as typeof tls.connect,
    });
    this.watchStream();
  }

  /**
   * Puts lookup-reader.ts in front of ldapts' parser: lookup answers are read there, every other
   * message is handed on whole. ldapts attaches `socketDataHandler` to each socket it reads (the
   * plain one, then the TLS one after StartTLS), so replacing it covers both.
   *
   * After bytes that are not an LDAP message the stream cannot be trusted (ldapts itself kept the
   * bad bytes in front of every later chunk, or dropped the rest of the chunk); after a Notice of
   * Disconnection (RFC 4511 §4.4.1: the only message with ID 0) the server answers nothing more.
   * Either way the searches in flight would wait out the timeout and defer mail: closing now fails
   * them as a lost connection, and each is retried once on another.
   */
  private watchStream(): void {
    const client = this.client as unknown as Partial<ClientStream>;
    const parser = client.messageParser;
    const registry = client.messageDetailsByMessageId;
    if (typeof parser?.on !== 'function' || typeof parser.read !== 'function' || typeof client.socketDataHandler !== 'function' || !(registry instanceof Map)) {
      throw new Error('this ldapts version lacks Client.messageParser/socketDataHandler: pin the version in package.json');
    }
    parser.on('error', () => this.destroy());
    this.stream = new LdapMessageStream({
      lookup: (id) => lookupSinkOf(this.client, id),
      other: (message) => parser.read(message, registry),
      heard: (id) => {
        this.lastMessageAt = performance.now();
        if (id === 0) this.destroy();
      },
      broken: () => this.destroy(),
    });
    const stream = this.stream;
    client.socketDataHandler = (data: Buffer) => {
      // Bytes of a large answer still arriving on a slow link are not silence (in-flight.ts, pool.dropIfSilent).
      this.lastBytesAt = performance.now();
      stream.push(data);
    };
  }

  get alive(): boolean {
    return !this.destroyed && !this.dead && this.client.isConnected;
  }

  /**
   * ldapts replaces every error listener when it connects and drops its own when a socket
   * closes; a late error (EPIPE) must not become an uncaught exception, which would stop the
   * process. Called once the handshake is done; failures still reach ldapts first, and 'close'
   * marks the connection dead.
   */
  guardErrors(): void {
    for (const socket of this.sockets) if (!socket.listeners('error').includes(ignoreError)) socket.on('error', ignoreError);
  }

  /** Holds writes back until uncork(), so searches sent in one turn leave in one system call. */
  cork(): void {
    for (const socket of this.sockets) socket.cork();
  }

  uncork(): void {
    for (const socket of this.sockets) socket.uncork();
  }

  /** Tears the sockets down now; every search outstanding on them rejects. */
  destroy(): void {
    this.destroyed = true;
    for (const socket of this.sockets) socket.destroy();
  }

  /** Polite goodbye, bounded; always ends destroyed. */
  async unbind(): Promise<void> {
    if (!this.destroyed && this.client.isConnected) {
      await deadlineRace(this.client.unbind(), UNBIND_GRACE_MS, () => new Error('unbind timed out')).catch(() => undefined);
    }
    this.destroy();
  }
}

/** The parts of ldapts' Client the stream is read through. */
interface ClientStream {
  socketDataHandler: (data: Buffer) => void;
  messageParser: {
    on(event: 'error', listener: (err: Error) => void): unknown;
    read(data: Buffer, registry: Map<string, unknown>): void;
  };
  messageDetailsByMessageId: Map<string, unknown>;
}

function ignoreError(): void {}

/** Resolves or rejects like `work`, unless the time runs out or the signal aborts first. */
export function deadlineRace<T>(work: Promise<T>, remainingMs: number, onTimeout: () => Error, signal?: AbortSignal): Promise<T> {
  work.catch(() => undefined); // the loser of the race may still reject
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => finish(() => reject(onTimeout())), Math.max(0, remainingMs));
    const onAbort = (): void => finish(() => reject(abortError(signal!)));
    signal?.addEventListener('abort', onAbort, { once: true });
    function finish(settle: () => void): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    }
    work.then(
      (value) => finish(() => resolve(value)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}

export function abortError(signal: AbortSignal): DirectoryError {
  return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'LDAP request aborted by the caller', { cause: signal.reason });
}
