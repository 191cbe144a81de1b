/**
 * One raw exchange with a listener: `request` written byte for byte on a new TCP connection to
 * 127.0.0.1, and everything the server sent until it closed the connection. For the requests an
 * HTTP client would refuse to send or would rewrite (malformed, smuggled, pipelined, odd bytes),
 * which several hostile-client tests send; each decides what a connection left open means.
 */
import net from 'node:net';

export interface RawAnswer {
  /** Every byte received, undecoded. */
  out: Buffer;
  /** False if the server had not closed the connection within the timeout (it was then destroyed). */
  closed: boolean;
}

/**
 * `halfClose` ends the request with a FIN (the server sees the client finished writing); without
 * it the connection stays open for writing until the server closes it or `timeoutMs` passes.
 */
export function rawExchange(port: number, request: string | Buffer, options: { timeoutMs: number; halfClose: boolean }): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ out: Buffer.concat(chunks), closed: false });
    }, options.timeoutMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ out: Buffer.concat(chunks), closed: true });
    });
    if (options.halfClose) s.end(request);
    else s.write(request);
  });
}
