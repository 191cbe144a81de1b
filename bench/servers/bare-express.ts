/**
 * The HTTP ceiling: a bare express 5 route that returns a constant JSON body of the same shape
 * as rcptgate's lookup answer, with no engine behind it.
 *
 *   node --import tsx bench/servers/bare-express.ts PORT
 */
import express from 'express';

const port = Number(process.argv[2]);
const app = express();
const body = { address: 'user1@example.com', verdict: 'valid', valid: true, canonical: 'user1@example.com', source: 'cache', ttlSeconds: 3600 };
app.get('/v1/recipients/:address', (_req, res) => {
  res.json(body);
});
app.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
