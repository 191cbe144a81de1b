import type { Response } from 'express';

/**
 * RFC 9457 problem details. Every error the HTTP API returns has one of these stable type URIs;
 * clients branch on `type`, never on `title` or `detail` (openapi.yaml lists them).
 */
export const PROBLEM_BASE = 'https://rcptgate.dev/problems/';

export const Problems = {
  'invalid-address': { status: 400, title: 'Invalid address' },
  'invalid-request': { status: 400, title: 'Invalid request' },
  unauthorized: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Forbidden' },
  'not-found': { status: 404, title: 'Not found' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'payload-too-large': { status: 413, title: 'Payload too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'temporary-failure': { status: 503, title: 'Temporary lookup failure' },
  busy: { status: 503, title: 'Too busy' },
  'internal-error': { status: 500, title: 'Internal server error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemType = keyof typeof Problems;

/** What to do about the path fault people hit most: non-ASCII characters not encoded as UTF-8. */
export const PERCENT_ENCODING_HINT = 'Percent-encode characters outside ASCII as UTF-8 bytes: jörg@example.com is j%C3%B6rg@example.com.';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

export function problemBody(type: ProblemType, detail?: string, extensions: Record<string, unknown> = {}): ProblemBody {
  const { status, title } = Problems[type];
  const body: ProblemBody = { type: PROBLEM_BASE + type, title, status };
  if (detail !== undefined) body.detail = detail;
  for (const [key, value] of Object.entries(extensions)) {
    // Extensions never overwrite the standard members.
    if (!(key in body) && key !== 'detail' && key !== 'instance') body[key] = value;
  }
  return body;
}

export function sendProblem(res: Response, type: ProblemType, detail?: string, extensions?: Record<string, unknown>): void {
  const body = problemBody(type, detail, extensions);
  res.status(body.status).type('application/problem+json').json(body);
}
