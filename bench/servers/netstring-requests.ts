/**
 * The socketmap request framing both do-nothing servers share: netstrings `LEN:NAME KEY,` taken
 * from what a connection sent so far. No checks beyond the framing: these are baselines, not
 * products, and Postfix's own client is what talks to them.
 */

/** Calls `onKey` with the key of each complete request in `pending`; returns the bytes left over. */
export function takeRequests(pending: Buffer, onKey: (key: string) => void): Buffer {
  let rest = pending;
  for (;;) {
    const colon = rest.indexOf(58);
    if (colon < 0) return rest;
    const n = Number(rest.toString('latin1', 0, colon));
    if (rest.length < colon + n + 2) return rest;
    const request = rest.toString('utf8', colon + 1, colon + 1 + n);
    rest = rest.subarray(colon + n + 2);
    onKey(request.slice(request.indexOf(' ') + 1));
  }
}
