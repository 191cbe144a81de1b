/**
 * Which gate answers a recipient of the policy and milter front ends: who logged in is not
 * subject to harvest protection.
 */
import { Gate } from '../gate/gate.js';
import type { FrontendServerOptions } from '../gate/frontend-options.js';

/**
 * The gate for anonymous clients, with harvest protection, and the one for logged-in senders
 * (SMTP AUTH), without: a user is no anonymous harvester, and the address it sends from may be
 * shared (an office NAT, a carrier's CGNAT) with a flagged client. Refusing or delaying its mail
 * for that, or letting its typos flag everyone behind the address, punished the wrong party.
 */
export interface Gates {
  anonymous: Gate;
  authenticated: Gate;
}

export function frontendGates(options: FrontendServerOptions): Gates {
  const anonymous = options.gate ?? new Gate(options);
  if (anonymous.harvest === null) return { anonymous, authenticated: anonymous };
  const { validator, metrics, logger, logLimiter } = options;
  return { anonymous, authenticated: new Gate({ validator, metrics, logger, logLimiter, harvest: null }) };
}
