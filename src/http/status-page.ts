import { createHash } from 'node:crypto';
import type { Verdict } from '../recipient/types.js';
import type { PublicHealth } from './health-view.js';

/**
 * The status page (GET /): server-rendered, no scripts, no external assets. The one inline style
 * block is allowed by its hash, so the Content-Security-Policy forbids everything else. It shows
 * health only (the public view of the report): no lookup form, no directory error text, since
 * anyone who reaches the HTTP port may read it.
 */
const STYLE =
  'body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:60rem}table{border-collapse:collapse;margin-bottom:1.5rem}' +
  'th,td{text-align:left;padding:.25rem 1rem .25rem 0;vertical-align:top}.up,.valid{color:#060}.down,.unknown,.tempfail{color:#a00}' +
  'code{word-break:break-all}';

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface StatusStats {
  /** Lookups answered since start, by verdict (all front ends). */
  lookupsByVerdict: Partial<Record<Verdict, number>>;
  /** Cache hits / (hits + misses) since start, or null before the first lookup. */
  cacheHitRatio: number | null;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d ` : ''}${d || h ? `${h}h ` : ''}${m}m ${s % 60}s`;
}

const VERDICTS: Verdict[] = ['valid', 'unknown', 'not_ours', 'tempfail', 'invalid'];

function table(id: string, rows: Array<[string, string]>): string {
  return `<table id="${id}">\n${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td data-key="${escapeHtml(k)}">${v}</td></tr>`).join('\n')}\n</table>`;
}

/** `stats` null: the figures that move with each verdict are left out (a client the lookup API would not answer). */
export function renderStatusPage(
  health: PublicHealth,
  version: string,
  stats: StatusStats | null = { lookupsByVerdict: {}, cacheHitRatio: null },
): string {
  const dir = health.directory;
  const snap = health.snapshot;
  const status: Array<[string, string]> = [
    ['Version', escapeHtml(version)],
    ['Uptime', escapeHtml(duration(health.uptimeSeconds))],
    ['Ready', escapeHtml(health.ready ? 'yes' : 'no')],
    ['Reason', escapeHtml(health.reasonCode ?? 'none')],
    ['Directory', `<span class="${dir.up ? 'up' : 'down'}">${escapeHtml(`${dir.kind}, ${dir.up ? 'up' : 'down'}`)}</span>`],
    ['Last directory success', escapeHtml(dir.lastSuccessAt ?? 'never')],
    ['Snapshot', escapeHtml(snap.loaded ? `${snap.entries} addresses, ${duration(snap.ageSeconds ?? 0)} old` : 'not loaded')],
    ['Cache entries', escapeHtml(String(health.cache.entries))],
  ];
  if (stats !== null) status.push(['Cache hit ratio', escapeHtml(stats.cacheHitRatio === null ? 'n/a' : `${(stats.cacheHitRatio * 100).toFixed(1)} %`)]);
  const lookups: Array<[string, string]> = stats === null ? [] : VERDICTS.map((v) => [v, escapeHtml(String(stats.lookupsByVerdict[v] ?? 0))]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcptgate ${escapeHtml(version)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style></head>
<body><h1>rcptgate</h1>
<p class="${dir.up ? 'up' : 'down'}">Directory ${dir.up ? 'up' : 'down'}${health.ready ? '' : ' — not ready'}</p>
${table('status', status)}
${stats === null ? '<p>Lookup figures: for the clients the lookup API answers (or on <code>/metrics</code> of <code>listen.metrics</code>).</p>' : `<h2>Lookups since start</h2>\n${table('lookups', lookups)}`}
<p>Why an address is accepted or rejected: <code>rcptgate check --explain ADDRESS</code> on the host, or
<code>GET /v1/recipients/ADDRESS?explain=1</code> with the admin token.</p>
<p><a href="/openapi.yaml">API description</a> · <a href="/metrics">Metrics</a> · <a href="/readyz">Readiness</a></p>
</body></html>
`;
}
