import { deadlineRace } from '../directory/connection.js';
import { attributeValues, type LdapEntry } from '../directory/presets.js';
import type { BindingPlan } from '../directory/types.js';
import type { Config } from '../config/schema.js';
import type { LdapSession } from './ldap-session.js';

type LdapConfig = Config['directory']['ldap'];

/**
 * Which directory a listing came from, beyond what the config names: the base entry's own
 * identifier (OpenLDAP `entryUUID`, Active Directory `objectGUID`). Replicas of one tree share it;
 * another directory built with the same base DN and filter (another site, a staging copy) does
 * not. A snapshot file records it, so one copied from such a directory is refused while this one
 * answers, instead of rejecting every user the other one lacks.
 */
export async function readDirectoryId(session: LdapSession, config: LdapConfig): Promise<string | null> {
  if (config.preset !== 'activedirectory') {
    const entry = await session.entry(config.baseDN, ['entryUUID']).catch(() => null);
    return (entry && attributeValues(entry as LdapEntry, 'entryUUID')[0]) || null;
  }
  // A GUID is 16 bytes, not text: read as bytes, written as hex.
  const entry = await session.entry(config.baseDN, ['objectGUID'], ['objectGUID']).catch(() => null);
  const key = entry && Object.keys(entry).find((k) => k.toLowerCase() === 'objectguid');
  const value = key ? (entry as Record<string, unknown>)[key] : undefined;
  const bytes = Array.isArray(value) ? value[0] : value;
  return Buffer.isBuffer(bytes) && bytes.length > 0 ? bytes.toString('hex') : null;
}

export interface DirectoryIdSource {
  directoryId(binding?: BindingPlan): Promise<string | null>;
}

/** The identifier the directory answering now tells, or null (down, hung past `timeoutMs`, no read right). Never rejects. */
export function directoryIdWithin(source: DirectoryIdSource | null | undefined, binding: BindingPlan | undefined, timeoutMs: number): Promise<string | null> {
  if (!source) return Promise.resolve(null);
  return deadlineRace(source.directoryId(binding), timeoutMs, () => new Error('timeout')).catch(() => null);
}

/**
 * Throws the reason when the directory answering now (`current`, from directoryIdWithin, asked
 * while the file is read) is not the one a snapshot file was listed from. A file without the
 * identifier (older releases), or a directory that cannot tell, passes: the file is trusted as
 * before, and the directory's own answers still decide every miss while it is down (tempfail).
 * `onRefused` runs before the throw (the caller keeps the file's size to vet the next full
 * listing against).
 */
export async function checkDirectoryId(current: Promise<string | null>, recorded: string | undefined, onRefused?: () => void): Promise<void> {
  if (recorded === undefined) return;
  const now = await current;
  if (now === null || now === recorded) return;
  onRefused?.();
  throw new Error(`listed from another directory with the same base DN and filter (its base entry ${recorded}, this one's ${now})`);
}
