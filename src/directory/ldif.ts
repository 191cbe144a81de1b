import { fileURLToPath } from 'node:url';
import { readRegularFileSync } from '../config/regular-file.js';
import { ErrorCodes, RcptgateError } from '../errors.js';
import { foldAddress, normalizeDomain, parseAddress } from '../recipient/address.js';
import { parseLdif, type LdifRecord } from './ldif-parser.js';
import { DISABLED_BY_DESIGN } from './presets.js';
import type { Directory, DirectoryAnswer, DirectoryRecord } from './types.js';

/** The example directory shipped with the package, used when no config is given. */
export const EXAMPLE_LDIF = fileURLToPath(new URL('../../examples/directory.ldif', import.meta.url));

/**
 * A directory read from an LDIF file at start and indexed by every address attribute:
 * `mail`, `mailAlternateAddress`, and AD-style `proxyAddresses` (`SMTP:` primary, `smtp:`
 * secondary). Disabled entries are left out: `accountStatus: disabled` (or `inactive`) or
 * Active Directory's `userAccountControl` with bit 2 set (but for Exchange's mailboxes that are
 * disabled by design, as in the AD preset).
 */
export class LdifDirectory implements Directory {
  readonly kind = 'ldif' as const;
  private readonly byAddress = new Map<string, DirectoryRecord>();
  private readonly records: DirectoryRecord[] = [];
  readonly disabledCount: number;

  private constructor(records: LdifRecord[], readonly path: string | null) {
    let disabled = 0;
    for (const r of records) {
      const rec = toDirectoryRecord(r);
      if (rec === 'disabled') {
        disabled++;
        continue;
      }
      if (!rec) continue;
      this.records.push(rec);
      for (const a of rec.addresses) if (!this.byAddress.has(a)) this.byAddress.set(a, rec);
    }
    this.disabledCount = disabled;
  }

  static fromText(text: string): LdifDirectory {
    return new LdifDirectory(parseLdif(text), null);
  }

  static fromFile(path: string): LdifDirectory {
    let text: string;
    try {
      text = readRegularFileSync(path, 'utf8');
    } catch (err) {
      throw new RcptgateError(ErrorCodes.CONFIG_READ, `cannot read LDIF file ${path} (directory.ldif.path): ${(err as Error).message}`, { cause: err });
    }
    let directory: LdifDirectory;
    try {
      directory = new LdifDirectory(parseLdif(text), path);
    } catch (err) {
      if (err instanceof RcptgateError) throw new RcptgateError(err.code, `${path}: ${err.message}`, { cause: err });
      throw err;
    }
    // Far likelier a file caught mid-rewrite (truncated, then written) or the wrong file than a
    // directory without recipients: served, it would answer `unknown` for every address
    // (reject-all). A reload then keeps the running directory.
    if (directory.size === 0) {
      throw new RcptgateError(
        ErrorCodes.CONFIG_INVALID,
        `${path}: no enabled entry with a mail address (mail, mailAlternateAddress or proxyAddresses): empty, or caught while being rewritten?`,
      );
    }
    return directory;
  }

  get size(): number {
    return this.byAddress.size;
  }

  async lookup(address: string): Promise<DirectoryAnswer> {
    // Folded as the index keys are (parseAddress): toLowerCase() made the Kelvin sign's "\u212Aate@" kate@.
    const rec = this.byAddress.get(foldAddress(address));
    return { entry: rec ? { dn: rec.dn, canonical: rec.canonical } : null };
  }

  async probe(): Promise<void> {}

  async *listAll(): AsyncIterable<DirectoryRecord> {
    yield* this.records;
  }

  knownDomains(): string[] {
    const domains = new Set<string>();
    for (const a of this.byAddress.keys()) domains.add(a.slice(a.lastIndexOf('@') + 1));
    return [...domains].sort();
  }

  async close(): Promise<void> {}
}

function isDisabled(r: LdifRecord): boolean {
  const status = r.attributes.get('accountstatus')?.[0]?.toLowerCase();
  if (status === 'disabled' || status === 'inactive') return true;
  const uac = Number(r.attributes.get('useraccountcontrol')?.[0] ?? 0);
  if (!Number.isInteger(uac) || (uac & 2) === 0) return false;
  // Exchange's shared, room, equipment and linked mailboxes are disabled accounts that receive mail, as in the AD preset.
  const details = r.attributes.get('msexchrecipienttypedetails')?.[0]?.trim();
  return details === undefined || !DISABLED_BY_DESIGN.includes(details);
}

function toDirectoryRecord(r: LdifRecord): DirectoryRecord | 'disabled' | null {
  const mail = r.attributes.get('mail') ?? [];
  const alternates = r.attributes.get('mailalternateaddress') ?? [];
  const proxies = (r.attributes.get('proxyaddresses') ?? []).filter((p) => /^smtp:/i.test(p));
  const primaryProxy = proxies.find((p) => p.startsWith('SMTP:'))?.slice(5);
  const all = [...mail, ...alternates, ...proxies.map((p) => p.slice(5))];
  if (all.length === 0) return null;
  if (isDisabled(r)) return 'disabled';
  const addresses = new Set<string>();
  for (const a of all) {
    const parsed = parseAddress(a.trim());
    if (parsed.ok) addresses.add(parsed.value.address);
    // `@domain`: a catch-all entry, which lookups try last as Postfix's tables do.
    const domain = !parsed.ok && a.trim().startsWith('@') ? normalizeDomain(a.trim().slice(1)) : null;
    if (domain !== null) addresses.add(`@${domain}`);
  }
  if (addresses.size === 0) return null;
  const canonical = primaryProxy ?? mail[0] ?? all[0]!;
  return { dn: r.dn, canonical: canonical.trim(), addresses: [...addresses] };
}
