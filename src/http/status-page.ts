import { createHash } from 'node:crypto';
import type { HealthReport } from '../types.js';

/**
 * A minimal server-rendered status page (GET /). No scripts, no external assets; the one inline
 * style block is allowed by its hash, so the Content-Security-Policy can forbid everything else.
 */
const STYLE = 'body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}th,td{text-align:left;padding:.25rem 1rem .25rem 0}.up{color:#060}.down{color:#a00}';

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

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

export function renderStatusPage(health: HealthReport, version: string): string {
  const dir = health.directory;
  const rows: Array<[string, string]> = [
    ['Version', version],
    ['Uptime', duration(health.uptimeSeconds)],
    ['Ready', health.ready ? 'yes' : `no${health.reason ? ` (${health.reason})` : ''}`],
    ['Directory', `${dir.kind}, ${dir.up ? 'up' : 'down'}`],
    ['Last directory success', dir.lastSuccessAt ?? 'never'],
    ['Last directory error', dir.lastError ?? 'none'],
    ['Snapshot', health.snapshot.loaded ? `${health.snapshot.entries} entries` : 'not loaded'],
    ['Cache entries', String(health.cache.entries)],
  ];
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcptgate ${escapeHtml(version)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style></head>
<body><h1>rcptgate</h1>
<p class="${dir.up ? 'up' : 'down'}">Directory ${dir.up ? 'up' : 'down'}</p>
<table>
${body}
</table>
<p><a href="/openapi.yaml">API description</a> · <a href="/metrics">Metrics</a> · <a href="/readyz">Readiness</a></p>
</body></html>
`;
}
