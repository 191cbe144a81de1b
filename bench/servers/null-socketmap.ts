/**
 * Node's own floor for the warm socketmap path: the plainest `node:net` responder that answers
 * `OK <key>` to every netstring at once, with no engine, no limits and no metrics. Set against
 * the C responder it shows what Node's socket layer costs per round trip before any of
 * rcptgate's work; it is not the ceiling the targets are measured against.
 *
 *   node --import tsx bench/servers/null-socketmap.ts PORT
 */
import net from 'node:net';

const port = Number(process.argv[2]);
net
  .createServer((socket) => {
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let out = '';
      for (;;) {
        const colon = pending.indexOf(58);
        if (colon < 0) break;
        const len = Number(pending.toString('latin1', 0, colon));
        if (pending.length < colon + len + 2) break;
        const request = pending.toString('latin1', colon + 1, colon + 1 + len);
        pending = pending.subarray(colon + len + 2);
        const reply = `OK ${request.slice(request.indexOf(' ') + 1)}`;
        out += `${reply.length}:${reply},`;
      }
      if (out) socket.write(out);
    });
    socket.on('error', () => socket.destroy());
  })
  .listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
