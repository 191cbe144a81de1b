/**
 * Milter front end (protocol version 6; Postfix `smtpd_milters`, Sendmail `INPUT_MAIL_FILTER`).
 * Decides at RCPT only and asks the MTA to skip every later stage it offers to skip. One
 * connection may carry several SMTP sessions (SMFIC_QUIT_NC) and messages (SMFIC_ABORT).
 * Packets are handled in order as they arrive (session state is read when a packet is taken);
 * replies go out in order through the shared pipeline. Only the codec and the reply table live
 * here.
 */
import { Gate, clientKey, type Answer, type GateAnswer } from '../gate/gate.js';
import { countedAs } from '../policy/login.js';
import type { FrontendServerOptions } from '../gate/frontend-options.js';
import { ProtocolError } from '../errors.js';
import { ConnectionPipeline, DEFAULT_MAX_PIPELINE, Delayed, type HandlerResult } from '../net/pipeline.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, TcpServer, type ConnectionContext } from '../net/tcp-server.js';
import { ACTIONS_NONE, Cmd, MILTER_MIN_VERSION, MILTER_VERSION, Reply, WANTED_SKIPS } from './constants.js';
import {
  MilterPacketDecoder,
  encodeMilterPacket,
  encodeOptneg,
  encodeReplyCode,
  parseConnect,
  parseMacros,
  parseOptneg,
  parseStrings,
  type MilterPacket,
} from './codec.js';
import { milterRecipient } from './envelope.js';

export interface MilterServerOptions extends FrontendServerOptions {
  /**
   * ms; 0 disables. Once options are negotiated it is raised to at least MILTER_MIN_IDLE_MS: the
   * MTA keeps the milter connection for the whole SMTP session and, with DATA skipped, sends
   * nothing while a large message arrives; closing it then would make the MTA apply
   * milter_default_action (tempfail). Before negotiation the request timeout applies: a peer
   * that connects and says nothing is closed within `requestTimeoutMs`.
   */
  idleTimeoutMs: number;
  maxPacketBytes?: number;
}

export const MILTER_MIN_IDLE_MS = 3_600_000;

export const MILTER_REPLIES = {
  unknown: '550 5.1.1 User unknown',
  tempfail: '451 4.3.0 Recipient address lookup failed',
  invalid: '501 5.1.3 Bad recipient address syntax',
  harvest: '421 4.7.0 Too many unknown recipients',
} as const;

/** The protocol flags we ask for, given what the MTA offered: only skips it supports. */
export function negotiateProtocol(offered: number): number {
  return (WANTED_SKIPS & offered) >>> 0;
}

const CONTINUE = encodeMilterPacket(Reply.CONTINUE);

/**
 * Macros of a RCPT that an SMTP server defines (Postfix smtpd and Sendmail; in Postfix's default
 * milter_rcpt_macros) and Postfix's cleanup never does for mail it takes from sendmail(1): where
 * the recipient is routed. (cleanup does send {daemon_addr} at CONNECT.)
 */
const SMTP_SERVER_MACROS = ['{rcpt_mailer}', '{rcpt_host}'];

/** The reply table. Valid and pass (not ours) continue: the MTA's own checks decide. */
const REPLIES: Readonly<Record<Answer, Buffer>> = Object.freeze({
  valid: CONTINUE,
  pass: CONTINUE,
  unknown: encodeReplyCode(MILTER_REPLIES.unknown),
  tempfail: encodeReplyCode(MILTER_REPLIES.tempfail),
  invalid: encodeReplyCode(MILTER_REPLIES.invalid),
  harvest: encodeReplyCode(MILTER_REPLIES.harvest),
});

function reply(a: GateAnswer): Buffer | Delayed {
  const packet = REPLIES[a.answer];
  return a.delayMs > 0 ? new Delayed(packet, a.delayMs) : packet;
}

/** Per-connection protocol state. */
class MilterSession {
  private negotiated = false;
  /** Client IP from CONNECT, else the {client_addr} macro; null until known. */
  private client: string | null = null;
  /** `{rcpt_addr}` sent with the RCPT about to come (the MTA's resolved recipient). */
  private rcptAddr: string | undefined;
  /**
   * The login of this message's sender: `{auth_authen}` with MAIL (Postfix and Sendmail send it
   * by default), '' when none. A logged-in sender is counted by its login (policy/login.ts).
   */
  private login = '';
  /**
   * Postfix's cleanup passes mail submitted with sendmail(1) to its non_smtpd_milters as a
   * pretend client "localhost [127.0.0.1]", port 0 (no TCP client has port 0). It cannot refuse
   * one recipient of such a message: a reject or tempfail of any RCPT kept the whole message in
   * the maildrop, valid recipients included, retried for ever. Its recipients get continue,
   * uncounted: the primary decides, and an unknown one bounces to the local sender.
   */
  private localSubmission = false;
  /**
   * The macros of the RCPT about to come say where an SMTP server routes it (SMTP_SERVER_MACROS):
   * then it is no local submission, whatever the client looks like. An XCLIENT host may name a
   * client "localhost", 127.0.0.1 and port 0 or [UNAVAILABLE] (Postfix then passes port 0), and
   * every unknown recipient of that SMTP session was accepted.
   */
  private smtpServerMacros = false;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly gate: Gate,
    private readonly pipeline: () => ConnectionPipeline<MilterPacket>,
    /** The idle timeout once negotiated (see MilterServerOptions.idleTimeoutMs). */
    private readonly negotiatedIdleMs: number,
  ) {}

  handle(packet: MilterPacket): HandlerResult {
    const { command, data } = packet;
    if (command === Cmd.OPTNEG) return this.negotiate(data);
    if (!this.negotiated) throw new ProtocolError(`milter command 0x${command.toString(16)} before option negotiation`);
    switch (command) {
      case Cmd.MACRO: {
        const { forCommand, macros } = parseMacros(data);
        const client = macros.get('{client_addr}');
        if (client && !this.client) this.client = clientKey(client);
        if (forCommand === Cmd.RCPT) this.rcptAddr = macros.get('{rcpt_addr}');
        if (forCommand === Cmd.RCPT) this.smtpServerMacros = SMTP_SERVER_MACROS.some((m) => macros.has(m));
        if (forCommand === Cmd.MAIL) this.login = macros.get('{auth_authen}') ?? '';
        return null;
      }
      case Cmd.CONNECT: {
        const info = parseConnect(data);
        // No IP address (unix socket, unknown family, left out, garbage): counts against the peer.
        const ip = (info.family === 'inet' || info.family === 'inet6') && info.address ? clientKey(info.address) : null;
        this.client = ip ?? this.client;
        this.localSubmission = info.port === 0 && info.hostname === 'localhost' && info.address === '127.0.0.1';
        return CONTINUE;
      }
      case Cmd.RCPT:
        return this.rcpt(parseStrings(data));
      case Cmd.ABORT:
        return null; // message aborted; the SMTP session (and its client) goes on
      case Cmd.QUIT_NC:
        // Next SMTP session on this connection: a new client, not logged in.
        this.client = null;
        this.localSubmission = this.smtpServerMacros = false;
        this.login = '';
        return null;
      case Cmd.QUIT:
        this.pipeline().finish();
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
    if (!this.negotiated) this.ctx.setIdleTimeout(this.negotiatedIdleMs);
    this.negotiated = true;
    this.client = null;
    this.localSubmission = this.smtpServerMacros = false;
    this.login = '';
    const reply = { version: Math.min(offer.version, MILTER_VERSION), actions: ACTIONS_NONE, protocol: negotiateProtocol(offer.protocol) };
    this.ctx.logger.debug({ offer, reply }, 'milter options negotiated');
    return encodeOptneg(reply);
  }

  /**
   * handle()'s reply when it needs no directory request, else undefined with the session
   * untouched (pipeline.ts `quick`): every packet but a RCPT is answered from the session alone.
   */
  now(packet: MilterPacket): Buffer | Delayed | null | undefined {
    if (packet.command !== Cmd.RCPT || !this.negotiated || this.isLocalRcpt()) return this.handle(packet) as Buffer | null;
    const answer = this.gate.recipientNow(milterRecipient(parseStrings(packet.data), this.rcptAddr), this.clientKey(), 'milter', this.ctx.logger);
    if (answer === undefined) return undefined;
    this.rcptAddr = undefined;
    this.smtpServerMacros = false;
    return reply(answer);
  }

  private clientKey(): string {
    return countedAs(this.login, this.client ?? this.ctx.peer.address);
  }

  /** The RCPT about to be handled is one of cleanup's local submission (it cannot be refused). */
  private isLocalRcpt(): boolean {
    return this.localSubmission && !this.smtpServerMacros;
  }

  private rcpt(args: string[]): HandlerResult {
    const recipient = milterRecipient(args, this.rcptAddr);
    const local = this.isLocalRcpt();
    this.rcptAddr = undefined;
    this.smtpServerMacros = false;
    if (local) return CONTINUE;
    const answer = this.gate.recipient(recipient, this.clientKey(), 'milter', this.ctx.logger);
    return answer instanceof Promise ? answer.then(reply) : reply(answer);
  }
}

function handleConnection(ctx: ConnectionContext, options: MilterServerOptions, gate: Gate): void {
  const decoder = new MilterPacketDecoder(options.maxPacketBytes === undefined ? {} : { maxPacketBytes: options.maxPacketBytes });
  const idle = options.idleTimeoutMs === 0 ? 0 : Math.max(options.idleTimeoutMs, MILTER_MIN_IDLE_MS);
  const session = new MilterSession(ctx, gate, () => pipeline, idle);
  const pipeline: ConnectionPipeline<MilterPacket> = new ConnectionPipeline<MilterPacket>(ctx, {
    maxPipeline: options.maxPipeline ?? DEFAULT_MAX_PIPELINE,
    decode: (chunk, emit) => void decoder.push(chunk, emit),
    partial: () => decoder.bufferedBytes > 0,
    handle: (packet) => session.handle(packet),
    quick: (packet) => session.now(packet),
    onProtocolError: (err) => {
      options.metrics.protocolErrors.inc({ frontend: 'milter' });
      const code = err instanceof ProtocolError ? err.code : undefined;
      ctx.warn('milter_bad_packet', { reason: (err as Error)?.message, code }, 'milter protocol error, closing connection');
    },
  });
}

/** A milter listener on the shared TCP base; call `listen("127.0.0.1:0")`, then `close()`. */
export function createMilterServer(options: MilterServerOptions): TcpServer {
  const gate = options.gate ?? new Gate(options);
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  return new TcpServer({
    ...options,
    frontend: 'milter',
    // Until it negotiates, a milter peer has no reason to be silent (see idleTimeoutMs).
    idleTimeoutMs: options.idleTimeoutMs === 0 ? 0 : Math.min(options.idleTimeoutMs, requestTimeoutMs || options.idleTimeoutMs),
    handler: (ctx) => handleConnection(ctx, options, gate),
  });
}
