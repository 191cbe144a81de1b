/** What the socket pipeline (pipeline.ts) writes: replies, replies held back, and the replies of one read gathered into one write. */
import type { Socket } from 'node:net';

export type Reply = string | Buffer;
export type Immediate = Reply | null | Delayed;
export type HandlerResult = Immediate | Promise<Immediate>;

/** A reply owed, in request order; `done` once it may be written. */
export interface Slot {
  reply: Reply | null;
  done: boolean;
}

/** A reply to hold back for `ms` before it is written (harvest tarpit). */
export class Delayed {
  constructor(
    readonly reply: Reply | null,
    readonly ms: number,
  ) {}
}

/** Replies appended in order and written together (one write for the text, one for the packets). */
export class ReplyOutput {
  private text = '';
  private buffers: Buffer[] = [];
  /** Length of the replies appended and not yet written. */
  bytes = 0;

  append(reply: Reply): void {
    if (typeof reply === 'string') this.text += reply;
    else this.buffers.push(reply);
    this.bytes += reply.length;
  }

  /** Writes what was appended (nothing to a destroyed socket, which keeps it). */
  writeTo(socket: Socket): void {
    if (socket.destroyed) return;
    this.bytes = 0;
    if (this.text !== '') {
      socket.write(this.text);
      this.text = '';
    }
    if (this.buffers.length > 0) {
      socket.write(this.buffers.length === 1 ? this.buffers[0]! : Buffer.concat(this.buffers));
      this.buffers = [];
    }
  }
}
