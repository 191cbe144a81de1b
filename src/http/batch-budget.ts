import type { RequestHandler } from 'express';
import { peerClient } from '../net/host-port.js';
import { sendProblem } from './problem.js';

/**
 * Bytes of batch bodies read or answered at once, across all clients. A batch holds about 14
 * times its body while its lookups run (the parsed addresses, one result each, the answer):
 * unbounded, 1,000 connections posting 240 kB batches with the directory 300 ms away took the
 * process from 120 MB to 1.9 GB, far past a 512 MiB container limit, where the kernel kills every
 * front end at once. With this budget the same flood peaks near 240 MB.
 */
export const BATCH_BYTES_IN_PROGRESS = 4 * 1024 * 1024;

/**
 * Admits POST /v1/recipients:check while its declared body (Content-Length; the body limit when
 * chunked) fits the budget; past it the batch is refused with 503 `busy` before its body is read,
 * and the connection closes so the unread body is not drained. One batch is always admitted. A
 * compressed body counts as `maxBodyBytes`, as a chunked one does: it is held decoded.
 * One client address holds at most half of the budget (its first batch is always admitted): a
 * client that starts batches and never finishes their bodies (each held until Node's request
 * timeout, then started again) held it all, and every other client's batches got 503. An IPv6
 * client is its /64 (net/host-port.ts): from four addresses of one /64 it held it all again.
 */
export function batchBudget(budgetBytes: number, maxBodyBytes: number, ipv6Bits?: number): RequestHandler {
  let inProgress = 0;
  const byClient = new Map<string, number>();
  const share = budgetBytes / 2;
  return (req, res, next) => {
    const declared = Number(req.get('content-length'));
    // A compressed body is held decoded (up to the limit): its Content-Length says nothing of that.
    // Counted by it, brotli batches of 1.6 kB on the wire (240 kB decoded) were all admitted.
    const plain = req.get('transfer-encoding') === undefined && isIdentity(req.get('content-encoding'));
    const bytes = plain && Number.isSafeInteger(declared) && declared >= 0 ? Math.min(Math.max(declared, 1), maxBodyBytes) : maxBodyBytes;
    const client = peerClient(req.socket, ipv6Bits);
    const held = byClient.get(client) ?? 0;
    if ((inProgress > 0 && inProgress + bytes > budgetBytes) || (held > 0 && held + bytes > share)) {
      res.set('Retry-After', '1').set('Connection', 'close');
      // Node would otherwise read the unread body to its end (to discard it) before closing.
      res.once('finish', () => req.socket.destroy());
      sendProblem(res, 'busy', 'Too many lookup batches in progress; retry in a moment.');
      return;
    }
    inProgress += bytes;
    byClient.set(client, held + bytes);
    res.once('close', () => {
      inProgress -= bytes;
      const left = (byClient.get(client) ?? bytes) - bytes;
      if (left > 0) byClient.set(client, left);
      else byClient.delete(client);
    });
    next();
  };
}

/** No Content-Encoding, or `identity`: the body is held as it arrives. */
function isIdentity(encoding: string | undefined): boolean {
  return encoding === undefined || encoding.trim().toLowerCase() === 'identity' || encoding.trim() === '';
}
