/**
 * A recipient Postfix asks about twice. With check_policy_service in smtpd_relay_restrictions
 * (evaluated first since Postfix 2.10) and in smtpd_recipient_restrictions, a recipient the first
 * answer lets through (DUNNO) is asked again on the same connection with the very same request.
 * Looked up twice, it was counted twice: in shadow mode every would-be refusal doubled in
 * rcptgate_shadow_rejections_total and its log lines, the count an operator reads before
 * switching to enforce. The second ask gets the first answer without a lookup.
 *
 * The whole request is the key: `instance` names the message and `recipient_count` (recipients
 * accepted so far) tells a second RCPT of the same address, a new recipient, from a second ask.
 */
import type { PolicyRequest } from './codec.js';

export class RepeatedAsk {
  /** The last request let through (DUNNO), as a key; null when none or already asked again. */
  private passed: string | null = null;

  /** The request as a key, or null when it cannot be told apart from the next (no `instance`). */
  static keyOf(request: PolicyRequest): string | null {
    if (!request.get('instance')) return null;
    let key = '';
    for (const [name, value] of request) key += `${name}=${value}\n`;
    return key;
  }

  /** True when `key` is the second ask of the request last let through (a third is new again). */
  isRepeat(key: string | null): boolean {
    if (key === null || key !== this.passed) return false;
    this.passed = null;
    return true;
  }

  /** Records the answer to `key`: only a request let through is asked again. */
  answered(key: string | null, letThrough: boolean): void {
    this.passed = letThrough ? key : null;
  }
}
