/** The results table: every figure with its same-run baseline, ratio and target verdict. */

export interface Row {
  section: string;
  what: string;
  value: number;
  unit: string;
  /** Baseline measured in the same run. */
  baseline?: { name: string; value: number };
  /** e.g. "≥ 90 %" and whether it passed; absent = informational. */
  target?: { text: string; pass: boolean };
  note?: string;
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

function ratio(r: Row): string {
  if (!r.baseline || r.baseline.value === 0) return '';
  const x = r.value / r.baseline.value;
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(3)}× ${r.baseline.name} (${fmt(r.baseline.value)})`;
}

export function markdownTable(rows: Row[]): string {
  const lines = ['| # | measure | value | vs baseline (same run) | target | result |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const result = r.target ? (r.target.pass ? '**PASS**' : '**FAIL**') : '';
    const value = `${fmt(r.value)} ${r.unit}${r.note ? ` (${r.note})` : ''}`;
    lines.push(`| ${r.section} | ${r.what} | ${value} | ${ratio(r)} | ${r.target?.text ?? ''} | ${result} |`);
  }
  return lines.join('\n');
}

export function consoleTable(rows: Row[]): string {
  const cells = rows.map((r) => [r.section, r.what, `${fmt(r.value)} ${r.unit}`, ratio(r), r.target?.text ?? '', r.target ? (r.target.pass ? 'PASS' : 'FAIL') : '', r.note ?? '']);
  const head = ['#', 'measure', 'value', 'vs baseline', 'target', '', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}
