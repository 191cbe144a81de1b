import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../log.js';
import { sendProblem } from './problem.js';

export const notFound: RequestHandler = (_req, res) => {
  sendProblem(res, 'not-found', 'There is no resource at this path.');
};

/** Shape of the errors body-parser and the router raise (http-errors). */
interface HttpishError {
  status?: number;
  statusCode?: number;
  type?: string;
  limit?: number;
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
      case 'charset.unsupported':
        sendProblem(res, 'unsupported-media-type', 'The request body must be UTF-8 JSON without content encoding.');
        return;
      default:
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
