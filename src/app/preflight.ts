import { ErrorCodes, type DirectoryError } from '../errors.js';
import type { Engine } from './engines.js';

/** Addresses a reload asks the new directory for. */
const SAMPLES = 3;

/**
 * Before a reload installs a new directory: the addresses the running engine most recently found
 * valid must not all read as "no such entry" there. A config file read while being rewritten
 * (cut before the bind account: anonymous searches that see nothing), a wrong base DN or filter,
 * an LDIF file half written: each would make every address `unknown` (reject-all). A bind account
 * the new directory refuses (a password file rewritten wrong) would defer every lookup: refused
 * too. Anything else that fails (a timeout, an unreachable server: a reload during an outage)
 * proves nothing, and the reload goes through.
 */
export async function checkNewDirectory(current: Engine, next: Engine): Promise<void> {
  const cache = current.validator.answerCache;
  // The same answer cache and the same directory (settings, password, CA): the reload cannot have
  // changed what it answers. A kept cache alone is no proof: a new URL may be a server that sees nothing.
  if (cache !== null && next.validator.answerCache === cache && next.directory === current.directory) return;
  const keys = cache?.recentPositives(SAMPLES) ?? [];
  // Nothing known valid yet: the probe (a bind and a base search) still tells a refused account.
  const answers = await Promise.allSettled(keys.length > 0 ? keys.map((k) => next.directory.lookup(k)) : [next.directory.probe().then(() => null)]);
  const refused = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected' && (a.reason as DirectoryError)?.code === ErrorCodes.DIRECTORY_AUTH);
  if (refused) throw new Error(`the new configuration's directory refuses its bind account: ${(refused.reason as Error).message}; keeping the running configuration`);
  if (keys.length === 0 || answers.some((a) => a.status === 'rejected' || a.value?.entry !== null)) return;
  throw new Error(
    `the new configuration's directory finds none of ${keys.join(', ')}, which the running one found valid: keeping the running configuration (wrong base DN, bind account or filter, or a file read while being rewritten?)`,
  );
}
