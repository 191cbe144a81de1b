/**
 * The one connection pipeline of the socket front ends (socketmap, policy, milter): requests in,
 * replies out in request order, with bounded work per connection and per client address.
 *
 * - At most `maxPipeline` requests are started and not yet answered on a connection. The bound is
 *   checked per request: requests of one read beyond it wait, parsed but not started, and reading
 *   pauses until the bound, the client's share (`ctx.peer`) and the socket's write buffer have
 *   room again. A read is decoded 4 kB per turn of the event loop; the rest goes back to the
 *   socket unread until the next turn, after other connections' reads. Memory per connection is
 *   therefore one read plus `maxPipeline` replies (and one slice's replies).
 * - Replies the handler has at once are written together at the end of the read that carried
 *   them (one write per read, no promise, no later tick); a reply that waits holds back the ones
 *   after it.
 * - A closed connection drops its waiting requests; lookups already running finish (the engine
 *   cannot be interrupted) and their replies are discarded.
 * - A peer that half-closes (last request, then FIN) still gets every reply, then our FIN.
 * - A tarpit delay (`Delayed`) holds only this connection's reply: the client's share of engine
 *   work is released as soon as the engine has answered (docs/harvest-protection.md).
 * - A request that needs no engine work (`quick`: a cached answer) is answered at once even when
 *   the client's share is used up: the share is for directory work (an MTA flooding unknown
 *   recipients got its other sessions' cached answers 0.7 s late, after a turn).
 */
import type { ConnectionContext } from './tcp-server.js';
import { Delayed, ReplyOutput, type HandlerResult, type Immediate, type Reply, type Slot } from './replies.js';

export { Delayed, type HandlerResult, type Reply } from './replies.js';

export interface PipelineOptions<T> {
  /** Feeds one chunk to the decoder, calling `emit` per complete request; throws on bad framing. */
  decode(chunk: Buffer, emit: (request: T) => void): void;
  /** True while part of a request is buffered in the decoder. */
  partial(): boolean;
  /** Answers one request, in order. A throw is a protocol error. */
  handle(request: T): HandlerResult;
  /** The reply when it needs no engine work, else undefined and no trace (`handle` answers it in turn). */
  quick?(request: T): Immediate | undefined;
  /** Reports a protocol error (log, metric); the pipeline answers what came before, then closes. */
  onProtocolError(err: unknown): void;
  /** Requests started and not yet answered on this connection before reading pauses. */
  maxPipeline: number;
}

export const DEFAULT_MAX_PIPELINE = 64;

/**
 * Bytes of a read decoded per turn of the event loop, the rest after other connections' reads: a
 * turn holds at most about 64 kB of replies (47-byte PERMs for 3-byte requests) and takes ms (with
 * reads drained at once, 300 connections of such requests made a Postfix lookup wait 100 s). */
const SLICE = 4_096;

export class ConnectionPipeline<T> {
  private readonly socket: ConnectionContext['socket'];
  private readonly queue: Slot[] = [];
  private backlog: T[] = [];
  private backlogHead = 0;
  private readonly out = new ReplyOutput();
  private completed = false;
  private paused = false;
  /** Part of a read was put back: reading goes on at the next turn of the event loop (resume()). */
  private yielded = false;
  private resumeScheduled = false;
  /** Told the connection it owes answers (`ctx.busy()`): requests started or waiting to start. */
  private owing = false;
  private flushScheduled = false;
  /** No more requests will be read (protocol error, QUIT, peer FIN); close once all is answered. */
  private finishing = false;
  private closed = false;
  private timers: Set<NodeJS.Timeout> | null = null;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly options: PipelineOptions<T>,
  ) {
    this.socket = ctx.socket;
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('drain', this.flow);
    this.socket.on('end', () => this.finish());
    this.socket.once('close', () => this.onClose());
  }

  /** Stop reading; close gracefully once every reply owed is written (e.g. after QUIT). */
  finish(): void {
    this.finishing = true;
    this.flow();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.finishing || this.ctx.draining) return;
    this.completed = false;
    let rest: Buffer | null = chunk.length > SLICE ? chunk.subarray(SLICE) : null;
    try {
      this.options.decode(rest === null ? chunk : chunk.subarray(0, SLICE), this.onRequest);
    } catch (err) {
      this.options.onProtocolError(err);
      this.finishing = true;
      rest = null;
    }
    if (rest !== null && !this.socket.destroyed) {
      // The rest goes back unread until the next turn (resume()): SLICE.
      this.paused = this.yielded = true;
      this.socket.pause();
      this.socket.unshift(rest);
    }
    // A request cut where the read was put back is our delay, not the peer's: no clock for it.
    this.ctx.progress(this.completed, rest === null && !this.finishing && this.options.partial());
    this.out.writeTo(this.socket);
    this.flow();
  }

  private readonly onRequest = (request: T): void => {
    this.completed = true;
    // After a QUIT in the same read: nothing more is answered, so nothing more is looked up.
    if (this.finishing) return;
    if (this.backlogHead === this.backlog.length && this.canStart()) this.dispatch(request);
    else if (this.backlogHead === this.backlog.length && this.answeredNow(request)) return;
    else {
      this.backlog.push(request);
      // A request waiting for its turn is owed too: a FIN or the idle sweep must not end the
      // connection before it is answered.
      this.setOwing(true);
    }
  };

  private canStart(): boolean {
    return !this.closed && this.queue.length < this.options.maxPipeline && !this.socket.writableNeedDrain && !this.ctx.peer.full && !this.ctx.draining;
  }

  /** Only the client's share is used up: answers `request` if it needs no engine work (true). */
  private answeredNow(request: T): boolean {
    const quick = this.options.quick;
    const room = !this.closed && !this.ctx.draining && !this.socket.writableNeedDrain && this.queue.length < this.options.maxPipeline;
    if (quick === undefined || !room) return false;
    let result: Immediate | undefined;
    try {
      result = quick(request);
    } catch (err) {
      this.failed(err);
      return true;
    }
    if (result === undefined) return false;
    this.accept(result);
    return true;
  }

  private failed(err: unknown): void {
    this.options.onProtocolError(err);
    this.finishing = true;
    this.dropBacklog();
  }

  private dropBacklog(): void {
    this.backlog = [];
    this.backlogHead = 0;
  }

  private dispatch(request: T): void {
    let result: HandlerResult;
    try {
      result = this.options.handle(request);
    } catch (err) {
      return this.failed(err);
    }
    if (result instanceof Promise) return this.await(result);
    this.accept(result);
  }

  /** A reply the handler had at once (or none, or one to hold back). */
  private accept(result: Immediate): void {
    if (result === null) return;
    if (typeof result === 'string' || Buffer.isBuffer(result)) {
      if (this.queue.length === 0) this.out.append(result);
      else this.queue.push({ reply: result, done: true });
      return;
    }
    this.hold(this.owe(), result);
  }

  private owe(): Slot {
    const slot: Slot = { reply: null, done: false };
    this.queue.push(slot);
    this.setOwing(true);
    return slot;
  }

  /** A reply that waits for the engine: it counts against the client's share until then. */
  private await(result: Promise<Immediate>): void {
    const slot = this.owe();
    const peer = this.ctx.peer;
    peer.acquire();
    result.then(
      (r) => {
        peer.release();
        if (r instanceof Delayed) this.hold(slot, r);
        else this.settle(slot, r);
      },
      (err: unknown) => {
        peer.release();
        this.ctx.logger.error({ err }, 'request handler failed');
        this.ctx.destroy();
      },
    );
  }

  private hold(slot: Slot, d: Delayed): void {
    if (this.closed) return;
    if (d.ms <= 0) return this.settle(slot, d.reply);
    const timers = (this.timers ??= new Set());
    const t = setTimeout(() => {
      timers.delete(t);
      this.settle(slot, d.reply);
    }, d.ms);
    timers.add(t);
  }

  private settle(slot: Slot, reply: Reply | null): void {
    if (this.closed) return;
    slot.reply = reply;
    slot.done = true;
    if (this.queue[0] === slot && !this.flushScheduled) {
      this.flushScheduled = true; // replies finishing in the same tick share one write
      queueMicrotask(this.flushQueue);
    }
  }

  private readonly flushQueue = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    const { queue } = this;
    let n = 0;
    while (n < queue.length && queue[n]!.done) {
      const reply = queue[n++]!.reply;
      if (reply !== null) this.out.append(reply);
    }
    if (n > 0) queue.splice(0, n);
    this.out.writeTo(this.socket);
    this.flow();
  };

  /** Starts waiting requests while there is room, then pauses or resumes reading. */
  private readonly flow = (): void => {
    if (this.closed) return;
    // Draining: what has not started is not started (as if unread); what has, is answered.
    if (this.ctx.draining && this.backlogHead < this.backlog.length) this.dropBacklog();
    const { backlog } = this;
    while (this.backlogHead < backlog.length && this.canStart()) {
      const request = backlog[this.backlogHead]!;
      backlog[this.backlogHead++] = undefined as T;
      this.dispatch(request);
    }
    if (this.backlogHead === this.backlog.length && this.backlogHead > 0) this.dropBacklog();
    this.out.writeTo(this.socket);
    const waiting = this.backlogHead < this.backlog.length;
    if (!waiting && this.queue.length === 0) this.setOwing(false);
    if (waiting && this.ctx.peer.full) this.ctx.peer.wait(this.flow);
    if (this.finishing && !waiting && this.queue.length === 0) {
      this.ctx.close();
      return;
    }
    if (this.socket.writableNeedDrain && this.socket.writableLength > 0) this.ctx.stalled?.(); // not a write done at once
    const blocked = waiting || this.finishing || this.ctx.draining || this.queue.length >= this.options.maxPipeline || this.socket.writableNeedDrain;
    if (blocked && !this.paused) {
      this.paused = true;
      this.socket.pause();
      // While we do not read, a partly read request is our delay, not the peer's: stop its clock.
      this.ctx.progress(false, false);
    } else if (!blocked && this.paused) {
      this.resume();
    }
  };

  /** Reads on; at the next turn of the event loop if this connection has just had one (SLICE). */
  private resume(): void {
    if (!this.yielded) {
      this.paused = false;
      this.socket.resume();
    } else if (!this.resumeScheduled) {
      this.resumeScheduled = true;
      setImmediate(() => {
        this.resumeScheduled = this.yielded = false;
        this.flow();
      });
    }
  }

  private setOwing(owing: boolean): void {
    if (owing === this.owing) return;
    this.owing = owing;
    if (owing) this.ctx.busy();
    else this.ctx.idle();
  }

  private onClose(): void {
    this.closed = true;
    this.dropBacklog();
    this.queue.length = 0;
    this.ctx.peer.forget(this.flow);
    if (this.timers) for (const t of this.timers) clearTimeout(t);
  }
}
