/**
 * SMTP sessions that time each RCPT: the milliseconds from sending the command to its reply.
 */
import { timedSmtpSession, type TimedReply } from './raw-smtp.js';

export type { TimedReply };

/** One session from `clientAddress`: EHLO, MAIL, one RCPT per `to` (each timed), QUIT. */
export async function r13mTimedRcpts(port: number, clientAddress: string, from: string, to: string[]): Promise<TimedReply[]> {
  const replies = await timedSmtpSession(port, ['EHLO legit.partner.example', `MAIL FROM:<${from}>`, ...to.map((r) => `RCPT TO:<${r}>`), 'QUIT'], clientAddress);
  return replies.slice(2, 2 + to.length);
}

/** The p-th percentile (nearest rank) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
