import net from 'node:net';

/** A minimal socketmap client for tests: one connection, requests answered in order. */
export class SocketmapClient {
  private buf = Buffer.alloc(0);
  private readonly pending: Array<{ resolve: (s: string) => void; reject: (e: Error) => void }> = [];
  readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      for (;;) {
        const colon = this.buf.indexOf(0x3a);
        if (colon < 0) return;
        const len = Number(this.buf.subarray(0, colon).toString('ascii'));
        if (this.buf.length < colon + 1 + len + 1) return;
        const data = this.buf.subarray(colon + 1, colon + 1 + len).toString('utf8');
        this.buf = this.buf.subarray(colon + 2 + len);
        this.pending.shift()?.resolve(data);
      }
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        for (const p of this.pending.splice(0)) p.reject(new Error('connection closed'));
        resolve();
      }),
    );
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<SocketmapClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => {
        s.off('error', reject);
        resolve(new SocketmapClient(s));
      });
      s.once('error', reject);
    });
  }

  query(map: string, key: string): Promise<string> {
    const payload = Buffer.from(`${map} ${key}`, 'utf8');
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Replies of the `recipients` map to user1..user`count`@example.com, asked one after another on one connection, counted by kind (OK, TEMP, NOTFOUND). */
export async function countUserReplies(port: number, count: number): Promise<Record<string, number>> {
  const client = await SocketmapClient.connect(port);
  const counts: Record<string, number> = {};
  try {
    for (let k = 1; k <= count; k++) {
      const kind = (await client.query('recipients', `user${k}@example.com`)).split(' ')[0]!;
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
  } finally {
    client.close();
  }
  return counts;
}
