/**
 * Postfix socketmap_table(5) front end (CONTRACT.md "Socketmap"): netstring requests `NAME KEY`,
 * one reply per request, in request order even when lookups finish out of order.
 * It translates verdicts into replies; the engine behind `RecipientValidator` does the rest.
 */
import type { Metrics } from '../metrics.js';
import { ProtocolError } from '../errors.js';
import { TcpServer, type ConnectionContext, type FrontendServerOptions } from '../net/tcp-server.js';
import type { Socket } from 'node:net';
import type { LookupOptions, LookupResult, RecipientValidator } from '../recipient/types.js';
import { NetstringDecoder, netstringText } from './netstring.js';

/** The `access` map's answer for an unknown recipient (see README: differs from CONTRACT.md on purpose). */
export const ACCESS_REJECT = 'OK 550 5.1.1 User unknown';

export const SOCKETMAP_MAPS = ['recipients', 'domains', 'access'] as const;
export type SocketmapMap = (typeof SOCKETMAP_MAPS)[number];

/** Requests in flight on one connection before we stop reading from it (backpressure). */
const MAX_PIPELINE = 256;
/** TEMP/PERM reasons are short, single-line, printable ASCII. */
const MAX_REASON = 200;

const NOTFOUND = 'NOTFOUND ';

/** Anything outside printable ASCII becomes '?', so a reply can never carry a line break. */
export function printable(text: string, max = MAX_REASON): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?').trim();
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}

function temp(reason: string | undefined): string {
  return `TEMP ${printable(reason ?? '') || 'directory lookup failed'}`;
}

/** `OK <data>` with non-empty data: bare `OK` reads as not-found to older Postfix. */
function ok(data: string): string {
  // Values may be UTF-8 (SMTPUTF8 addresses); only control characters are unsafe here.
  const value = data.replace(/[\x00-\x1f\x7f]/g, '?').trim();
  return value ? `OK ${value}` : 'TEMP empty answer';
}

/** Local part and domain of `key`, or null when either is missing. */
function splitAddress(key: string): { local: string; domain: string } | null {
  const at = key.lastIndexOf('@');
  if (at <= 0 || at === key.length - 1) return null;
  return { local: key.slice(0, at), domain: key.slice(at + 1) };
}

/** Every socketmap lookup asks the engine with the same options. */
const SOCKETMAP: LookupOptions = Object.freeze({ frontend: 'socketmap' });

/** A request that needs the engine's verdict. */
interface Lookup {
  map: 'recipients' | 'access';
  key: string;
}

/** The engine's optional promise-free path (RecipientValidatorImpl.lookupNow). */
type LookupNow = (address: string, options: LookupOptions) => LookupResult | undefined;

/** The reply to a request that needs no lookup, or the lookup it needs. */
function route(validator: RecipientValidator, request: string): string | Lookup {
  const space = request.indexOf(' ');
  if (space <= 0 || space === request.length - 1) return 'PERM malformed request: expected "NAME KEY"';
  const name = request.slice(0, space);
  const key = request.slice(space + 1);
  switch (name) {
    case 'recipients':
    case 'access':
      // smtpd also asks `domain`, `parent.domain` and `user@` forms: not ours to judge.
      return splitAddress(key) ? { map: name, key } : NOTFOUND;
    case 'domains': {
      if (key.includes('@')) return NOTFOUND;
      const domain = validator.servedDomain(key);
      return domain ? ok(domain) : NOTFOUND;
    }
    default:
      return `PERM unknown map ${JSON.stringify(printable(name, 64))}: expected one of ${SOCKETMAP_MAPS.join(', ')}`;
  }
}

/** A verdict as the map's reply. */
function verdictReply({ map, key }: Lookup, r: LookupResult): string {
  if (map === 'recipients') {
    // The value only has to be non-empty; an address (with '@') can never read as "OK".
    if (r.verdict === 'valid') return ok(r.canonical?.includes('@') ? r.canonical : key);
    if (r.verdict === 'tempfail') return temp(r.reason);
    return NOTFOUND;
  }
  switch (r.verdict) {
    case 'valid':
      return 'OK DUNNO';
    case 'unknown':
      // smtpd prefixes access-map text with "<addr>: Recipient address rejected: ", so this
      // reaches the client as "550 5.1.1 <addr>: Recipient address rejected: User unknown".
      return ACCESS_REJECT;
    case 'tempfail':
      return temp(r.reason);
    default:
      return NOTFOUND;
  }
}

/** The engine promises not to throw; if it does anyway, defer rather than reject. */
function internalError(err: unknown): string {
  return temp(`internal error: ${err instanceof Error ? err.message : String(err)}`);
}

/**
 * The reply (without netstring framing) to one request payload. Never throws, never rejects:
 * an engine failure becomes TEMP so mail is deferred, not lost.
 */
export async function socketmapReply(validator: RecipientValidator, request: string): Promise<string> {
  try {
    const routed = route(validator, request);
    if (typeof routed === 'string') return routed;
    return verdictReply(routed, await validator.lookup(routed.key, SOCKETMAP));
  } catch (err) {
    return internalError(err);
  }
}

/** CONTRACT: idle connections close after 5 minutes (server.idleTimeout). */
export type SocketmapServerOptions = FrontendServerOptions;

/** A socketmap listener on the shared TCP base; call `listen("host:port")` on the result. */
export function createSocketmapServer(options: SocketmapServerOptions): TcpServer {
  const { validator, metrics, logger, maxConnections, idleTimeoutMs } = options;
  return new TcpServer({
    frontend: 'socketmap',
    metrics,
    logger,
    maxConnections,
    idleTimeoutMs,
    handler: (ctx) => void new SocketmapConnection(ctx, validator, metrics),
  });
}

/** A reply owed, in request order; null until its lookup finishes. */
interface Slot {
  reply: string | null;
}

/**
 * One client connection. Replies the engine can give at once (cache, static rules) are written
 * together at the end of the socket read that carried their requests: one write per read, no
 * promise. Lookups that wait for the directory queue a slot; later replies wait behind it.
 */
class SocketmapConnection {
  private readonly socket: Socket;
  private readonly decoder = new NetstringDecoder();
  /** Replies not yet written, oldest first; the head is still waiting for its lookup. */
  private readonly queue: Slot[] = [];
  /** Framed replies of the current read, written when it has been handled. */
  private out = '';
  private paused = false;
  private flushScheduled = false;
  private closeWhenAnswered = false;
  private readonly lookupNow: LookupNow | null;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly validator: RecipientValidator,
    private readonly metrics: Metrics,
  ) {
    this.socket = ctx.socket;
    const now = (validator as { lookupNow?: LookupNow }).lookupNow;
    this.lookupNow = typeof now === 'function' ? now.bind(validator) : null;
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('drain', this.flushQueue);
  }

  private onData(chunk: Buffer): void {
    if (this.ctx.draining || this.closeWhenAnswered) return;
    try {
      this.decoder.feed(chunk, this.onFrame);
    } catch (err) {
      // The stream has lost its framing: answer what was asked before, then hang up.
      this.metrics.protocolErrors.inc({ frontend: 'socketmap' });
      const detail = err instanceof ProtocolError ? { code: err.code, message: err.message } : err;
      this.ctx.logger.warn({ err: detail }, 'malformed netstring, closing connection');
      this.closeWhenAnswered = true;
      this.pause();
      this.writeOut();
      if (this.queue.length === 0) this.ctx.close();
      return;
    }
    this.writeOut();
    if (this.queue.length >= MAX_PIPELINE || this.socket.writableNeedDrain) this.pause();
  }

  private readonly onFrame = (frame: Buffer): void => {
    const request = frame.toString();
    let routed: string | Lookup;
    try {
      routed = route(this.validator, request);
      if (typeof routed !== 'string' && this.lookupNow !== null) {
        const r = this.lookupNow(routed.key, SOCKETMAP);
        if (r !== undefined) routed = verdictReply(routed, r);
      }
    } catch (err) {
      routed = internalError(err);
    }
    if (typeof routed === 'string') {
      this.answered(request, routed);
      if (this.queue.length === 0) this.out += netstringText(routed);
      else this.queue.push({ reply: routed });
      return;
    }
    const slot: Slot = { reply: null };
    this.queue.push(slot);
    this.ctx.busy();
    const lookup = routed;
    let pending: Promise<LookupResult>;
    try {
      pending = this.validator.lookup(lookup.key, SOCKETMAP);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (r) => this.settle(slot, request, verdictReply(lookup, r)),
      (err: unknown) => this.settle(slot, request, internalError(err)),
    );
  };

  private settle(slot: Slot, request: string, reply: string): void {
    this.answered(request, reply);
    slot.reply = reply;
    if (this.queue[0] === slot && !this.flushScheduled) {
      // Lookups finishing in the same tick share one write.
      this.flushScheduled = true;
      queueMicrotask(this.flushQueue);
    }
  }

  private answered(request: string, reply: string): void {
    if (reply.startsWith('PERM')) this.metrics.protocolErrors.inc({ frontend: 'socketmap' });
    // Guarded: building the log object costs more than a cached lookup when debug is off.
    const { logger } = this.ctx;
    if (logger.isLevelEnabled('debug')) logger.debug({ request: printable(request, 300), reply }, 'socketmap lookup');
  }

  /** Writes every reply at the head of the queue that is ready, keeping request order. */
  private readonly flushQueue = (): void => {
    this.flushScheduled = false;
    const { queue } = this;
    let text = '';
    while (queue.length > 0 && queue[0]!.reply !== null) text += netstringText(queue.shift()!.reply!);
    if (text !== '' && !this.socket.destroyed) this.socket.write(text);
    if (queue.length === 0) {
      if (this.closeWhenAnswered) this.ctx.close();
      this.ctx.idle();
    }
    if (this.paused && queue.length < MAX_PIPELINE && !this.ctx.draining && !this.closeWhenAnswered && !this.socket.writableNeedDrain) {
      this.paused = false;
      this.socket.resume();
    }
  };

  private writeOut(): void {
    if (this.out === '') return;
    const text = this.out;
    this.out = '';
    if (!this.socket.destroyed) this.socket.write(text);
  }

  private pause(): void {
    this.paused = true;
    this.socket.pause();
  }
}
