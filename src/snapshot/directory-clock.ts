import type { Config } from '../config/schema.js';
import type { LdapEntry, LdapSearchPlan } from '../directory/presets.js';
import { attributeValues } from '../directory/presets.js';
import type { Logger } from '../log.js';
import type { LdapSession } from './ldap-session.js';

type LdapConfig = Config['directory']['ldap'];

/**
 * Incremental syncs ask for entries changed since the last sync minus this: a change in flight
 * while the last sync read is stamped a moment before it committed.
 */
export const SKEW_MS = 60_000;
/** Widest look back for a change stamp when none is known yet (4^12 minutes: about 30 years). */
const MAX_PROBES = 13;

/** An LDAP GeneralizedTime (`20261130220000Z`, AD's `20261130220000.0Z`, `+hhmm` offsets) in ms; null when unreadable. */
export function parseGeneralizedTime(value: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:[.,](\d+))?(Z|[+-]\d{4})$/.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let t = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!) + (frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0);
  if (zone !== 'Z') t -= (zone!.startsWith('-') ? -1 : 1) * (+zone!.slice(1, 3) * 60 + +zone!.slice(3, 5)) * 60_000;
  return Number.isFinite(t) ? t : null;
}

/**
 * The directory's own time, which stamps modifyTimestamp / whenChanged: incremental syncs ask by
 * it, so a server clock behind ours never hides a change (asked by our clock, a change made just
 * after a sync on a server 5 minutes behind was stamped before the window and waited for the full
 * sync). Active Directory publishes `currentTime` in its rootDSE; OpenLDAP publishes no clock, so
 * its change stamps stand in: the newest one, less our monotonic clock when it was read, is at
 * most where its clock stands against that one. The monotonic clock then tells its time as it moves
 * on, so an idle directory's window moves on too instead of re-listing its last bulk change, and a
 * step of our wall clock (forward by ten minutes, say) does not move it.
 */
export class DirectoryClock {
  private readonly stampAttribute: string;
  /** Directory time minus our monotonic clock, at least (ms): the greatest (stamp − monotonic time when read) seen. */
  private offset: number | null = null;
  /** No entry showed a stamp as far back as we look: not asked again (each look is up to 13 searches). */
  private stampless = false;

  constructor(
    private readonly config: LdapConfig,
    private readonly plan: LdapSearchPlan,
    private readonly logger: Logger,
    private readonly mono: () => number = () => performance.now(),
  ) {
    this.stampAttribute = plan.preset === 'activedirectory' ? 'whenChanged' : 'modifyTimestamp';
  }

  /** A time no later than the directory's clock now (ms), or null when it shows none. */
  async read(session: LdapSession, ourNow: number): Promise<number | null> {
    // A rootDSE the account may not read leaves the change stamps, which the syncs need anyway.
    const root = await session.entry('', ['currentTime']).catch(() => null);
    const current = root ? attributeValues(root as LdapEntry, 'currentTime')[0] : undefined;
    const published = current === undefined ? null : parseGeneralizedTime(current);
    if (published !== null) return published;
    if (this.stampless) return null;
    if (this.offset === null) await this.probe(session, ourNow);
    else await this.scan(session, ourNow, this.mono() + this.offset - SKEW_MS, this.config.pageSize);
    return this.offset === null ? null : this.mono() + this.offset;
  }

  /**
   * Raises `offset` from the stamps of the entries changed since `from` (the first page only with
   * `firstPage`). Stamps past our clock and the margin are left out, by the directory (so a probe's
   * one entry is never one): one entry stamped ahead (a provider's clock that ran fast, a hand-set
   * stamp) would hold the offset up for good, and later changes stamped by a clock behind ours
   * would fall before the window. A directory truly ahead loses nothing: the window takes the
   * earlier of the two clocks.
   */
  private async scan(session: LdapSession, ourNow: number, from: number, pageSize: number, firstPage = false): Promise<boolean> {
    let found = false;
    const filter = `(&${this.plan.changedSinceClause(new Date(Math.max(0, from)))}(!${this.plan.changedSinceClause(new Date(ourNow + SKEW_MS))}))`;
    for await (const page of session.pages(this.config.baseDN, this.config.scope, filter, [this.stampAttribute], [], pageSize)) {
      const readAt = this.mono(); // after the answer: a stamp in it is no later than the directory's clock now
      for (const e of page) {
        const t = parseGeneralizedTime(attributeValues(e as LdapEntry, this.stampAttribute)[0] ?? '');
        if (t !== null && t <= ourNow + SKEW_MS && (this.offset === null || t - readAt > this.offset)) this.offset = t - readAt;
        found ||= t !== null;
      }
      if (firstPage) break;
    }
    return found;
  }

  /**
   * No stamp known yet: looks back from our clock, a minute then four times further each time,
   * until one entry shows a stamp (one entry per search): a lagging directory's newest change is
   * older than our clock by the lag, and an idle one's by the time since its last change.
   */
  private async probe(session: LdapSession, ourNow: number): Promise<void> {
    for (let k = 0, back = SKEW_MS; k < MAX_PROBES; k++, back *= 4) {
      if (await this.scan(session, ourNow, ourNow - back, 1, true)) return;
      if (ourNow - back <= 0) break;
    }
    this.stampless = true;
    this.logger.warn({ attribute: this.stampAttribute, baseDN: this.config.baseDN }, 'no entry under the base shows a change stamp up to our clock: without stamps, incremental syncs cannot find changes, only full syncs do');
  }
}

/**
 * Where an incremental sync's window starts: the last sync's start by our clock and, when known,
 * by the directory's (read then, or now shifted by the difference between the clocks, which a
 * newest stamp only underestimates), the earlier of the two, minus the margin. Asking by the
 * earlier one means neither a server behind ours nor one stepped back since hides a change.
 */
export function windowStart(ourBasis: number, dirBasis: number | null, ourNow: number, dirNow: number | null): Date {
  const byDirectory = dirBasis ?? (dirNow === null ? ourBasis : ourBasis + (dirNow - ourNow));
  return new Date(Math.min(ourBasis, byDirectory) - SKEW_MS);
}

/**
 * When the last sync started, on our clock as it reads now. A wall clock stepped back since (it
 * ran ahead at boot, then NTP) would put that start in the future and the listing would miss
 * every change made meanwhile: then the time elapsed since, by the monotonic clock, says more
 * than the recorded start (null: known only from the file).
 */
export function ourLastStart(lastAt: number, lastMono: number | null, now: number, nowMono: number): number {
  if (lastMono === null) return Math.min(lastAt, now);
  const byElapsed = now - (nowMono - lastMono);
  return byElapsed < lastAt - SKEW_MS ? byElapsed : lastAt;
}
