/** Prometheus histograms keyed by label values, rendered in the text exposition format. */

/** Upper bounds (seconds) of the latency buckets: a CNI call takes from ~1 ms to tens of seconds. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

interface Series {
  labels: string;
  counts: number[];
  sum: number;
  count: number;
}

/** One histogram metric with a fixed set of label names; the number of series is bounded. */
export class Histogram {
  private readonly series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly buckets: readonly number[] = LATENCY_BUCKETS,
    /** Beyond this many series, new label values are counted under "other". */
    private readonly maxSeries = 512,
  ) {}

  /** Record one observation (in the unit of the buckets). */
  observe(labelValues: readonly string[], value: number): void {
    let key = labelValues.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      const values = this.series.size >= this.maxSeries ? this.labelNames.map(() => "other") : labelValues;
      key = values.join("\u0000");
      s = this.series.get(key);
      if (!s) {
        const labels = this.labelNames.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`).join(",");
        s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
        this.series.set(key, s);
      }
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** The observations so far of one series (for tests). */
  count(labelValues: readonly string[]): number {
    return this.series.get(labelValues.join("\u0000"))?.count ?? 0;
  }

  /** The metric in the text exposition format. */
  render(): string {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{${s.labels},le="${b}"} ${s.counts[i]}`));
      out.push(`${this.name}_bucket{${s.labels},le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum{${s.labels}} ${s.sum}`);
      out.push(`${this.name}_count{${s.labels}} ${s.count}`);
    }
    return `${out.join("\n")}\n`;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
