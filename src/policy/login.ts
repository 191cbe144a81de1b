/**
 * Whom harvest protection counts a recipient against: a logged-in sender (SMTP AUTH: a policy
 * request's `sasl_username`, the milter's `{auth_authen}`) by its login, anyone else by its client
 * address. The address a user sends from may be shared (an office NAT, a carrier's CGNAT) with a
 * flagged client: that must not refuse or delay the user's mail, nor the user's typos flag the
 * others behind it. A stolen login used to harvest is still counted, and flagged, as one client.
 */

/** Logins longer than any real one are cut (a client that reaches the port directly may send any text): bounded memory per key. */
const MAX_LOGIN = 320;

/**
 * Logins are counted case-folded: SASL backends that check against LDAP or AD, or Dovecot's
 * default username format, accept CAROL and cArOl as carol, and each spelling counted apart gave
 * one stolen password 2^n fresh budgets for a login of n letters.
 */
export function countedAs(login: string, client: string): string {
  return login === '' ? client : `login ${login.toLowerCase().slice(0, MAX_LOGIN)}`;
}
