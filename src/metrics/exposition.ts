// Prometheus's text exposition format, version 0.0.4: one HELP and one TYPE
// line per family, then its samples. Names and labels are ours, so a bad
// one is a programming error and throws; values are escaped as the format
// asks (label values: backslash, double quote, newline; HELP: backslash,
// newline).

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export const METRIC_TYPE = { counter: 'counter', gauge: 'gauge' } as const;
export type MetricType = keyof typeof METRIC_TYPE;

export type Labels = Readonly<Record<string, string>>;
export type Sample = readonly [Labels, number];

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function value(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labels(l: Labels): string {
  const names = Object.keys(l);
  if (names.length === 0) return '';
  for (const n of names) if (!LABEL.test(n) || n.startsWith('__')) throw new Error(`bad label name ${n}`);
  return `{${names.map((n) => `${n}="${escapeLabel(l[n]!)}"`).join(',')}}`;
}

export function exposition(families: readonly Family[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`bad metric name ${f.name}`);
    if (seen.has(f.name)) throw new Error(`metric ${f.name} given twice`);
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} must end in _total`);
    seen.add(f.name);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    const series = new Set<string>();
    for (const [l, v] of f.samples) {
      const ls = labels(l);
      if (series.has(ls)) throw new Error(`metric ${f.name}${ls} given twice`);
      series.add(ls);
      out.push(`${f.name}${ls} ${value(v)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
