/**
 * Node's own floor for the warm socketmap path: the plainest `node:net` responder that answers
 * `OK <key>` to every netstring at once, with no engine, no limits and no metrics. Set against
 * the C responder it shows what Node's socket layer costs per round trip before any of
 * rcptgate's work; it is not the ceiling the targets are measured against.
 *
 *   node --import tsx bench/servers/null-socketmap.ts PORT
 */
import net from 'node:net';
import { takeRequests } from './netstring-requests.js';

const port = Number(process.argv[2]);
net
  .createServer((socket) => {
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      let out = '';
      pending = takeRequests(pending.length ? Buffer.concat([pending, chunk]) : chunk, (key) => {
        const reply = `OK ${key}`;
        out += `${Buffer.byteLength(reply)}:${reply},`;
      });
      if (out) socket.write(out);
    });
    socket.on('error', () => socket.destroy());
  })
  .listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
