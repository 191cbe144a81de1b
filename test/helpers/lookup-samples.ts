/** Socketmap answers recorded under load, and what the load tests ask of them. */

export interface LookupSample {
  /** Whether the directory holds the address asked for. */
  exists: boolean;
  /** The socketmap reply ("OK …", "NOTFOUND ", "TEMP …"). */
  reply: string;
  /** When it was asked and how long the answer took, ms. */
  at: number;
  ms: number;
}

/** A verdict the directory contradicts: the one unforgivable answer, whatever else fails. */
export const isWrong = (s: LookupSample): boolean => (s.exists ? s.reply.startsWith('NOTFOUND') : s.reply.startsWith('OK'));
export const isTemp = (s: LookupSample): boolean => s.reply.startsWith('TEMP');
export const summary = (a: LookupSample[]): string => `${a.length} answers, ${a.filter(isTemp).length} TEMP, ${a.filter(isWrong).length} wrong`;
