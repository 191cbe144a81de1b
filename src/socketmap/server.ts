/**
 * Postfix socketmap_table(5) front end (README "Socketmap"): netstring requests `NAME KEY`, one
 * reply per request. Only the codec and the reply table live here: ordering, backpressure and
 * limits are the shared pipeline's (net/pipeline.ts), verdict rules the gate's (gate/gate.ts).
 */
import { ProtocolError } from '../errors.js';
import { Gate, type Answer } from '../gate/gate.js';
import type { FrontendServerOptions } from '../gate/frontend-options.js';
import { ConnectionPipeline, DEFAULT_MAX_PIPELINE, type HandlerResult } from '../net/pipeline.js';
import { TcpServer, type ConnectionContext } from '../net/tcp-server.js';
import type { LookupResult, RecipientValidator } from '../recipient/types.js';
import { NetstringDecoder, netstringText } from './netstring.js';

/** The `access` map's answer for an unknown recipient (see README: differs from the contract text on purpose). */
export const ACCESS_REJECT = 'OK 550 5.1.1 User unknown';
/** The `access` map's answer for an invalid address in a served domain (README "Invalid addresses"). */
export const ACCESS_INVALID = 'OK 501 5.1.3 Bad recipient address syntax';

export const SOCKETMAP_MAPS = ['recipients', 'domains', 'access'] as const;

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
  // Values may be UTF-8 (SMTPUTF8 addresses); only control characters are unsafe here. The
  // usual clean value is tested, not copied (the warm path answers thousands a second).
  const value = UNSAFE.test(data) || /^\s|\s$/.test(data) ? data.replace(UNSAFE_ALL, '?').trim() : data;
  return value ? `OK ${value}` : 'TEMP empty answer';
}

const UNSAFE = /[\x00-\x1f\x7f]/;
const UNSAFE_ALL = /[\x00-\x1f\x7f]/g;

/** True when `key` has a local part and a domain. */
function isFullAddress(key: string): boolean {
  const at = key.lastIndexOf('@');
  return at > 0 && at < key.length - 1;
}

/** A request that needs the engine's verdict. */
interface Lookup {
  map: 'recipients' | 'access';
  key: string;
}

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
      return isFullAddress(key) ? { map: name, key } : NOTFOUND;
    case 'domains': {
      if (key.includes('@')) return NOTFOUND;
      const domain = validator.servedDomain(key);
      return domain ? ok(domain) : NOTFOUND;
    }
    default:
      return `PERM unknown map ${JSON.stringify(printable(name, 64))}: expected one of ${SOCKETMAP_MAPS.join(', ')}`;
  }
}

/** The reply table: a gate answer as the map's reply. */
function verdictReply({ map, key }: Lookup, r: LookupResult, answer: Answer): string {
  if (answer === 'tempfail') return temp(r.reason);
  if (map === 'recipients') {
    // The value only has to be non-empty; an address (with '@') can never read as "OK".
    // Unknown, not ours and invalid are all NOTFOUND: smtpd then answers 550 5.1.1.
    return answer === 'valid' ? ok(r.canonical?.includes('@') ? r.canonical : key) : NOTFOUND;
  }
  switch (answer) {
    case 'valid':
      return 'OK DUNNO';
    case 'unknown':
      // smtpd prefixes access-map text with "<addr>: Recipient address rejected: ", so this
      // reaches the client as "550 5.1.1 <addr>: Recipient address rejected: User unknown".
      return ACCESS_REJECT;
    case 'invalid':
      return ACCESS_INVALID;
    default:
      return NOTFOUND;
  }
}

export type SocketmapServerOptions = FrontendServerOptions;

/** A socketmap listener on the shared TCP base; call `listen("host:port")` on the result. */
export function createSocketmapServer(options: SocketmapServerOptions): TcpServer {
  const { validator, metrics, logger } = options;
  const gate = options.gate ?? new Gate({ validator, metrics, logger });
  const maxPipeline = options.maxPipeline ?? DEFAULT_MAX_PIPELINE;
  return new TcpServer({
    ...options,
    frontend: 'socketmap',
    handler: (ctx) => handleConnection(ctx, validator, gate, maxPipeline),
  });
}

function handleConnection(ctx: ConnectionContext, validator: RecipientValidator, gate: Gate, maxPipeline: number): void {
  const decoder = new NetstringDecoder();
  const { logger } = ctx;
  const answered = (request: string, reply: string): string => {
    if (reply.charCodeAt(0) === 80 /* P */) gate.metrics.protocolErrors.inc({ frontend: 'socketmap' });
    // Guarded: building the log object costs more than a cached lookup when debug is off.
    if (logger.isLevelEnabled('debug')) logger.debug({ request: printable(request, 300), reply }, 'socketmap lookup');
    return netstringText(reply);
  };
  // The warm path: the engine's answer at hand, no promise (also asked while the client's share
  // of directory work is used up: pipeline.ts).
  const quick = (request: string, routed = route(validator, request)): string | undefined => {
    if (typeof routed === 'string') return answered(request, routed);
    const now = gate.now(routed.key, 'socketmap');
    return now === undefined ? undefined : answered(request, verdictReply(routed, now, gate.answerOf(now)));
  };
  const handle = (request: string): HandlerResult => {
    const routed = route(validator, request);
    const now = quick(request, routed);
    if (now !== undefined || typeof routed === 'string') return now ?? null;
    return gate.lookup(routed.key, 'socketmap').then((r) => answered(request, verdictReply(routed, r, gate.answerOf(r))));
  };
  new ConnectionPipeline<string>(ctx, {
    maxPipeline,
    decode: (chunk, emit) => decoder.feed(chunk, (frame) => emit(frame.toString())),
    partial: () => !decoder.atBoundary,
    handle,
    quick,
    onProtocolError: (err) => {
      // The stream has lost its framing: the pipeline answers what was asked before, then hangs up.
      gate.metrics.protocolErrors.inc({ frontend: 'socketmap' });
      const detail = err instanceof ProtocolError ? { code: err.code, message: err.message } : { message: String(err) };
      ctx.warn('socketmap_bad_frame', { err: detail }, 'malformed netstring, closing connection');
    },
  });
}
