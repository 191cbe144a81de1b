/**
 * Sendmail/Postfix milter protocol constants (libmilter mfdef.h, protocol version 6).
 * Commands and replies are single ASCII bytes; flags are bit masks sent big-endian in OPTNEG.
 */

/** The protocol version we speak (Sendmail 8.14+, Postfix 2.6+). */
export const MILTER_VERSION = 6;
/** Oldest version we answer: 2 is the first with the packet layout we parse. */
export const MILTER_MIN_VERSION = 2;

/** MTA → filter commands (SMFIC_*). */
export const Cmd = {
  ABORT: 0x41, // 'A' abort the current message, no reply
  BODY: 0x42, // 'B' body chunk
  CONNECT: 0x43, // 'C' connection information
  MACRO: 0x44, // 'D' macros for the next command, no reply
  BODYEOB: 0x45, // 'E' end of body
  HELO: 0x48, // 'H' HELO/EHLO
  QUIT_NC: 0x4b, // 'K' quit, another SMTP session follows on this connection
  HEADER: 0x4c, // 'L' one header
  MAIL: 0x4d, // 'M' MAIL FROM
  EOH: 0x4e, // 'N' end of headers
  OPTNEG: 0x4f, // 'O' option negotiation
  QUIT: 0x51, // 'Q' close the connection, no reply
  RCPT: 0x52, // 'R' RCPT TO
  DATA: 0x54, // 'T' DATA
  UNKNOWN: 0x55, // 'U' unknown SMTP command
} as const;

/** Filter → MTA replies (SMFIR_*). */
export const Reply = {
  ACCEPT: 0x61, // 'a'
  CONTINUE: 0x63, // 'c'
  OPTNEG: 0x4f, // 'O'
  REJECT: 0x72, // 'r'
  TEMPFAIL: 0x74, // 't'
  REPLYCODE: 0x79, // 'y' "ddd d.d.d text\0"
} as const;

/** Protocol flags (SMFIP_*): what the MTA should not send, and replies the filter will not send. */
export const Proto = {
  NOCONNECT: 0x1,
  NOHELO: 0x2,
  NOMAIL: 0x4,
  NORCPT: 0x8,
  NOBODY: 0x10,
  NOHDRS: 0x20,
  NOEOH: 0x40,
  NR_HDR: 0x80,
  NOUNKNOWN: 0x100,
  NODATA: 0x200,
  SKIP: 0x400,
  RCPT_REJ: 0x800,
  NR_CONN: 0x1000,
  NR_HELO: 0x2000,
  NR_MAIL: 0x4000,
  NR_RCPT: 0x8000,
  NR_DATA: 0x10000,
  NR_UNKN: 0x20000,
  NR_EOH: 0x40000,
  NR_BODY: 0x80000,
  HDR_LEADSPC: 0x100000,
} as const;

/**
 * Every stage after RCPT that we ask the MTA to skip: rcptgate decides at RCPT and has nothing
 * to say about the message itself, so headers and body never need to cross the wire. Only the
 * flags the MTA offered are requested; whatever it still sends gets SMFIR_CONTINUE.
 */
export const WANTED_SKIPS = Proto.NOHDRS | Proto.NOEOH | Proto.NOBODY | Proto.NOUNKNOWN | Proto.NODATA;

/** Address families in SMFIC_CONNECT (SMFIA_*). */
export const Family = {
  UNKNOWN: 0x55, // 'U' no port or address follow
  UNIX: 0x4c, // 'L'
  INET: 0x34, // '4'
  INET6: 0x36, // '6'
} as const;

/** Actions (SMFIF_*) we request: none — rcptgate never modifies a message. */
export const ACTIONS_NONE = 0;
