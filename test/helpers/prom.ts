// Scrapes parsed with parse-prometheus-text-format (a port of Prometheus's
// own text-format parser), plus the checks it leaves out: every family has
// HELP and TYPE, counters end in _total.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

export interface PromSample { value: string; labels?: Record<string, string> }
export interface PromFamily { name: string; help: string; type: string; metrics: PromSample[] }

/** The format's numbers: Go's ParseFloat, which reads +Inf and -Inf where Number() does not. */
const num = (v: string): number => (v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v));

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => PromFamily[];

export class Scrape {
  readonly families: Map<string, PromFamily>;

  constructor(readonly text: string) {
    const list = parse(text);
    this.families = new Map();
    for (const f of list) {
      assert.ok(!this.families.has(f.name), `family ${f.name} appears twice`);
      assert.notEqual(f.help, '', `${f.name} has a HELP line`);
      assert.ok(f.type === 'COUNTER' || f.type === 'GAUGE', `${f.name} has a TYPE line (${f.type})`);
      if (f.type === 'COUNTER') assert.match(f.name, /_total$/, `counter ${f.name} ends in _total`);
      assert.match(f.name, /^xvs_/, `${f.name} has the xvs_ prefix`);
      this.families.set(f.name, f);
    }
  }

  family(name: string): PromFamily {
    const f = this.families.get(name);
    assert.ok(f, `the scrape has ${name}`);
    return f;
  }

  /** The value of the one sample of `name` whose labels include `labels`; undefined when none. */
  find(name: string, labels: Record<string, string> = {}): number | undefined {
    const hits = this.family(name).metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    assert.ok(hits.length <= 1, `${name}${JSON.stringify(labels)} names one series (${hits.length})`);
    return hits[0] === undefined ? undefined : num(hits[0].value);
  }

  value(name: string, labels: Record<string, string> = {}): number {
    const v = this.find(name, labels);
    assert.ok(v !== undefined, `${name}${JSON.stringify(labels)} is in the scrape`);
    return v;
  }

  /** The sum over every sample of `name` whose labels include `labels`. */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.family(name).metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)).reduce((a, m) => a + num(m.value), 0);
  }
}
