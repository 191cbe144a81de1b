import net from 'node:net';
import { once } from 'node:events';
import { tlvLength } from './ber-frame.js';

/**
 * A loopback TCP proxy in front of a real LDAP server whose connections can half-fail the way
 * networks do, without the kernel telling anyone:
 *  - blackhole(): stop forwarding both ways and stop reading, no FIN, no RST (a firewall that lost
 *    its state, a dead middlebox); the client's writes pile up until the TCP window is full;
 *  - stopReading(): the server side stops reading requests (answers already sent still arrive);
 *  - hold() / release(): server messages wait in the proxy (so a test knows answers are on their way);
 *  - inject(bytes): bytes to the client as if the server had sent them (a malformed or unsolicited
 *    LDAP message), ahead of every server message still waiting, never inside one;
 *  - cut(): both sockets destroyed.
 * `mode` decides what a new connection gets: `pass`, `blackhole` (accepted, never forwarded:
 * a server that takes TCP but never answers the bind), or `refuse` (accepted then reset at once).
 * `downBytesPerSecond` throttles server → client. `record` keeps every byte the client sent (to see
 * what crossed in clear); `onServerMessage` sees each whole server message once it is forwarded.
 */

export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

export interface FaultConnection {
  readonly id: number;
  /** Bytes client → server and server → client forwarded so far. */
  up: number;
  down: number;
  closed: boolean;
  /** Whole server messages held back (see hold()). */
  readonly waiting: number;
  hold(): void;
  release(): void;
  blackhole(): void;
  stopReading(): void;
  inject(bytes: Buffer): void;
  cut(): void;
}

export interface FaultProxy {
  readonly url: string;
  readonly port: number;
  readonly connections: FaultConnection[];
  mode: ProxyMode;
  /** 0 = unthrottled. */
  downBytesPerSecond: number;
  /** Keep what clients send, in `sent` (off by default). */
  record: boolean;
  /** Everything clients sent while `record` was on. */
  readonly sent: Buffer[];
  onServerMessage: ((conn: FaultConnection, message: Buffer) => void) | null;
  /** Rewrites each whole server LDAP message before it is forwarded (null drops it). */
  transform: ((message: Buffer) => Buffer | null) | null;
  /** Connections not closed yet. */
  open(): FaultConnection[];
  close(): Promise<void>;
}

/** Where the protocolOp of a whole LDAP message starts (after the sequence header and the message ID). */
export function protocolOpOffset(msg: Buffer): number {
  const header = msg[1]! & 0x80 ? 2 + (msg[1]! & 0x7f) : 2;
  return header + 2 + msg[header + 1]!;
}

/**
 * `msg` with its LDAPResult code set to `code`, when it is a SearchResultDone (0x65) with a short
 * length; other messages unchanged.
 */
export function withResultCode(msg: Buffer, code: number): Buffer {
  const op = protocolOpOffset(msg);
  if (msg[op] !== 0x65 || msg[op + 1]! & 0x80 || msg[op + 2] !== 0x0a) return msg;
  const copy = Buffer.from(msg);
  copy[op + 4] = code;
  return copy;
}

/**
 * Splits a byte stream into whole BER TLVs (LDAP messages), so injections never land mid-message.
 * Every LDAP message starts with 0x30; anything else (TLS records, after LDAPS or StartTLS) passes
 * through as it comes from then on.
 */
function framer(onMessage: (msg: Buffer) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  let raw = false;
  return (chunk) => {
    if (raw) return onMessage(chunk);
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (buf.length > 0 && buf[0] !== 0x30) {
        raw = true;
        onMessage(buf);
        return;
      }
      const whole = tlvLength(buf);
      if (whole === 0) return;
      onMessage(buf.subarray(0, whole));
      buf = buf.subarray(whole);
    }
  };
}

export interface FaultProxyOptions {
  /** URL scheme of `url` (default ldap). */
  scheme?: string;
  /** Where the proxy listens (default 127.0.0.1; any 127.0.0.0/8 address is local on Linux). */
  host?: string;
}

export async function startFaultProxy(upstreamPort: number, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const { scheme = 'ldap', host = '127.0.0.1' } = options;
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let nextId = 0;
  const proxy: FaultProxy = {
    url: '',
    port: 0,
    connections: [],
    mode: 'pass',
    downBytesPerSecond: 0,
    record: false,
    sent: [],
    onServerMessage: null,
    transform: null,
    open: () => proxy.connections.filter((c) => !c.closed),
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  const server = net.createServer((client) => {
    sockets.add(client);
    // Each whole LDAP message leaves in its own write: without this, Nagle and delayed ACKs add 40 ms.
    client.setNoDelay(true);
    client.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    if (proxy.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    if (proxy.mode === 'blackhole') {
      client.pause();
      const conn = silentConnection(++nextId, client);
      proxy.connections.push(conn);
      return;
    }
    proxy.connections.push(forwarding(++nextId, client, upstreamPort, proxy, sockets, timers));
  });
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return Object.assign(proxy, { url: `${scheme}://${host}:${port}`, port });
}

function silentConnection(id: number, client: net.Socket): FaultConnection {
  const conn: FaultConnection = {
    id,
    up: 0,
    down: 0,
    closed: false,
    waiting: 0,
    hold: () => undefined,
    release: () => undefined,
    blackhole: () => undefined,
    stopReading: () => undefined,
    inject: (bytes) => void client.write(bytes),
    cut: () => {
      conn.closed = true;
      client.destroy();
    },
  };
  client.on('close', () => (conn.closed = true));
  return conn;
}

function forwarding(id: number, client: net.Socket, upstreamPort: number, proxy: FaultProxy, sockets: Set<net.Socket>, timers: Set<NodeJS.Timeout>): FaultConnection {
  const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
  sockets.add(upstream);
  upstream.setNoDelay(true);
  let holed = false;
  let held = false;
  /** Server → client, in order, through the throttle. */
  const outbox: Buffer[] = [];
  let draining = false;
  const conn: FaultConnection = {
    id,
    up: 0,
    down: 0,
    closed: false,
    get waiting() {
      return outbox.length;
    },
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      drain();
    },
    blackhole: () => {
      holed = true;
      client.pause();
      upstream.pause();
    },
    stopReading: () => {
      upstream.pause();
      client.pause();
    },
    // Straight to the client: ahead of the held messages (not for use while throttled, which may be mid-message).
    inject: (bytes) => {
      conn.down += bytes.length;
      client.write(bytes);
    },
    cut: () => {
      conn.closed = true;
      client.destroy();
      upstream.destroy();
    },
  };
  const drain = (): void => {
    if (draining || holed || held) return;
    const next = outbox.shift();
    if (!next) return;
    const rate = proxy.downBytesPerSecond;
    if (rate <= 0) {
      conn.down += next.length;
      client.write(next);
      drain();
      return;
    }
    // A few bytes at a time, each slice after its share of a second.
    const slice = next.subarray(0, Math.max(1, Math.ceil(rate / 10)));
    if (slice.length < next.length) outbox.unshift(next.subarray(slice.length));
    conn.down += slice.length;
    client.write(slice);
    draining = true;
    const timer = setTimeout(() => {
      timers.delete(timer);
      draining = false;
      drain();
    }, (1000 * slice.length) / rate);
    timers.add(timer);
  };
  const frame = framer((original) => {
    const msg = proxy.transform && original[0] === 0x30 ? proxy.transform(original) : original;
    if (!msg) return;
    outbox.push(msg);
    drain();
    proxy.onServerMessage?.(conn, msg);
  });
  client.on('data', (chunk: Buffer) => {
    if (holed) return;
    if (proxy.record) proxy.sent.push(chunk);
    conn.up += chunk.length;
    upstream.write(chunk);
  });
  upstream.on('data', (chunk: Buffer) => {
    if (!holed) frame(chunk);
  });
  for (const s of [client, upstream]) {
    s.on('error', () => undefined);
    s.on('close', () => {
      sockets.delete(s);
      if (!holed) conn.cut();
      else conn.closed = client.destroyed;
    });
  }
  return conn;
}
