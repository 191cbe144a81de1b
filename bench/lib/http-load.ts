/** HTTP single-lookup load through autocannon (in-process client; the servers run in children). */
import autocannon from 'autocannon';

export interface HttpRun {
  rate: number;
  requests: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export async function httpLoad(url: string, connections: number, seconds: number): Promise<HttpRun> {
  const r = await autocannon({ url, connections, duration: seconds, pipelining: 1 });
  return { rate: r.requests.total / seconds, requests: r.requests.total, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts };
}
