/**
 * Postfix socketmap_table(5) front end (CONTRACT.md "Socketmap"): netstring requests `NAME KEY`,
 * one reply per request, in request order even when lookups finish out of order.
 * It translates verdicts into replies; the engine behind `RecipientValidator` does the rest.
 */
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { ProtocolError } from '../errors.js';
import { TcpServer, type ConnectionContext } from '../net/tcp-server.js';
import type { RecipientValidator } from '../types.js';
import { encodeNetstring, NetstringDecoder } from './netstring.js';

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

/**
 * The reply (without netstring framing) to one request payload. Never throws, never rejects:
 * an engine failure becomes TEMP so mail is deferred, not lost.
 */
export async function socketmapReply(validator: RecipientValidator, request: string): Promise<string> {
  const space = request.indexOf(' ');
  if (space <= 0 || space === request.length - 1) return 'PERM malformed request: expected "NAME KEY"';
  const name = request.slice(0, space);
  const key = request.slice(space + 1);
  try {
    switch (name) {
      case 'recipients': {
        if (!splitAddress(key)) return NOTFOUND;
        const r = await validator.lookup(key, { frontend: 'socketmap' });
        // The value only has to be non-empty; an address (with '@') can never read as "OK".
        if (r.verdict === 'valid') return ok(r.canonical?.includes('@') ? r.canonical : key);
        if (r.verdict === 'tempfail') return temp(r.reason);
        return NOTFOUND;
      }
      case 'domains': {
        if (key.includes('@')) return NOTFOUND;
        const domain = validator.servedDomain(key);
        return domain ? ok(domain) : NOTFOUND;
      }
      case 'access': {
        // smtpd also asks `domain`, `parent.domain` and `user@` forms: not ours to judge.
        if (!splitAddress(key)) return NOTFOUND;
        const r = await validator.lookup(key, { frontend: 'socketmap' });
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
      default:
        return `PERM unknown map ${JSON.stringify(printable(name, 64))}: expected one of ${SOCKETMAP_MAPS.join(', ')}`;
    }
  } catch (err) {
    // The engine promises not to throw; if it does anyway, defer rather than reject.
    return temp(`internal error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface SocketmapServerOptions {
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  maxConnections: number;
  /** CONTRACT: idle connections close after 5 minutes. */
  idleTimeoutMs: number;
}

/** A socketmap listener on the shared TCP base; call `listen("host:port")` on the result. */
export function createSocketmapServer(options: SocketmapServerOptions): TcpServer {
  const { validator, metrics, logger, maxConnections, idleTimeoutMs } = options;
  return new TcpServer({
    frontend: 'socketmap',
    metrics,
    logger,
    maxConnections,
    idleTimeoutMs,
    handler: (ctx) => handleConnection(ctx, validator, metrics),
  });
}

interface Pending {
  reply: string | null;
}

function handleConnection(ctx: ConnectionContext, validator: RecipientValidator, metrics: Metrics): void {
  const { socket, logger } = ctx;
  const decoder = new NetstringDecoder();
  const pending: Pending[] = [];
  let closeWhenAnswered = false;

  /** Writes every reply at the head of the queue that is ready, keeping request order. */
  const flush = () => {
    while (pending.length > 0 && pending[0]!.reply !== null) {
      const { reply } = pending.shift()!;
      if (!socket.destroyed) socket.write(encodeNetstring(reply!));
    }
    if (pending.length === 0) {
      if (closeWhenAnswered) ctx.close();
      ctx.idle();
    }
    if (pending.length < MAX_PIPELINE && !ctx.draining && !closeWhenAnswered && !socket.writableNeedDrain) socket.resume();
  };

  const startRequest = (request: string) => {
    const entry: Pending = { reply: null };
    pending.push(entry);
    ctx.busy();
    void socketmapReply(validator, request).then((reply) => {
      if (reply.startsWith('PERM')) metrics.protocolErrors.inc({ frontend: 'socketmap' });
      // Guarded: building the log object costs more than a cached lookup when debug is off.
      if (logger.isLevelEnabled('debug')) logger.debug({ request: printable(request, 300), reply }, 'socketmap lookup');
      entry.reply = reply;
      flush();
    });
  };

  socket.on('drain', flush);
  socket.on('data', (chunk: Buffer) => {
    if (ctx.draining || closeWhenAnswered) return;
    try {
      for (const frame of decoder.decode(chunk)) startRequest(frame.toString('utf8'));
    } catch (err) {
      // The stream has lost its framing: answer what was asked before, then hang up.
      metrics.protocolErrors.inc({ frontend: 'socketmap' });
      const detail = err instanceof ProtocolError ? { code: err.code, message: err.message } : err;
      logger.warn({ err: detail }, 'malformed netstring, closing connection');
      closeWhenAnswered = true;
      socket.pause();
      if (pending.length === 0) ctx.close();
      return;
    }
    if (pending.length >= MAX_PIPELINE || socket.writableNeedDrain) socket.pause();
  });
}
