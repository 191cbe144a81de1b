/**
 * Milter front end (protocol version 6; Postfix `smtpd_milters`, Sendmail `INPUT_MAIL_FILTER`).
 * Decides at RCPT only and asks the MTA to skip every later stage it offers to skip. One
 * connection may carry several SMTP sessions (SMFIC_QUIT_NC) and messages (SMFIC_ABORT).
 * Packets are handled strictly in order: a RCPT waiting for the directory holds back the rest.
 */
import type { HarvestGuard } from '../gate/harvest.js';
import { ProtocolError } from '../errors.js';
import { TcpServer, type ConnectionContext, type FrontendServerOptions } from '../net/tcp-server.js';
import type { LookupResult } from '../recipient/types.js';
import { ACTIONS_NONE, Cmd, MILTER_MIN_VERSION, MILTER_VERSION, Reply, WANTED_SKIPS } from './constants.js';
import {
  MilterPacketDecoder,
  encodeMilterPacket,
  encodeOptneg,
  encodeReplyCode,
  envelopeAddress,
  parseConnect,
  parseMacros,
  parseOptneg,
  parseStrings,
  type MilterPacket,
} from './codec.js';

export interface MilterServerOptions extends FrontendServerOptions {
  /** Directory harvest protection; null or absent disables it. */
  harvest?: HarvestGuard | null;
  /**
   * ms; 0 disables. Raised to at least MILTER_MIN_IDLE_MS: the MTA keeps the milter connection
   * for the whole SMTP session and, with DATA skipped, sends nothing while a large message
   * arrives; closing it then would make the MTA apply milter_default_action (tempfail).
   */
  idleTimeoutMs: number;
  maxPacketBytes?: number;
}

export const MILTER_MIN_IDLE_MS = 3_600_000;

export const MILTER_REPLIES = {
  unknown: '550 5.1.1 User unknown',
  tempfail: '451 4.3.0 Recipient address lookup failed',
  harvest: '421 4.7.0 Too many unknown recipients',
} as const;

/** The protocol flags we ask for, given what the MTA offered: only skips it supports. */
export function negotiateProtocol(offered: number): number {
  return (WANTED_SKIPS & offered) >>> 0;
}

const CONTINUE = encodeMilterPacket(Reply.CONTINUE);

/** Sendmail writes IPv6 clients as "IPv6:2001:db8::1"; Postfix without the prefix. One key for both. */
function clientKey(address: string): string {
  return address.replace(/^IPv6:/i, '').toLowerCase();
}

/** Per-connection protocol state. */
class MilterSession {
  private negotiated = false;
  /** Client IP from CONNECT, else the {client_addr} macro. */
  private client: string | null = null;
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly options: MilterServerOptions,
  ) {}

  /** Queues a packet; its reply (if any) is written after those of earlier packets. */
  enqueue(packet: MilterPacket): void {
    if (this.pending++ === 0) this.ctx.busy();
    this.queue = this.queue
      .then(() => (this.closed ? undefined : this.handle(packet)))
      .then((reply) => {
        if (reply && !this.ctx.socket.destroyed) this.ctx.socket.write(reply);
      })
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        if (--this.pending === 0 && !this.closed) this.ctx.idle();
      });
  }

  fail(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.options.metrics.protocolErrors.inc({ frontend: 'milter' });
    const code = err instanceof ProtocolError ? err.code : undefined;
    this.ctx.logger.warn({ reason: (err as Error)?.message, code }, 'milter protocol error, closing connection');
    this.ctx.destroy();
  }

  private async handle(packet: MilterPacket): Promise<Buffer | null> {
    const { command, data } = packet;
    if (command === Cmd.OPTNEG) return this.negotiate(data);
    if (!this.negotiated) throw new ProtocolError(`milter command 0x${command.toString(16)} before option negotiation`);
    switch (command) {
      case Cmd.MACRO: {
        const client = parseMacros(data).macros.get('{client_addr}');
        if (client && !this.client) this.client = clientKey(client);
        return null;
      }
      case Cmd.CONNECT: {
        const info = parseConnect(data);
        this.client = (info.family === 'inet' || info.family === 'inet6') && info.address ? clientKey(info.address) : this.client;
        return CONTINUE;
      }
      case Cmd.RCPT:
        return this.rcpt(parseStrings(data));
      case Cmd.ABORT:
        return null; // message aborted; the SMTP session (and its client) goes on
      case Cmd.QUIT_NC:
        this.client = null; // next SMTP session on this connection, new client
        return null;
      case Cmd.QUIT:
        this.closed = true;
        this.ctx.close();
        return null;
      case Cmd.HELO:
      case Cmd.MAIL:
      case Cmd.DATA:
      case Cmd.HEADER:
      case Cmd.EOH:
      case Cmd.BODY:
      case Cmd.BODYEOB:
      case Cmd.UNKNOWN:
        // Stages the MTA could not skip: no opinion. At end of body this accepts the message.
        return CONTINUE;
      default:
        throw new ProtocolError(`unknown milter command 0x${command.toString(16)}`);
    }
  }

  private negotiate(data: Buffer): Buffer {
    const offer = parseOptneg(data);
    if (offer.version < MILTER_MIN_VERSION) throw new ProtocolError(`milter protocol version ${offer.version} is too old`);
    this.negotiated = true;
    this.client = null;
    const reply = { version: Math.min(offer.version, MILTER_VERSION), actions: ACTIONS_NONE, protocol: negotiateProtocol(offer.protocol) };
    this.ctx.logger.debug({ offer, reply }, 'milter options negotiated');
    return encodeOptneg(reply);
  }

  private async rcpt(args: string[]): Promise<Buffer> {
    const { validator, metrics, harvest } = this.options;
    const logger = this.ctx.logger;
    const recipient = envelopeAddress(args);
    const client = this.client;
    if (harvest?.isBlocked(client)) {
      metrics.harvestBlocked.inc({ frontend: 'milter' });
      logger.info({ client, recipient }, 'recipient refused: client is harvesting');
      return encodeReplyCode(MILTER_REPLIES.harvest);
    }
    let result: LookupResult;
    try {
      result = await validator.lookup(recipient, { frontend: 'milter' });
    } catch (err) {
      // The engine promises never to throw; if it does anyway, defer rather than lose mail.
      logger.error({ err, recipient }, 'validator threw');
      result = { address: recipient, verdict: 'tempfail', source: 'directory', ttlSeconds: 0, reason: 'internal error' };
    }
    logger.debug({ client, recipient, verdict: result.verdict }, 'milter answer');
    switch (result.verdict) {
      case 'unknown':
        if (harvest?.recordUnknown(client)) {
          metrics.harvestBlocked.inc({ frontend: 'milter' });
          logger.warn({ client, recipient, maxUnknown: harvest.maxUnknown }, 'client exceeded the unknown-recipient limit: harvest protection engaged');
          return encodeReplyCode(MILTER_REPLIES.harvest);
        }
        return encodeReplyCode(MILTER_REPLIES.unknown);
      case 'tempfail':
        return encodeReplyCode(MILTER_REPLIES.tempfail);
      default:
        // valid, not_ours, invalid: the MTA's own checks decide.
        return CONTINUE;
    }
  }
}

function handleConnection(ctx: ConnectionContext, options: MilterServerOptions): void {
  const decoder = new MilterPacketDecoder(options.maxPacketBytes === undefined ? {} : { maxPacketBytes: options.maxPacketBytes });
  const session = new MilterSession(ctx, options);
  let broken = false;
  ctx.socket.on('data', (chunk: Buffer) => {
    if (broken || ctx.draining) return;
    let packets: MilterPacket[];
    try {
      packets = decoder.push(chunk);
    } catch (err) {
      broken = true;
      ctx.socket.pause();
      session.fail(err);
      return;
    }
    for (const p of packets) {
      session.enqueue(p);
      if (p.command === Cmd.QUIT) {
        broken = true; // nothing after QUIT counts
        break;
      }
    }
  });
}

/** A milter listener on the shared TCP base; call `listen("127.0.0.1:0")`, then `close()`. */
export function createMilterServer(options: MilterServerOptions): TcpServer {
  return new TcpServer({
    frontend: 'milter',
    metrics: options.metrics,
    logger: options.logger,
    maxConnections: options.maxConnections,
    idleTimeoutMs: options.idleTimeoutMs === 0 ? 0 : Math.max(options.idleTimeoutMs, MILTER_MIN_IDLE_MS),
    handler: (ctx) => handleConnection(ctx, options),
  });
}
