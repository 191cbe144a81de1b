/**
 * One raw SMTP session sending each RCPT argument exactly as given (swaks would rewrite them),
 * from `clientAddress`; the reply line to each RCPT, in order. Text is sent as UTF-8.
 */
import net from 'node:net';

export async function rawRcpts(port: number, clientAddress: string, from: string, rcptArgs: string[]): Promise<string[]> {
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
  const reply = () => Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), closed]);
  const send = (command: string) => {
    const r = reply();
    socket.write(`${command}\r\n`);
    return r;
  };
  try {
    await reply();
    await send('EHLO client.rcptgate.test');
    await send(`MAIL FROM:<${from}>`);
    const out: string[] = [];
    for (const arg of rcptArgs) out.push(await send(`RCPT TO:${arg}`));
    await send('QUIT');
    return out;
  } finally {
    socket.destroy();
  }
}
