/**
 * Postfix policy delegation front end (`check_policy_service inet:host:9466`). Many requests per
 * connection, answered in order; only `protocol_state=RCPT` asks the gate, every other state is
 * `DUNNO` (the policy server has no opinion, Postfix goes on with its restrictions). A request
 * with a `sasl_username` is a logged-in sender, counted by its login (login.ts). Only the
 * codec and the reply table live here; ordering and limits are the shared pipeline's.
 */
import { Gate, clientKey, type Answer, type GateAnswer } from '../gate/gate.js';
import { countedAs } from './login.js';
import type { FrontendServerOptions } from '../gate/frontend-options.js';
import { ConnectionPipeline, DEFAULT_MAX_PIPELINE, Delayed, type HandlerResult } from '../net/pipeline.js';
import { TcpServer, type ConnectionContext } from '../net/tcp-server.js';
import { PolicyRequestDecoder, encodePolicyReply, type PolicyLimits, type PolicyRequest } from './codec.js';
import { ProtocolError } from '../errors.js';
import { RepeatedAsk } from './repeat.js';
import { routedRecipient } from './route.js';

export interface PolicyServerOptions extends FrontendServerOptions {
  limits?: Partial<PolicyLimits>;
}

/**
 * The reply table. smtpd itself prefixes the text with "<addr>: Recipient address rejected: ",
 * so the client sees exactly "550 5.1.1 <addr>: Recipient address rejected: User unknown" (the
 * README explains why this differs from the contract's text, which Postfix would double).
 */
export const POLICY_ACTIONS: Readonly<Record<Answer, string>> = Object.freeze({
  valid: 'DUNNO',
  unknown: '550 5.1.1 User unknown',
  tempfail: '451 4.3.0 Recipient address lookup failed, try again later',
  invalid: '501 5.1.3 Bad recipient address syntax',
  // not_ours, and invalid outside our domains: leave it to the rest of smtpd_recipient_restrictions.
  pass: 'DUNNO',
  harvest: '421 4.7.0 Too many unknown recipients',
});

export const HARVEST_ACTION = POLICY_ACTIONS.harvest;

const DUNNO = encodePolicyReply('DUNNO');
const ENCODED: Readonly<Record<Answer, string>> = Object.freeze(
  Object.fromEntries(Object.entries(POLICY_ACTIONS).map(([k, v]) => [k, encodePolicyReply(v)])) as Record<Answer, string>,
);

function reply(a: GateAnswer): string | Delayed {
  const text = ENCODED[a.answer];
  return a.delayMs > 0 ? new Delayed(text, a.delayMs) : text;
}

/** The recipient of a RCPT request as Postfix routes it and its client, or null for DUNNO. */
function rcptOf(request: PolicyRequest, ctx: Pick<ConnectionContext, 'peer'>): { recipient: string; client: string } | null {
  if (request.get('protocol_state')?.toUpperCase() !== 'RCPT') return null;
  const internal = request.get('recipient') ?? '';
  if (internal === '') return null;
  // Judged as Postfix will route it, not as the raw internal form (route.ts). A request without
  // a client IP address counts against whoever sent it: the connection's peer.
  const client = clientKey(request.get('client_address') ?? '') ?? ctx.peer.address;
  // Postfix sends sasl_username with every request, empty unless the client logged in.
  return { recipient: routedRecipient(internal), client: countedAs(request.get('sasl_username') ?? '', client) };
}

/** Answers one request; never rejects (a failure to decide is a 4xx, never a 5xx). */
export function answerPolicyRequest(request: PolicyRequest, gate: Gate, ctx: Pick<ConnectionContext, 'peer' | 'logger'>, asks = new RepeatedAsk()): HandlerResult {
  const rcpt = rcptOf(request, ctx);
  if (rcpt === null) return DUNNO;
  const key = RepeatedAsk.keyOf(request);
  if (asks.isRepeat(key)) return DUNNO;
  const answer = gate.recipient(rcpt.recipient, rcpt.client, 'policy', ctx.logger);
  const replied = (a: GateAnswer) => (asks.answered(key, ENCODED[a.answer] === DUNNO), reply(a));
  return answer instanceof Promise ? answer.then(replied) : replied(answer);
}

/** The same answer when it needs no directory request, else undefined (pipeline.ts `quick`). */
export function answerPolicyRequestNow(request: PolicyRequest, gate: Gate, ctx: Pick<ConnectionContext, 'peer' | 'logger'>, asks = new RepeatedAsk()): string | Delayed | undefined {
  const rcpt = rcptOf(request, ctx);
  if (rcpt === null) return DUNNO;
  const key = RepeatedAsk.keyOf(request);
  if (asks.isRepeat(key)) return DUNNO;
  const answer = gate.recipientNow(rcpt.recipient, rcpt.client, 'policy', ctx.logger);
  if (answer === undefined) return undefined;
  asks.answered(key, ENCODED[answer.answer] === DUNNO);
  return reply(answer);
}

function handleConnection(ctx: ConnectionContext, options: PolicyServerOptions, gate: Gate): void {
  const decoder = new PolicyRequestDecoder(options.limits);
  const asks = new RepeatedAsk();
  new ConnectionPipeline<PolicyRequest>(ctx, {
    maxPipeline: options.maxPipeline ?? DEFAULT_MAX_PIPELINE,
    decode: (chunk, emit) => void decoder.push(chunk, emit),
    partial: () => !decoder.atBoundary,
    handle: (request) => answerPolicyRequest(request, gate, ctx, asks),
    quick: (request) => answerPolicyRequestNow(request, gate, ctx, asks),
    onProtocolError: (err) => {
      options.metrics.protocolErrors.inc({ frontend: 'policy' });
      const code = err instanceof ProtocolError ? err.code : undefined;
      ctx.warn('policy_bad_request', { reason: (err as Error).message, code }, 'malformed policy request, closing connection');
    },
  });
}

/** A policy listener on the shared TCP base; call `listen("127.0.0.1:0")`, then `close()`. */
export function createPolicyServer(options: PolicyServerOptions): TcpServer {
  const gate = options.gate ?? new Gate(options);
  return new TcpServer({
    ...options,
    frontend: 'policy',
    handler: (ctx) => handleConnection(ctx, options, gate),
  });
}
