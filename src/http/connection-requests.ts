/**
 * The requests of each HTTP connection that are read and not yet answered, and what follows from
 * them (README "Limits per client address"):
 *  - a connection with more than `maxPipeline` unanswered, or with more than 1 kB of request heads
 *    per request `maxPipeline` allows (64 kB) unanswered beyond its first request, is closed. Node parses pipelined
 *    requests and hands each to the app at once, pausing only once answers pile up unwritten,
 *    and a socket's pause() does not stop its parser: requests whose answers waited for the
 *    directory were read without bound (GET requests on one connection that never reads took
 *    220 MB within 4 s; now 11 MB). No HTTP client in use pipelines (browsers and curl gave it
 *    up), so a connection this far ahead is hostile. Requests of its last read parsed after the
 *    close are dropped unanswered.
 *  - a request Node's parser refuses gets a problem+json 400 naming the fault, once the requests
 *    before it on the connection are answered; then the connection closes. Node answered a bare
 *    400 with no word of why (a lookup of jörg@example.com typed into curl, which sends the UTF-8
 *    raw, got just that), and closed at once, so a good request before the bad one got no answer.
 *    408, 413 and 431 keep Node's bare answers.
 *  - a request whose Transfer-Encoding does not end in chunked gets that 400 at once.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import { PERCENT_ENCODING_HINT, problemBody } from './problem.js';

type ParserError = Error & { code?: string; reason?: string };

/**
 * Bytes of request heads (target and header fields) one connection may have read and not yet
 * answered beyond its first request, per request `maxPipeline` allows (64 kB at the default 64).
 * Each waiting request holds its head: 980 connections pipelining 64 GETs with 14 kB of headers
 * each (under maxPipeline and Node's 16 kB header cap) took the heap past 256 MB, the size Node
 * picks under a 512 MiB container limit, and the process died of "heap out of memory".
 */
export const PENDING_HEAD_BYTES_PER_REQUEST = 1_024;

export class ConnectionRequests {
  private readonly open = new WeakMap<Socket, number>();
  /** Head bytes of the requests counted in `open`. */
  private readonly heads = new WeakMap<Socket, number>();
  /** What to do once a connection has no request left unanswered. */
  private readonly whenAnswered = new WeakMap<Socket, () => void>();
  /** Connections answered 400 for a request of unknowable length (refuse()). */
  private readonly refused = new WeakSet<Socket>();

  private readonly maxHeadBytes: number;

  constructor(
    private readonly maxPipeline: number,
    private readonly onExcess: (socket: Socket) => void,
  ) {
    this.maxHeadBytes = maxPipeline * PENDING_HEAD_BYTES_PER_REQUEST;
  }

  /** Wraps the app: counts each request until its response closes. */
  handler(app: http.RequestListener): http.RequestListener {
    return (req, res) => {
      const socket = req.socket;
      if (socket.destroyed) return;
      const n = (this.open.get(socket) ?? 0) + 1;
      const size = headBytes(req);
      const held = (this.heads.get(socket) ?? 0) + size;
      if (n > this.maxPipeline || (n > 1 && held > this.maxHeadBytes)) {
        this.onExcess(socket);
        socket.destroy();
        return;
      }
      this.open.set(socket, n);
      this.heads.set(socket, held);
      res.once('close', () => {
        const left = (this.open.get(socket) ?? 1) - 1;
        this.open.set(socket, left);
        this.heads.set(socket, (this.heads.get(socket) ?? size) - size);
        if (left === 0) this.whenAnswered.get(socket)?.();
      });
      if (lengthKnown(req)) app(req, res);
      else this.refuse(socket, res);
    };
  }

  /**
   * RFC 9112 §6.3: a request whose Transfer-Encoding does not end in chunked has no knowable
   * length, so the connection cannot go on. Node sometimes waited for a body end that never came,
   * and the request was never answered; now it gets a 400 at once, and the parse error Node may
   * raise on its body afterwards only closes the connection.
   */
  private refuse(socket: Socket, res: http.ServerResponse): void {
    this.refused.add(socket);
    const body = JSON.stringify(problemBody('invalid-request', 'Transfer-Encoding must end with chunked: the length of this request cannot be known.'));
    res.writeHead(400, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  }

  /** Runs `then` once the connection has no request left unanswered. */
  private afterAnswers(socket: Socket, then: () => void): void {
    if ((this.open.get(socket) ?? 0) === 0) then();
    else this.whenAnswered.set(socket, then);
  }

  /** The server's 'clientError': a parse error is answered after the requests before it. */
  clientError(err: ParserError, socket: Socket): void {
    if (this.refused.has(socket)) return this.afterAnswers(socket, () => socket.destroy());
    if (!err.code?.startsWith('HPE_') || err.code.endsWith('_OVERFLOW')) return bare(err, socket);
    const answer = (): void => {
      if (socket.writable) {
        const detail = `The request is not valid HTTP/1.1: ${err.reason ?? err.message}.${err.code === 'HPE_INVALID_URL' ? ` ${PERCENT_ENCODING_HINT}` : ''}`;
        const body = JSON.stringify(problemBody('invalid-request', detail));
        socket.write(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    };
    this.afterAnswers(socket, answer);
  }
}

/** About the bytes a request's head takes: its target and header fields. */
function headBytes(req: http.IncomingMessage): number {
  let bytes = req.url?.length ?? 0;
  for (const field of req.rawHeaders) bytes += field.length + 2;
  return bytes;
}

/** False for a Transfer-Encoding whose last coding is not chunked (`identity`, `gzip`). */
function lengthKnown(req: http.IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  return te === undefined || /(^|,)\s*chunked\s*$/i.test(te);
}

/** Timeouts, oversized headers, resets: as Node answers them (nothing once a response went out). */
function bare(err: ParserError, socket: Socket): void {
  if (socket.writable && socket.bytesWritten === 0) {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.write('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
    else if (err.code === 'HPE_HEADER_OVERFLOW') socket.write('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
    else if (err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') socket.write('HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n');
  }
  socket.destroy();
}
