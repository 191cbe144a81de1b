/**
 * The do-nothing socketmap responder: the ceiling for any socketmap server behind the same
 * client. It frames netstrings and answers `OK <key>` at once — no engine, no cache, no logging.
 * (The reference responder is written in C; ours must be TypeScript, like everything here.)
 *
 *   node --import tsx bench/servers/null-socketmap.ts PORT
 */
import net from 'node:net';

const port = Number(process.argv[2]);
const COLON = 0x3a;

function frame(text: string): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]);
}

const server = net.createServer({ noDelay: true }, (socket) => {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    const replies: Buffer[] = [];
    for (;;) {
      const colon = pending.indexOf(COLON);
      if (colon < 0) break;
      const len = Number(pending.subarray(0, colon).toString('latin1'));
      if (!Number.isInteger(len) || len > 10_000) {
        socket.destroy();
        return;
      }
      const end = colon + 1 + len;
      if (pending.length < end + 1) break;
      const request = pending.subarray(colon + 1, end).toString();
      const space = request.indexOf(' ');
      replies.push(frame(`OK ${request.slice(space + 1)}`));
      pending = pending.subarray(end + 1);
    }
    if (replies.length) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
  });
  socket.on('error', () => socket.destroy());
});
server.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
