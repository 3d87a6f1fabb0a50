/**
 * A small SVG chart of a run's resource samples: memory (RSS), CPU
 * utilisation, and GPU memory when recorded. One strip per series, each
 * with its own scale; no chart library.
 */
import React from 'react';
import {
  cpuPercent,
  formatBytes,
  formatDuration,
  IPoint,
  polylinePoints
} from '../format';
import { ISample } from '../tokens';

const WIDTH = 300;
const HEIGHT = 40;

interface ISeries {
  key: string;
  label: string;
  points: IPoint[];
  format: (v: number) => string;
}

function series(samples: readonly ISample[]): ISeries[] {
  const out: ISeries[] = [];
  const rss = samples
    .filter(s => s.rss !== null && s.rss !== undefined)
    .map(s => ({ t: s.t_ms, v: s.rss as number }));
  if (rss.length) {
    out.push({ key: 'mem', label: 'Memory', points: rss, format: formatBytes });
  }
  const cpu = cpuPercent(samples);
  if (cpu.length) {
    out.push({
      key: 'cpu',
      label: 'CPU',
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
      points: gpu,
      format: formatBytes
    });
  }
  return out;
}

export function ResourceChart(props: {
  samples: readonly ISample[];
}): JSX.Element | null {
  const all = series(props.samples);
  if (all.length === 0) {
    return (
      <div className="jp-LineageChart jp-mod-empty">
        No resource samples were recorded for this run (it was shorter than the
        sampling interval).
      </div>
    );
  }
  const tMax = Math.max(1, ...props.samples.map(s => s.t_ms));
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
        // One sample: a level line across the whole run.
        const pts =
          s.points.length === 1
            ? [
                { t: 0, v: s.points[0].v },
                { t: tMax, v: s.points[0].v }
              ]
            : s.points;
        return (
          <div
            key={s.key}
            className={`jp-LineageChart-strip jp-LineageChart-${s.key}`}
          >
            <div className="jp-LineageChart-label">
              <span>{s.label}</span>
              <span className="jp-LineageChart-range">
                {vMin === vMax
                  ? s.format(vMax)
                  : `${s.format(vMin)} – ${s.format(vMax)}`}
              </span>
            </div>
            <svg
              className="jp-LineageChart-svg"
              viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
              preserveAspectRatio="none"
              role="img"
              aria-label={`${s.label}, peak ${s.format(vMax)}`}
            >
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
        );
      })}
      <div className="jp-LineageChart-axis">
        <span>0</span>
        <span>{formatDuration(tMax)}</span>
      </div>
    </div>
  );
}
