import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../log.js';
import { PERCENT_ENCODING_HINT, sendProblem } from './problem.js';

export const notFound: RequestHandler = (_req, res) => {
  sendProblem(res, 'not-found', 'There is no resource at this path.');
};

/** Shape of the errors body-parser and the router raise (http-errors). */
interface HttpishError {
  status?: number;
  statusCode?: number;
  type?: string;
  limit?: number;
  /** zlib's error number: the body is not what its Content-Encoding says. */
  errno?: number;
}

/**
 * Last handler: client mistakes become 4xx problems; anything else is logged with its stack and
 * answered with a bare 500 problem, so no internals reach the client.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err); // express then closes the connection: the client sees a truncated answer, not a lie
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as HttpishError;
    const status = e.status ?? e.statusCode ?? 500;
    switch (e.type) {
      case 'entity.parse.failed':
        sendProblem(res, 'invalid-request', 'The request body is not valid JSON.');
        return;
      case 'entity.too.large':
        sendProblem(res, 'payload-too-large', `The request body exceeds ${e.limit ?? 'the limit of'} bytes.`);
        return;
      case 'encoding.unsupported':
        sendProblem(res, 'unsupported-media-type', 'The request body must be sent as it is or with Content-Encoding gzip, deflate or br.');
        return;
      case 'charset.unsupported':
        sendProblem(res, 'unsupported-media-type', 'The request body must be UTF-8 JSON.');
        return;
      default:
    }
    // A path parameter the router could not percent-decode (j%F6rg: Latin-1, a stray "%").
    if (err instanceof URIError && status === 400) {
      sendProblem(res, 'invalid-request', `The path is not valid percent-encoded UTF-8. ${PERCENT_ENCODING_HINT}`);
      return;
    }
    if (status === 400 && e.type === undefined && typeof e.errno === 'number') {
      sendProblem(res, 'invalid-request', 'The request body could not be decompressed: it is not what its Content-Encoding says.');
      return;
    }
    if (status >= 400 && status < 500) {
      // e.g. a path segment that is not valid percent-encoding
      sendProblem(res, 'invalid-request', 'The request could not be understood.');
      return;
    }
    logger.error({ err, method: req.method, path: req.path }, 'HTTP request failed');
    sendProblem(res, 'internal-error', 'The server failed to answer this request; the error is logged.');
  };
}
