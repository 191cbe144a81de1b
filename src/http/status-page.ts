import { createHash } from 'node:crypto';
import type { HealthReport, LookupResult, Verdict } from '../recipient/types.js';

/**
 * The status page (GET /): server-rendered, no scripts, no external assets. The one inline style
 * block is allowed by its hash, so the Content-Security-Policy forbids everything else. The
 * lookup form is a plain GET back to this page: the answer is rendered by the server.
 */
const STYLE =
  'body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:60rem}table{border-collapse:collapse;margin-bottom:1.5rem}' +
  'th,td{text-align:left;padding:.25rem 1rem .25rem 0;vertical-align:top}.up,.valid{color:#060}.down,.unknown,.tempfail{color:#a00}' +
  'input{font:inherit;padding:.25rem;min-width:20rem}button{font:inherit;padding:.25rem .75rem}code{word-break:break-all}';

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "base-uri 'none'",
  "form-action 'self'",
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

function lookupSection(query: string | null, result: LookupResult | null): string {
  const form = `<form method="get" action="/" id="lookup">
<label for="address">Why was this address accepted or rejected?</label><br>
<input id="address" name="address" type="text" value="${escapeHtml(query ?? '')}" placeholder="someone@example.com" required maxlength="320">
<button type="submit">Look up</button>
</form>`;
  if (!result) return form;
  const e = result.explain;
  const rows: Array<[string, string]> = [
    ['Address', `<code>${escapeHtml(result.address)}</code>`],
    ['Verdict', `<strong id="verdict" class="${escapeHtml(result.verdict)}">${escapeHtml(result.verdict)}</strong>`],
  ];
  if (result.shadow) rows.push(['Enforced verdict', escapeHtml(`${result.enforcedVerdict} (shadow mode answers valid)`)]);
  if (result.canonical) rows.push(['Canonical', `<code>${escapeHtml(result.canonical)}</code>`]);
  rows.push(['Source', escapeHtml(result.source)]);
  if (e?.normalized) rows.push(['Normalized', `<code>${escapeHtml(e.normalized)}</code>`]);
  if (e) rows.push(['Decided by', `<span id="rule">${escapeHtml(e.rule)}</span>`]);
  if (e?.tried.length) rows.push(['Keys tried', e.tried.map((t) => `<code>${escapeHtml(t)}</code>`).join(', ')]);
  if (e?.filter) rows.push(['Directory filter', `<code>${escapeHtml(e.filter)}</code>`]);
  if (e?.dn) rows.push(['Entry', `<code>${escapeHtml(e.dn)}</code>`]);
  if (e?.cache) rows.push(['Cache', escapeHtml(e.cache)]);
  if (result.reason ?? e?.detail) rows.push(['Detail', escapeHtml(result.reason ?? e?.detail ?? '')]);
  return `${form}\n<h2>Result</h2>\n${table('result', rows)}`;
}

export function renderStatusPage(
  health: HealthReport,
  version: string,
  stats: StatusStats = { lookupsByVerdict: {}, cacheHitRatio: null },
  lookup: { query: string; result: LookupResult } | null = null,
): string {
  const dir = health.directory;
  const snap = health.snapshot;
  const status: Array<[string, string]> = [
    ['Version', escapeHtml(version)],
    ['Uptime', escapeHtml(duration(health.uptimeSeconds))],
    ['Ready', escapeHtml(health.ready ? 'yes' : `no${health.reason ? ` (${health.reason})` : ''}`)],
    ['Directory', `<span class="${dir.up ? 'up' : 'down'}">${escapeHtml(`${dir.kind}, ${dir.up ? 'up' : 'down'}`)}</span>`],
    ['Last directory success', escapeHtml(dir.lastSuccessAt ?? 'never')],
    ['Last directory error', escapeHtml(dir.lastError ?? 'none')],
    ['Snapshot', escapeHtml(snap.loaded ? `${snap.entries} addresses, ${duration(snap.ageSeconds ?? 0)} old` : 'not loaded')],
    ['Cache entries', escapeHtml(String(health.cache.entries))],
    ['Cache hit ratio', escapeHtml(stats.cacheHitRatio === null ? 'n/a' : `${(stats.cacheHitRatio * 100).toFixed(1)} %`)],
  ];
  const lookups: Array<[string, string]> = VERDICTS.map((v) => [v, escapeHtml(String(stats.lookupsByVerdict[v] ?? 0))]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcptgate ${escapeHtml(version)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style></head>
<body><h1>rcptgate</h1>
<p class="${dir.up ? 'up' : 'down'}">Directory ${dir.up ? 'up' : 'down'}${health.ready ? '' : ' — not ready'}</p>
${table('status', status)}
<h2>Lookups since start</h2>
${table('lookups', lookups)}
<h2>Look up an address</h2>
${lookupSection(lookup?.query ?? null, lookup?.result ?? null)}
<p><a href="/openapi.yaml">API description</a> · <a href="/metrics">Metrics</a> · <a href="/readyz">Readiness</a></p>
</body></html>
`;
}
