/**
 * Postfix policy delegation front end (`check_policy_service inet:host:9466`). Many requests per
 * connection, answered in order; only `protocol_state=RCPT` asks the engine, every other state
 * is `DUNNO` (the policy server has no opinion, Postfix goes on with its restrictions).
 */
import type { Logger } from '../log.js';
import type { HarvestGuard } from '../gate/harvest.js';
import { TcpServer, type ConnectionContext, type FrontendServerOptions } from '../net/tcp-server.js';
import type { LookupResult } from '../recipient/types.js';
import { PolicyRequestDecoder, encodePolicyReply, type PolicyLimits, type PolicyRequest } from './codec.js';
import { ProtocolError } from '../errors.js';

export interface PolicyServerOptions extends FrontendServerOptions {
  /** Directory harvest protection; null or absent disables it. */
  harvest?: HarvestGuard | null;
  limits?: Partial<PolicyLimits>;
}

export const HARVEST_ACTION = '421 4.7.0 Too many unknown recipients';

/**
 * The action for one engine answer. smtpd itself prefixes the text with
 * "<addr>: Recipient address rejected: ", so the client sees exactly
 * "550 5.1.1 <addr>: Recipient address rejected: User unknown" (the README explains why this
 * differs from the text CONTRACT.md gives, which Postfix would double).
 */
export function policyAction(result: LookupResult): string {
  switch (result.verdict) {
    case 'unknown':
      return '550 5.1.1 User unknown';
    case 'tempfail':
      return '451 4.3.0 Recipient address lookup failed, try again later';
    default:
      // valid, not_ours, invalid: leave the decision to the rest of smtpd_recipient_restrictions.
      return 'DUNNO';
  }
}

/** Answers one request. Never rejects: a failure to decide is a 4xx, never a 5xx. */
export async function answerPolicyRequest(request: PolicyRequest, options: Pick<PolicyServerOptions, 'validator' | 'metrics' | 'harvest'> & { logger: Logger }): Promise<string> {
  const { validator, metrics, harvest, logger } = options;
  if (request.get('protocol_state')?.toUpperCase() !== 'RCPT') return 'DUNNO';
  const recipient = request.get('recipient') ?? '';
  if (recipient === '') return 'DUNNO';
  const client = request.get('client_address') || null;
  if (harvest?.isBlocked(client)) {
    metrics.harvestBlocked.inc({ frontend: 'policy' });
    logger.info({ client, recipient }, 'recipient refused: client is harvesting');
    return HARVEST_ACTION;
  }
  let result: LookupResult;
  try {
    result = await validator.lookup(recipient, { frontend: 'policy' });
  } catch (err) {
    // The engine promises never to throw; if it does anyway, defer rather than lose mail.
    logger.error({ err, recipient }, 'validator threw');
    result = { address: recipient, verdict: 'tempfail', source: 'directory', ttlSeconds: 0, reason: 'internal error' };
  }
  if (result.verdict === 'unknown' && harvest?.recordUnknown(client)) {
    metrics.harvestBlocked.inc({ frontend: 'policy' });
    logger.warn({ client, recipient, maxUnknown: harvest.maxUnknown }, 'client exceeded the unknown-recipient limit: harvest protection engaged');
    return HARVEST_ACTION;
  }
  logger.debug({ client, recipient, verdict: result.verdict }, 'policy answer');
  return policyAction(result);
}

function handleConnection(ctx: ConnectionContext, options: PolicyServerOptions): void {
  const decoder = new PolicyRequestDecoder(options.limits);
  const { socket, logger } = ctx;
  let pending = 0;
  let queue: Promise<void> = Promise.resolve();
  let broken = false;

  const answer = (request: PolicyRequest) => {
    if (pending++ === 0) ctx.busy();
    queue = queue
      .then(() => answerPolicyRequest(request, { ...options, logger }))
      .then((action) => {
        if (!socket.destroyed) socket.write(encodePolicyReply(action));
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'policy answer failed');
        ctx.destroy();
      })
      .finally(() => {
        if (--pending === 0) {
          if (broken) ctx.close();
          else ctx.idle();
        }
      });
  };

  socket.on('data', (chunk: Buffer) => {
    if (broken || ctx.draining) return;
    let requests: PolicyRequest[];
    try {
      requests = decoder.push(chunk);
    } catch (err) {
      broken = true;
      options.metrics.protocolErrors.inc({ frontend: 'policy' });
      const code = err instanceof ProtocolError ? err.code : undefined;
      logger.warn({ reason: (err as Error).message, code }, 'malformed policy request, closing connection');
      socket.pause();
      // Answer what came before the garbage, then close.
      if (pending === 0) ctx.close();
      return;
    }
    for (const request of requests) answer(request);
  });
}

/** A policy listener on the shared TCP base; call `listen("127.0.0.1:0")`, then `close()`. */
export function createPolicyServer(options: PolicyServerOptions): TcpServer {
  return new TcpServer({
    frontend: 'policy',
    metrics: options.metrics,
    logger: options.logger,
    maxConnections: options.maxConnections,
    idleTimeoutMs: options.idleTimeoutMs,
    handler: (ctx) => handleConnection(ctx, options),
  });
}
