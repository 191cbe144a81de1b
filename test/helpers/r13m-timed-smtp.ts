/**
 * SMTP sessions that time each RCPT: the milliseconds from sending the command to its reply.
 */
import net from 'node:net';

export interface TimedReply {
  reply: string;
  ms: number;
}

/** One session from `clientAddress`: EHLO, MAIL, one RCPT per `to` (each timed), QUIT. */
export async function r13mTimedRcpts(port: number, clientAddress: string, from: string, to: string[]): Promise<TimedReply[]> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: clientAddress });
  socket.setEncoding('utf8');
  let buffered = '';
  const waiters: ((line: string) => void)[] = [];
  socket.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      if (line[3] !== '-') waiters.shift()?.(line);
    }
  });
  const closed = new Promise<never>((_, reject) => socket.once('close', () => reject(new Error(`SMTP connection closed; so far: ${buffered}`))));
  closed.catch(() => undefined);
  socket.on('error', () => undefined);
  const send = async (command: string | null): Promise<TimedReply> => {
    const r = Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), closed]);
    const start = performance.now();
    if (command !== null) socket.write(`${command}\r\n`);
    const reply = await r;
    return { reply, ms: performance.now() - start };
  };
  try {
    await send(null);
    await send('EHLO legit.partner.example');
    await send(`MAIL FROM:<${from}>`);
    const out: TimedReply[] = [];
    for (const rcpt of to) out.push(await send(`RCPT TO:<${rcpt}>`));
    await send('QUIT');
    return out;
  } finally {
    socket.destroy();
  }
}

/** The p-th percentile (nearest rank) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
