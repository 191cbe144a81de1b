/**
 * A TCP proxy on loopback that delays every chunk by DELAY ms in each direction, keeping order:
 * a directory "on another site" without kernel traffic shaping (netem is not available here).
 *
 *   node --import tsx bench/servers/delay-proxy.ts LISTEN_PORT TARGET_PORT DELAY_MS
 */
import net from 'node:net';

const [listenPort, targetPort, delayMs] = process.argv.slice(2).map(Number) as [number, number, number];

/** Forwards chunks from `from` to `to`, each `delayMs` after it arrived, in arrival order. */
function pipeDelayed(from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
}

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
  pipeDelayed(client, upstream);
  pipeDelayed(upstream, client);
  const drop = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', drop);
  upstream.on('error', drop);
  client.on('close', () => setTimeout(() => upstream.destroy(), delayMs + 5));
  upstream.on('close', () => setTimeout(() => client.destroy(), delayMs + 5));
});
server.listen(listenPort, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
