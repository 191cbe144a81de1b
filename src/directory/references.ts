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

/** The first RDN of the DN in an LDAP URL (`ldap://host/DN?…`), lowercased, spaces around `=` dropped. */
function firstRdn(uri: string): string | null {
  const m = /^ldaps?:\/\/[^/]*\/([^?]*)/i.exec(uri);
  if (!m) return null;
  let dn: string;
  try {
    dn = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  const rdn = /^(?:[^,\\]|\\.)*/.exec(dn)![0];
  return rdn.replace(/\s*=\s*/, '=').trim().toLowerCase();
}

/** True when a continuation reference may leave out recipients (anything but AD's non-recipient partitions). */
export function referenceMayHoldRecipients(uri: string): boolean {
  const rdn = firstRdn(uri);
  return rdn === null || !NO_RECIPIENTS.has(rdn);
}

/** The first reference among `uris` that may hold recipients, if any. */
export function recipientReference(uris: Iterable<string>): string | undefined {
  for (const uri of uris) if (referenceMayHoldRecipients(uri)) return uri;
  return undefined;
}

/** A search found nothing but referred part of its scope elsewhere: the key is unknowable, never unknown. */
export function referredError(reference: string, url: string): DirectoryError {
  return new DirectoryError(
    ErrorCodes.DIRECTORY_PROTOCOL,
    `LDAP search on ${url} found nothing but referred part of the search base to ${reference}, which rcptgate does not chase, so the entry may be there: ` +
      'point directory.ldap.urls at a server that holds the whole base (OpenLDAP: the chain overlay; AD: the Global Catalog) or directory.ldap.baseDN beside the referral',
  );
}
