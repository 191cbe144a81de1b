/**
 * Socketmap load: `connections` clients, each strictly sequential (one request, wait for the
 * reply, next) as Postfix's smtpd processes are. Keys are handed out from one shared cursor, so
 * without `cycle` every key is asked exactly once across all connections (the cold case).
 * Bounded by `maxRequests` and `maxSeconds`, whichever comes first.
 */
import net from 'node:net';
import { summarize, type Latency } from './stats.js';

export interface LoadOptions {
  port: number;
  map: string;
  keys: readonly string[];
  connections: number;
  maxRequests: number;
  maxSeconds: number;
  /** Reuse keys round-robin (warm); otherwise stop when they run out (cold). */
  cycle: boolean;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  rate: number;
  latency: Latency;
  /** Reply kinds: OK, NOTFOUND, TEMP, PERM. */
  replies: Record<string, number>;
}

function frame(text: string): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]);
}

/** One client connection: send, wait for one netstring reply. */
class Client {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: ((reply: string) => void) | null = null;
  private failed: ((err: Error) => void) | null = null;
  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      const colon = this.buf.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(this.buf.subarray(0, colon).toString('latin1'));
      const end = colon + 1 + len;
      if (this.buf.length < end + 1) return;
      const reply = this.buf.subarray(colon + 1, end).toString();
      this.buf = this.buf.subarray(end + 1);
      const w = this.waiting;
      this.waiting = null;
      w?.(reply);
    });
    const fail = (err: Error) => {
      const f = this.failed;
      this.failed = null;
      this.waiting = null;
      f?.(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }
  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
      s.once('connect', () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }
  ask(request: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failed = reject;
      this.socket.write(request);
    });
  }
  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }
}

export async function socketmapLoad(o: LoadOptions): Promise<LoadResult> {
  const clients = await Promise.all(Array.from({ length: o.connections }, () => Client.connect(o.port)));
  const limit = o.cycle ? o.maxRequests : Math.min(o.maxRequests, o.keys.length);
  const latencies = new Float64Array(limit);
  const replies: Record<string, number> = {};
  let next = 0;
  let done = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(o.maxSeconds * 1e9));
  const worker = async (c: Client) => {
    for (;;) {
      const i = next++;
      if (i >= limit) return;
      const t0 = process.hrtime.bigint();
      if (t0 > deadline) return;
      const reply = await c.ask(frame(`${o.map} ${o.keys[i % o.keys.length]}`));
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
      const kind = reply.slice(0, reply.indexOf(' ') >>> 0);
      replies[kind] = (replies[kind] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(clients.map(worker));
  } finally {
    for (const c of clients) c.close();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { requests: done, seconds, rate: done / seconds, latency: summarize(latencies.subarray(0, done)), replies };
}
