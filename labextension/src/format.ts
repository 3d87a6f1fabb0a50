/**
 * Formatting of durations, sizes, times and code for the panel. Pure
 * functions, unit-tested in test/format.test.ts.
 */
import { LineageError } from './tokens';

/** A duration in ms as people read it: 850 µs, 12 ms, 1.24 s, 3 min 05 s. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !isFinite(ms)) {
    return '—';
  }
  const neg = ms < 0;
  const v = Math.abs(ms);
  let text: string;
  if (v < 1) {
    text = `${Math.round(v * 1000)} µs`;
  } else if (v < 10) {
    text = `${v.toFixed(1)} ms`;
  } else if (v < 1000) {
    text = `${Math.round(v)} ms`;
  } else if (v < 10000) {
    text = `${(v / 1000).toFixed(2)} s`;
  } else if (v < 60000) {
    text = `${(v / 1000).toFixed(1)} s`;
  } else if (v < 3600000) {
    const m = Math.floor(v / 60000);
    const s = Math.floor((v % 60000) / 1000);
    text = `${m} min ${String(s).padStart(2, '0')} s`;
  } else {
    const h = Math.floor(v / 3600000);
    const m = Math.floor((v % 3600000) / 60000);
    text = `${h} h ${String(m).padStart(2, '0')} min`;
  }
  return neg ? `−${text}` : text;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** A byte count: 512 B, 1.5 KiB, 81.2 MiB, 3.00 GiB. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '—';
  }
  const neg = bytes < 0;
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const text =
    u === 0
      ? `${Math.round(v)} B`
      : `${v >= 100 ? Math.round(v) : v.toFixed(v >= 10 ? 1 : 2)} ${UNITS[u]}`;
  return neg ? `−${text}` : text;
}

/** A signed delta for the compare view: +12 ms, −1.5 MiB, ±0. */
export function formatDelta(
  value: number | null | undefined,
  kind: 'ms' | 'bytes' | 'percent'
): string {
  if (value === null || value === undefined || !isFinite(value)) {
    return '—';
  }
  if (value === 0) {
    return '±0';
  }
  const sign = value > 0 ? '+' : '';
  if (kind === 'ms') {
    return sign + formatDuration(value);
  }
  if (kind === 'bytes') {
    return sign + formatBytes(value);
  }
  return `${sign}${value.toFixed(0)} %`.replace('-', '−');
}

/**
 * When a run started, relative to now for recent runs (just now, 5 s ago,
 * 3 min ago, 2 h ago), else a date: "Mar 4, 14:05" (same year) or
 * "2025-03-04".
 */
export function formatWhen(ms: number, now: number = Date.now()): string {
  if (!isFinite(ms)) {
    return '—';
  }
  const d = now - ms;
  if (d < 0) {
    return 'just now';
  }
  if (d < 5000) {
    return 'just now';
  }
  if (d < 60000) {
    return `${Math.floor(d / 1000)} s ago`;
  }
  if (d < 3600000) {
    return `${Math.floor(d / 60000)} min ago`;
  }
  if (d < 86400000) {
    return `${Math.floor(d / 3600000)} h ago`;
  }
  const date = new Date(ms);
  const today = new Date(now);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (date.getFullYear() === today.getFullYear()) {
    const month = date.toLocaleString('en', { month: 'short' });
    return `${month} ${date.getDate()}, ${pad(date.getHours())}:${pad(
      date.getMinutes()
    )}`;
  }
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(
    date.getDate()
  )}`;
}

/** An absolute timestamp for tooltips: 2026-11-28 14:05:09.123. */
export function formatTimestamp(ms: number): string {
  if (!isFinite(ms)) {
    return '—';
  }
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.` +
    pad(d.getMilliseconds(), 3)
  );
}

/** The first non-blank line of code, trimmed, for a one-line summary. */
export function firstLine(code: string | null | undefined, max = 120): string {
  if (!code) {
    return '';
  }
  const lines = code.split(/\r?\n/);
  const line = lines.find(l => l.trim() !== '') ?? '';
  const trimmed = line.trim();
  const more = lines.filter(l => l.trim() !== '').length > 1;
  if (trimmed.length > max) {
    return trimmed.slice(0, max - 1) + '…';
  }
  return more ? `${trimmed} …` : trimmed;
}

/** "cell 3" (1-based) when the cell is in the notebook, else "deleted cell". */
export function formatCellPosition(
  index: number,
  cellId: string | null
): string {
  if (cellId === null) {
    return 'no cell';
  }
  return index >= 0 ? `cell ${index + 1}` : 'deleted cell';
}

/** A short label for an execution status. */
export function statusLabel(status: string): string {
  switch (status) {
    case 'ok':
      return 'Succeeded';
    case 'error':
      return 'Failed';
    case 'aborted':
      return 'Aborted';
    case 'interrupted':
      return 'Interrupted';
    case 'died':
      return 'Kernel died';
    case 'skipped':
      return 'Skipped';
    case 'running':
      return 'Running';
    default:
      return status;
  }
}

/** The execution count as the notebook shows it: [7], or [ ] when unknown. */
export function formatExecutionCount(n: number | null | undefined): string {
  return n === null || n === undefined ? '[ ]' : `[${n}]`;
}

/** A point of a chart series. */
export interface IPoint {
  t: number;
  v: number;
}

/**
 * Turn cumulative CPU time samples into CPU utilisation (% of one core)
 * between consecutive samples.
 */
export function cpuPercent(
  samples: ReadonlyArray<{ t_ms: number; cpu_ms: number | null }>
): IPoint[] {
  const out: IPoint[] = [];
  let prev: { t_ms: number; cpu_ms: number } | null = null;
  for (const s of samples) {
    if (s.cpu_ms === null || s.cpu_ms === undefined) {
      continue;
    }
    if (prev && s.t_ms > prev.t_ms) {
      const pct = ((s.cpu_ms - prev.cpu_ms) / (s.t_ms - prev.t_ms)) * 100;
      out.push({ t: s.t_ms, v: Math.max(0, pct) });
    }
    prev = { t_ms: s.t_ms, cpu_ms: s.cpu_ms };
  }
  return out;
}

/**
 * An SVG polyline `points` attribute for a series scaled into a box of
 * `width` × `height` (y grows downwards): time from 0 to `tMax`, values
 * from `vMin` (bottom) to `vMax` (top). A flat series (vMin = vMax) is
 * drawn across the middle.
 */
export function polylinePoints(
  series: readonly IPoint[],
  width: number,
  height: number,
  tMax: number,
  vMin: number,
  vMax: number
): string {
  if (series.length === 0) {
    return '';
  }
  const tx = tMax > 0 ? width / tMax : 0;
  const span = vMax - vMin;
  const y = (v: number) =>
    span > 0 ? height - ((v - vMin) / span) * height : height / 2;
  return series
    .map(p => `${(p.t * tx).toFixed(1)},${y(p.v).toFixed(1)}`)
    .join(' ');
}

/** Count lines added/removed in a unified diff (headers excluded). */
export function diffStat(unified: string): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const line of unified.split('\n')) {
    if (line.startsWith('+++') || line.startsWith('---')) {
      continue;
    }
    if (line.startsWith('+')) {
      added++;
    } else if (line.startsWith('-')) {
      removed++;
    }
  }
  return { added, removed };
}

/** A user-facing text for an error. */
export function errorText(err: unknown): string {
  if (err instanceof LineageError) {
    return `${err.message} (${err.code})`;
  }
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}

/**
 * ANSI escape sequences (colours, cursor moves) as IPython puts them in
 * tracebacks: ESC [ … final byte, and ESC ] … BEL/ST (links).
 */
const ANSI =
  // eslint-disable-next-line no-control-regex
  /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-_]/g;

/** Text without ANSI escapes, as a reader sees it. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** A cell's own memory figures, not the kernel's total. */
export interface IOwnMemory {
  /** Resident memory at the end minus at the start of the run. */
  change: number | null;
  /** The run's peak over its start: how much more it needed at its height. */
  peak: number | null;
}

/**
 * The memory a run itself used, from the row's kernel-wide figures:
 * change = `rss_delta`, peak = `peak_rss − rss_start`.
 */
export function ownMemory(item: {
  rss_start?: number | null;
  peak_rss?: number | null;
  rss_delta?: number | null;
}): IOwnMemory {
  const num = (v: unknown): v is number => typeof v === 'number' && isFinite(v);
  return {
    change: num(item.rss_delta) ? item.rss_delta : null,
    peak:
      num(item.peak_rss) && num(item.rss_start)
        ? Math.max(0, item.peak_rss - item.rss_start)
        : null
  };
}

/** Own memory as a row shows it: "+286 MiB, peak +290 MiB". */
export function formatOwnMemory(m: IOwnMemory): string {
  const parts: string[] = [];
  if (m.change !== null) {
    parts.push(formatDelta(m.change, 'bytes'));
  }
  if (m.peak !== null && (m.change === null || m.peak !== m.change)) {
    parts.push(`peak +${formatBytes(m.peak)}`);
  }
  return parts.join(', ');
}

/** A piece of text, marked when it matches the search. */
export interface ISegment {
  text: string;
  match: boolean;
}

/**
 * Split `text` into pieces where words start with one of the query's
 * words (case-insensitive), as the history search matches prefixes.
 * Quotes, `*` and FTS operators in the query are ignored.
 */
export function highlightMatches(text: string, query: string): ISegment[] {
  const words = query
    .split(/[^\p{L}\p{N}_]+/u)
    .filter(w => w && !/^(AND|OR|NOT|NEAR)$/.test(w))
    .map(w => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (words.length === 0 || !text) {
    return text ? [{ text, match: false }] : [];
  }
  // A match starts where a word starts: at the beginning or after a
  // character that is not a letter, digit or underscore.
  const re = new RegExp(`(?<![\\p{L}\\p{N}_])(?:${words.join('|')})`, 'giu');
  const out: ISegment[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    const at = m.index ?? 0;
    if (at > last) {
      out.push({ text: text.slice(last, at), match: false });
    }
    out.push({ text: m[0], match: true });
    last = at + m[0].length;
  }
  if (last < text.length) {
    out.push({ text: text.slice(last), match: false });
  }
  return out;
}

/**
 * The sampling period of a series (the median of the positive gaps between
 * samples; the readings at a run's start and end may share a time), or
 * null when there is no gap to measure.
 */
export function samplePeriod(
  samples: ReadonlyArray<{ t_ms: number }>
): number | null {
  const gaps: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const gap = samples[i].t_ms - samples[i - 1].t_ms;
    if (gap > 0) {
      gaps.push(gap);
    }
  }
  if (gaps.length === 0) {
    return null;
  }
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}

/** Tick values for an axis from `lo` to `hi`: both ends and the middle. */
export function axisTicks(lo: number, hi: number): number[] {
  return lo === hi ? [lo] : [lo, (lo + hi) / 2, hi];
}

/**
 * A run's pager text (the reply's `page` payload) as a MIME bundle, or null.
 * Accepts the bundle itself, a payload (`{data, start}`) or plain text.
 */
export function pageBundle(
  page: unknown
): Record<string, string | string[]> | null {
  if (typeof page === 'string') {
    return page ? { 'text/plain': page } : null;
  }
  if (!page || typeof page !== 'object') {
    return null;
  }
  const p = page as Record<string, unknown>;
  const data =
    p.data && typeof p.data === 'object'
      ? (p.data as Record<string, unknown>)
      : p;
  const bundle: Record<string, string | string[]> = {};
  for (const [mime, value] of Object.entries(data)) {
    if (
      mime.includes('/') &&
      (typeof value === 'string' || Array.isArray(value))
    ) {
      bundle[mime] = value as string | string[];
    }
  }
  return Object.keys(bundle).length > 0 ? bundle : null;
}

/**
 * How long until relative times ("5 s ago") next change, for the newest
 * run: every second in its first minute, then every 15 s, then a minute.
 */
export function tickDelay(newestMs: number | null, now: number): number {
  const age = newestMs === null ? Infinity : now - newestMs;
  return age < 60000 ? 1000 : age < 3600000 ? 15000 : 60000;
}
