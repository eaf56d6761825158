/** Prometheus counters keyed by label values, rendered in the text exposition format. */

/** One counter metric with a fixed set of label names; the number of series is bounded. */
export class Counter {
  private readonly series = new Map<string, { labels: string; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    /** Beyond this many series, new label values are counted under "other". */
    private readonly maxSeries = 512,
  ) {}

  /** Add `by` (default 1) to one series. */
  inc(labelValues: readonly string[], by = 1): void {
    let key = labelValues.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      const values = this.series.size >= this.maxSeries ? this.labelNames.map(() => "other") : labelValues;
      key = values.join("\u0000");
      s = this.series.get(key);
      if (!s) {
        s = { labels: this.labelNames.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`).join(","), value: 0 };
        this.series.set(key, s);
      }
    }
    s.value += by;
  }

  /** The value of one series (0 when it was never counted). */
  get(labelValues: readonly string[]): number {
    return this.series.get(labelValues.join("\u0000"))?.value ?? 0;
  }

  /** The metric in the text exposition format. */
  render(): string {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const s of this.series.values()) out.push(`${this.name}{${s.labels}} ${s.value}`);
    return `${out.join("\n")}\n`;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
