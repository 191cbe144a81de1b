import { DirectoryError, ErrorCodes } from '../errors.js';

/**
 * Continuation references (RFC 4511 §4.5.3). A server returns one for each part of the search
 * scope it does not hold (an OpenLDAP `referral` object, a subordinate AD domain): the entries
 * there were not searched. rcptgate chases no referrals, so a search that found nothing but was
 * referred elsewhere cannot say "no such entry": the answer is partial.
 *
 * Active Directory returns references from every subtree search of a domain root to naming
 * contexts that hold no recipients: the configuration partition and the DNS application
 * partitions. Those are ignored; any other reference makes a negative answer partial.
 */

/** First RDNs of AD's naming contexts that hold no mail recipients. */
const NO_RECIPIENTS = new Set(['cn=configuration', 'dc=domaindnszones', 'dc=forestdnszones']);

/** The RDNs of the DN in an LDAP URL (`ldap://host/DN?…`), lowercased, spaces around `=` dropped. */
function rdns(uri: string): string[] | null {
  const m = /^ldaps?:\/\/[^/]*\/([^?]*)/i.exec(uri);
  if (!m) return null;
  let dn: string;
  try {
    dn = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  return (dn.match(/(?:[^,\\]|\\.)+/g) ?? []).map((rdn) => rdn.replace(/\s*=\s*/, '=').trim().toLowerCase());
}

/**
 * True when a continuation reference may leave out recipients (anything but AD's non-recipient
 * partitions). In AD those sit straight on a DC= naming context (CN=Configuration,<forest root>,
 * DC=DomainDnsZones,<domain>): the same name anywhere else (a delegated cn=Configuration under
 * ou=people) is a part of the tree like any other.
 */
export function referenceMayHoldRecipients(uri: string): boolean {
  const dn = rdns(uri);
  if (dn === null || dn.length < 2 || !NO_RECIPIENTS.has(dn[0]!)) return true;
  return !dn.slice(1).every((rdn) => /^dc=[^+]+$/.test(rdn));
}

/** The first reference among `uris` that may hold recipients, if any. */
export function recipientReference(uris: Iterable<string>): string | undefined {
  for (const uri of uris) if (referenceMayHoldRecipients(uri)) return uri;
  return undefined;
}

/** A search found nothing but referred part of its scope elsewhere: the key is unknowable, never unknown. */
export function referredError(reference: string, url: string): DirectoryError {
  return new DirectoryError(
    ErrorCodes.DIRECTORY_PARTIAL,
    `LDAP search on ${url} found nothing but referred part of the search base to ${reference}, which rcptgate does not chase, so the entry may be there: ` +
      'point directory.ldap.urls at a server that holds the whole base (OpenLDAP: the chain overlay; AD: the Global Catalog) or directory.ldap.baseDN beside the referral',
  );
}
