/**
 * A small SVG bar chart. Three simple charts on the admin page do not justify a chart library's
 * weight and API; this draws bars, a baseline and labels, and stays accessible as a table.
 */
export interface Bar {
  label: string;
  value: number;
  /** Shown under the bar; defaults to the label. Empty hides it (dense charts). */
  tick?: string;
}

export function BarChart({ title, bars, unit }: { title: string; bars: Bar[]; unit?: string }) {
  // Drawn at roughly the size it is shown, so the labels stay readable.
  const width = 340;
  const height = 150;
  const top = 16;
  const bottom = 24;
  const side = 14;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const slot = bars.length > 0 ? (width - 2 * side) / bars.length : width;
  const barWidth = Math.max(2, Math.min(40, slot * 0.7));
  const plot = height - top - bottom;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={title}>
        <line x1="0" x2={width} y1={top + plot} y2={top + plot} className="chart-axis" />
        {bars.map((bar, index) => {
          const h = (bar.value / max) * plot;
          const x = side + index * slot + (slot - barWidth) / 2;
          const tick = bar.tick ?? bar.label;
          return (
            <g key={bar.label}>
              <rect x={x} y={top + plot - h} width={barWidth} height={h} rx="3" className="chart-bar">
                <title>{`${bar.label}: ${bar.value}${unit ? ` ${unit}` : ""}`}</title>
              </rect>
              {bar.value > 0 ? (
                <text x={x + barWidth / 2} y={top + plot - h - 4} className="chart-value" textAnchor="middle">
                  {bar.value}
                </text>
              ) : null}
              {tick ? (
                <text x={x + barWidth / 2} y={height - 8} className="chart-tick" textAnchor="middle">
                  {tick}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      {bars.length === 0 ? <p className="muted">Nothing yet.</p> : null}
    </figure>
  );
}
