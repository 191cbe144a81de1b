/**
 * `npm run soak`: 1,000,000 distinct random addresses over socketmap against a server in a child
 * process (the real app on the bundled example directory, so rcptgate's own memory and event
 * loop are measured, not a directory's). The server samples its RSS and, with
 * perf_hooks.monitorEventLoopDelay, its event-loop delay. Prints peak RSS, max event-loop delay
 * and cache size; exits 1 when the cache exceeds cache.maxEntries, the event loop stalled over
 * 100 ms, or RSS went past the bound implied by cache.maxEntries.
 *
 *   npm run soak                                   # 1,000,000 addresses, maxEntries 100,000
 *   npm run soak -- --addresses 200000 --max-entries 10000 --connections 8
 */
import { fork, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApp } from '../src/app/app.js';
import { validateConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { SocketmapClient } from '../test/helpers/socketmap-client.js';

/** Generous per-entry allowance (key, answer, LRU bookkeeping are a few hundred bytes). */
const BYTES_PER_ENTRY = 2_048;
/** Working set of a busy process (socket buffers, pipelined requests, young-generation heap) besides the cache. */
const RSS_SLACK = 128 * 2 ** 20;
const MAX_LOOP_DELAY_MS = 100;

interface Stats {
  baselineRss: number;
  peakRss: number;
  maxDelayMs: number;
  p99DelayMs: number;
  cacheEntries: number;
  maxCacheEntries: number;
  /** RSS after a full GC at the end: what the cache really retains. */
  settledRss: number;
  /** V8 heap in use after that GC (RSS keeps pages V8 has not returned to the OS). */
  settledHeap: number;
}

type FromServer = { port: number } | { stats: Stats };

const { values } = parseArgs({
  options: {
    server: { type: 'boolean', default: false },
    addresses: { type: 'string', default: '1000000' },
    'max-entries': { type: 'string', default: '100000' },
    // 32 connections with a few requests each in flight: many MTA processes, not one firehose.
    connections: { type: 'string', default: '32' },
    pipeline: { type: 'string', default: '4' },
  },
});
const maxEntries = Number(values['max-entries']);

async function server(): Promise<void> {
  const app = await createApp({
    loaded: {
      config: validateConfig({ listen: { http: null, socketmap: '127.0.0.1:0', policy: null, milter: null }, cache: { maxEntries }, log: { level: 'silent' } }),
      file: null,
    },
    logger: silentLogger(),
  });
  await app.start();
  global.gc?.();
  const baselineRss = process.memoryUsage().rss;
  let peakRss = baselineRss;
  let maxCacheEntries = 0;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    maxCacheEntries = Math.max(maxCacheEntries, app.health().cache.entries);
  }, 100);
  process.on('message', (msg: string) => {
    if (msg !== 'stats') return;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const cacheEntries = app.health().cache.entries;
    maxCacheEntries = Math.max(maxCacheEntries, cacheEntries);
    delay.disable();
    global.gc?.();
    const { rss: settledRss, heapUsed: settledHeap } = process.memoryUsage();
    process.send!({ stats: { baselineRss, peakRss, settledRss, settledHeap, maxDelayMs: delay.max / 1e6, p99DelayMs: delay.percentile(99) / 1e6, cacheEntries, maxCacheEntries } });
    clearInterval(sampler);
    void app.close().then(() => process.exit(0));
  });
  process.send!({ port: app.addresses.socketmap!.port });
}

function next(child: ChildProcess): Promise<FromServer> {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m as FromServer));
    child.once('exit', (code) => reject(new Error(`soak server exited (${code})`)));
  });
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;

async function driver(): Promise<void> {
  const total = Number(values.addresses);
  const connections = Number(values.connections);
  const pipeline = Number(values.pipeline);
  const child = fork(fileURLToPath(import.meta.url), ['--server', '--max-entries', String(maxEntries)], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const { port } = (await next(child)) as { port: number };
    console.log(`soak: ${total.toLocaleString('en')} distinct addresses, ${connections} connections, pipeline ${pipeline}, cache.maxEntries ${maxEntries.toLocaleString('en')}`);
    const clients = await Promise.all(Array.from({ length: connections }, () => SocketmapClient.connect(port)));
    const started = Date.now();
    let sent = 0;
    let notFound = 0;
    const salt = Math.random().toString(36).slice(2, 8);
    await Promise.all(
      clients.map(async (client) => {
        while (sent < total) {
          const n = Math.min(pipeline, total - sent);
          const base = sent;
          sent += n;
          const replies = await Promise.all(Array.from({ length: n }, (_, i) => client.query('recipients', `soak-${salt}-${base + i}@example.com`)));
          notFound += replies.filter((r) => r === 'NOTFOUND ').length;
          if (Math.floor(base / 100_000) !== Math.floor((base + n) / 100_000)) process.stdout.write(`  ${(base + n).toLocaleString('en')} sent\n`);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    for (const c of clients) c.close();
    child.send('stats');
    const { stats } = (await next(child)) as { stats: Stats };
    const rssBound = stats.baselineRss + maxEntries * BYTES_PER_ENTRY + RSS_SLACK;
    console.log(`answered ${notFound.toLocaleString('en')} NOTFOUND of ${total.toLocaleString('en')} in ${seconds.toFixed(1)} s (${Math.round(total / seconds).toLocaleString('en')}/s)`);
    console.log(`cache entries: max ${stats.maxCacheEntries.toLocaleString('en')} (bound ${maxEntries.toLocaleString('en')})`);
    console.log(`RSS: baseline ${mb(stats.baselineRss)}, peak ${mb(stats.peakRss)} (bound ${mb(rssBound)}), after GC ${mb(stats.settledRss)} (heap in use ${mb(stats.settledHeap)})`);
    console.log(`event-loop delay: max ${stats.maxDelayMs.toFixed(1)} ms, p99 ${stats.p99DelayMs.toFixed(1)} ms (bound ${MAX_LOOP_DELAY_MS} ms)`);
    const failures = [
      notFound !== total && `only ${notFound} of ${total} answered NOTFOUND`,
      stats.maxCacheEntries > maxEntries && 'cache exceeded maxEntries',
      stats.peakRss > rssBound && 'RSS exceeded the bound',
      stats.maxDelayMs > MAX_LOOP_DELAY_MS && 'event loop stalled over 100 ms',
    ].filter(Boolean);
    if (failures.length) {
      console.error(`FAILED: ${failures.join('; ')}`);
      process.exitCode = 1;
    } else {
      console.log('ok');
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

await (values.server ? server() : driver());
