/**
 * A small SVG chart of a run's resource samples: memory (RSS), CPU
 * utilisation, and GPU memory when recorded. One strip per series, each
 * with its own scale; no chart library.
 */
import React from 'react';
import {
  axisTicks,
  cpuPercent,
  formatBytes,
  formatDuration,
  IPoint,
  polylinePoints,
  samplePeriod
} from '../format';
import { ISample } from '../tokens';

const WIDTH = 300;
const HEIGHT = 40;

interface ISeries {
  key: string;
  label: string;
  /** The unit of the axis, said once in the label. */
  unit: string;
  points: IPoint[];
  format: (v: number) => string;
}

function series(samples: readonly ISample[]): ISeries[] {
  const out: ISeries[] = [];
  const rss = samples
    .filter(s => s.rss !== null && s.rss !== undefined)
    .map(s => ({ t: s.t_ms, v: s.rss as number }));
  if (rss.length) {
    out.push({
      key: 'mem',
      label: 'Memory',
      unit: 'RSS',
      points: rss,
      format: formatBytes
    });
  }
  const cpu = cpuPercent(samples);
  if (cpu.length) {
    out.push({
      key: 'cpu',
      label: 'CPU',
      unit: '% of one core',
      points: cpu,
      format: v => `${v.toFixed(0)} %`
    });
  }
  const gpu = samples
    .filter(s => s.gpu_mem !== null && s.gpu_mem !== undefined)
    .map(s => ({ t: s.t_ms, v: s.gpu_mem as number }));
  if (gpu.length) {
    out.push({
      key: 'gpu',
      label: 'GPU memory',
      unit: 'used',
      points: gpu,
      format: formatBytes
    });
  }
  return out;
}

/** A time for the x axis, from 0 at the run's start. */
function timeTick(ms: number): string {
  return ms === 0 ? '0 s' : formatDuration(ms);
}

export function ResourceChart(props: {
  samples: readonly ISample[];
  /** The run's duration, to tell a short run from a missing series. */
  wallMs?: number | null;
}): JSX.Element | null {
  const all = series(props.samples);
  const period = samplePeriod(props.samples);
  const tMax = Math.max(1, ...props.samples.map(s => s.t_ms));
  const span = Math.max(...props.samples.map(s => s.t_ms), 0);
  // Under two sample periods a "series" is one or two readings: a line
  // through them would show a trend that was never measured.
  if (all.length === 0 || period === null || span < 2 * period) {
    const every = period === null ? '' : ` every ${formatDuration(period)}`;
    return (
      <div className="jp-LineageChart jp-mod-empty">
        No chart: this run lasted {formatDuration(props.wallMs ?? null)}, and
        resources are sampled{every}; a chart needs a run of at least two sample
        periods.
      </div>
    );
  }
  return (
    <div
      className="jp-LineageChart"
      role="group"
      aria-label="Resources over time"
    >
      {all.map(s => {
        const vMax = Math.max(...s.points.map(p => p.v));
        const vMin = Math.min(...s.points.map(p => p.v));
        // Scale to the series' own range with a margin, so a change of a
        // few MiB on top of a large process still shows; CPU starts at 0.
        const lo = s.key === 'cpu' ? 0 : vMin;
        const pad = (vMax - lo) * 0.1;
        const pts =
          s.points.length === 1
            ? [
                { t: 0, v: s.points[0].v },
                { t: tMax, v: s.points[0].v }
              ]
            : s.points;
        const ticks = axisTicks(lo, vMax).reverse();
        return (
          <div
            key={s.key}
            className={`jp-LineageChart-strip jp-LineageChart-${s.key}`}
          >
            <div className="jp-LineageChart-label">
              <span>
                {s.label} ({s.unit})
              </span>
              <span className="jp-LineageChart-range">
                peak {s.format(vMax)}
              </span>
            </div>
            <div className="jp-LineageChart-plot">
              <div className="jp-LineageChart-yAxis" aria-hidden="true">
                {ticks.map((t, i) => (
                  <span key={i}>{s.format(t)}</span>
                ))}
              </div>
              <svg
                className="jp-LineageChart-svg"
                viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
                preserveAspectRatio="none"
                role="img"
                aria-label={`${s.label}, from ${s.format(vMin)} to ${s.format(vMax)}`}
              >
                {[0, 0.5, 1].map(f => (
                  <line
                    key={f}
                    className="jp-LineageChart-grid"
                    x1={0}
                    x2={WIDTH}
                    y1={f * HEIGHT}
                    y2={f * HEIGHT}
                    vectorEffect="non-scaling-stroke"
                  />
                ))}
                <polyline
                  className="jp-LineageChart-line"
                  points={polylinePoints(
                    pts,
                    WIDTH,
                    HEIGHT,
                    tMax,
                    lo - pad,
                    vMax + pad
                  )}
                  fill="none"
                  vectorEffect="non-scaling-stroke"
                />
              </svg>
            </div>
          </div>
        );
      })}
      <div
        className="jp-LineageChart-axis"
        aria-label="Time since the run started"
      >
        {axisTicks(0, tMax).map((t, i) => (
          <span key={i}>{timeTick(t)}</span>
        ))}
      </div>
      <div className="jp-LineageChart-note">
        Sampled every {formatDuration(period)}; memory in binary units (1 MiB =
        1024 KiB), CPU in % of one core.
      </div>
    </div>
  );
}
