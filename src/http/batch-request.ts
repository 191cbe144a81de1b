/** Validation of the POST /v1/recipients:check body; errors point into it with JSON Pointers. */

export interface FieldError {
  pointer: string;
  detail: string;
}

export type BatchRequest = { ok: true; addresses: string[] } | { ok: false; detail: string; errors: FieldError[] };

/** At most this many field errors are reported, so a bad 1000-item body gives a short answer. */
const MAX_ERRORS = 20;

export function parseBatchRequest(body: unknown, maxItems: number): BatchRequest {
  const fail = (detail: string, errors: FieldError[]): BatchRequest => ({ ok: false, detail, errors });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return fail('The body must be a JSON object {"addresses": [...]}.', [{ pointer: '', detail: 'must be an object' }]);
  }
  const extra = Object.keys(body).filter((k) => k !== 'addresses');
  if (extra.length > 0) {
    return fail(
      `Unknown member(s): ${extra.slice(0, MAX_ERRORS).join(', ')}.`,
      extra.slice(0, MAX_ERRORS).map((k) => ({ pointer: `/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, detail: 'unknown member' })),
    );
  }
  const addresses: unknown = (body as { addresses?: unknown }).addresses;
  if (!Array.isArray(addresses)) {
    return fail('"addresses" must be an array of strings.', [{ pointer: '/addresses', detail: 'must be an array of strings' }]);
  }
  if (addresses.length > maxItems) {
    return fail(`At most ${maxItems} addresses per request; got ${addresses.length}.`, [
      { pointer: '/addresses', detail: `must have at most ${maxItems} items` },
    ]);
  }
  const errors: FieldError[] = [];
  addresses.forEach((a, i) => {
    if (typeof a !== 'string' && errors.length < MAX_ERRORS) errors.push({ pointer: `/addresses/${i}`, detail: 'must be a string' });
  });
  if (errors.length > 0) return fail('Every item of "addresses" must be a string.', errors);
  return { ok: true, addresses: addresses as string[] };
}
