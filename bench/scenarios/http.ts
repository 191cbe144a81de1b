/** HTTP single lookup, warm, against a bare express route of the same shape (kept from the first benchmark). */
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.js';
import type { Context } from '../lib/context.js';
import { httpLoad } from '../lib/http-load.js';
import { ROOT, startNode } from '../lib/procs.js';
import { startRcptgate, type Rcptgate } from '../lib/rcptgate.js';
import { fmt } from '../lib/report.js';

const SECONDS = 4;

export async function httpScenario(ctx: Context): Promise<void> {
  const rg = ctx.children.add(await startRcptgate({ dir: ctx.dir, name: 'http', slapd: ctx.slapd })) as Rcptgate;
  const expressPort = await freePort();
  const bare = ctx.children.add(await startNode(path.join(ROOT, 'bench/servers/bare-express.ts'), [String(expressPort)], expressPort, { what: 'bare express route' }));
  const ours = `http://127.0.0.1:${rg.httpPort}/v1/recipients/user1@example.com`;
  const theirs = `http://127.0.0.1:${expressPort}/v1/recipients/user1@example.com`;
  await httpLoad(ours, 4, 1); // JIT warm-up, and the address gets cached
  await httpLoad(theirs, 4, 1);
  const hBare = await httpLoad(theirs, 10, SECONDS);
  const hWarm = await httpLoad(ours, 10, SECONDS);
  await bare.stop();
  await rg.stop();
  ctx.log(`http: express ${fmt(hBare.rate)}/s, rcptgate ${fmt(hWarm.rate)}/s (non-2xx ${hWarm.non2xx}, errors ${hWarm.errors})`);
  ctx.rows.push({ section: 'http', what: 'HTTP bare express constant route (10 conns)', value: hBare.rate, unit: 'req/s', note: `p50 ${hBare.p50} / p99 ${hBare.p99} ms` });
  ctx.rows.push({
    section: 'http',
    what: 'HTTP GET /v1/recipients/{address}, warm (10 conns)',
    value: hWarm.rate,
    unit: 'req/s',
    baseline: { name: 'bare express', value: hBare.rate },
    note: `p50 ${hWarm.p50} / p99 ${hWarm.p99} ms; non-2xx ${hWarm.non2xx}`,
  });
}
