/**
 * Unit tests of the formatters.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  cpuPercent,
  diffStat,
  firstLine,
  formatBytes,
  formatCellPosition,
  formatDelta,
  formatDuration,
  formatExecutionCount,
  formatOwnMemory,
  formatWhen,
  highlightMatches,
  ownMemory,
  axisTicks,
  polylinePoints,
  samplePeriod,
  pageBundle,
  statusLabel,
  stripAnsi,
  tickDelay
} from '../src/format';

test('formatDuration', () => {
  assert.equal(formatDuration(null), '—');
  assert.equal(formatDuration(0.25), '250 µs');
  assert.equal(formatDuration(3.14159), '3.1 ms');
  assert.equal(formatDuration(12.4), '12 ms');
  assert.equal(formatDuration(1234), '1.23 s');
  assert.equal(formatDuration(12345), '12.3 s');
  assert.equal(formatDuration(185000), '3 min 05 s');
  assert.equal(formatDuration(2 * 3600000 + 7 * 60000), '2 h 07 min');
  assert.equal(formatDuration(-12), '−12 ms');
});

test('formatBytes', () => {
  assert.equal(formatBytes(undefined), '—');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(81002496), '77.3 MiB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.00 GiB');
  assert.equal(formatBytes(200 * 1024 ** 2), '200 MiB');
  assert.equal(formatBytes(-2048), '−2.00 KiB');
});

test('formatDelta', () => {
  assert.equal(formatDelta(null, 'ms'), '—');
  assert.equal(formatDelta(0, 'bytes'), '±0');
  assert.equal(formatDelta(12, 'ms'), '+12 ms');
  assert.equal(formatDelta(-3.4, 'ms'), '−3.4 ms');
  assert.equal(formatDelta(1048576, 'bytes'), '+1.00 MiB');
  assert.equal(formatDelta(-5, 'percent'), '−5 %');
});

test('formatWhen: relative when recent, a date otherwise', () => {
  const now = new Date(2026, 10, 28, 12, 0, 0).getTime();
  assert.equal(formatWhen(now - 1000, now), 'just now');
  assert.equal(formatWhen(now + 5000, now), 'just now');
  assert.equal(formatWhen(now - 42000, now), '42 s ago');
  assert.equal(formatWhen(now - 5 * 60000, now), '5 min ago');
  assert.equal(formatWhen(now - 3 * 3600000, now), '3 h ago');
  assert.equal(
    formatWhen(new Date(2026, 2, 4, 14, 5).getTime(), now),
    'Mar 4, 14:05'
  );
  assert.equal(
    formatWhen(new Date(2025, 2, 4, 14, 5).getTime(), now),
    '2025-03-04'
  );
});

test('firstLine', () => {
  assert.equal(firstLine(''), '');
  assert.equal(firstLine('\n\n  import os\nimport sys'), 'import os …');
  assert.equal(firstLine('x = 1'), 'x = 1');
  assert.equal(firstLine('y'.repeat(200), 10), 'yyyyyyyyy…');
});

test('positions, counts and status labels', () => {
  assert.equal(formatCellPosition(2, 'abc'), 'cell 3');
  assert.equal(formatCellPosition(-1, 'abc'), 'deleted cell');
  assert.equal(formatCellPosition(-1, null), 'no cell');
  assert.equal(formatExecutionCount(7), '[7]');
  assert.equal(formatExecutionCount(null), '[ ]');
  assert.equal(statusLabel('error'), 'Failed');
  assert.equal(statusLabel('weird'), 'weird');
});

test('cpuPercent turns cumulative CPU time into utilisation', () => {
  const pts = cpuPercent([
    { t_ms: 0, cpu_ms: 0 },
    { t_ms: 100, cpu_ms: 50 },
    { t_ms: 200, cpu_ms: null },
    { t_ms: 300, cpu_ms: 250 }
  ]);
  assert.deepEqual(pts, [
    { t: 100, v: 50 },
    { t: 300, v: 100 }
  ]);
});

test('polylinePoints scales time and value into the box', () => {
  const pts = [
    { t: 0, v: 10 },
    { t: 50, v: 20 },
    { t: 100, v: 30 }
  ];
  assert.equal(
    polylinePoints(pts, 200, 40, 100, 10, 30),
    '0.0,40.0 100.0,20.0 200.0,0.0'
  );
  // A flat series is drawn mid-height.
  assert.equal(polylinePoints([{ t: 0, v: 5 }], 10, 40, 1, 5, 5), '0.0,20.0');
  assert.equal(polylinePoints([], 10, 10, 1, 0, 1), '');
});

test('diffStat counts changed lines, not headers', () => {
  assert.deepEqual(diffStat('--- a\n+++ b\n@@ -1 +1 @@\n-1/1\n+1/0\n+x\n'), {
    added: 2,
    removed: 1
  });
});

test('stripAnsi removes colour codes from a traceback', () => {
  const tb =
    '\u001b[0;31mZeroDivisionError\u001b[0m: division by zero\n\u001b[1;32m----> 1\u001b[0m 1/0';
  assert.equal(
    stripAnsi(tb),
    'ZeroDivisionError: division by zero\n----> 1 1/0'
  );
  assert.equal(stripAnsi('plain'), 'plain');
});

test('ownMemory: the change and the peak over the start, not the total', () => {
  const m = ownMemory({
    rss_start: 335 * 2 ** 20,
    peak_rss: 621 * 2 ** 20,
    rss_delta: 286 * 2 ** 20
  });
  assert.deepEqual(m, { change: 286 * 2 ** 20, peak: 286 * 2 ** 20 });
  assert.equal(formatOwnMemory(m), '+286 MiB');
  const freed = ownMemory({
    rss_start: 621 * 2 ** 20,
    peak_rss: 630 * 2 ** 20,
    rss_delta: -572 * 2 ** 20
  });
  assert.equal(formatOwnMemory(freed), '−572 MiB, peak +9.00 MiB');
  assert.deepEqual(ownMemory({ peak_rss: 5 }), { change: null, peak: null });
  assert.equal(formatOwnMemory({ change: null, peak: null }), '');
});

test('highlightMatches marks word prefixes, case-insensitively', () => {
  const marked = (t: string, q: string) =>
    highlightMatches(t, q)
      .filter(s => s.match)
      .map(s => s.text);
  assert.deepEqual(marked('for i in range(3): arrange(i)', 'rang'), ['rang']);
  assert.deepEqual(marked('1/0 ZeroDivisionError', 'zerodiv'), ['ZeroDiv']);
  assert.deepEqual(marked('x = 1', 'plot*'), []);
  assert.equal(
    highlightMatches('print(x)', '')
      .map(s => s.text)
      .join(''),
    'print(x)'
  );
});

test('samplePeriod and axisTicks', () => {
  assert.equal(samplePeriod([{ t_ms: 0 }]), null);
  assert.equal(samplePeriod([{ t_ms: 0 }, { t_ms: 0 }]), null);
  assert.equal(
    samplePeriod([{ t_ms: 0 }, { t_ms: 100 }, { t_ms: 200 }, { t_ms: 450 }]),
    100
  );
  assert.deepEqual(axisTicks(0, 10), [0, 5, 10]);
  assert.deepEqual(axisTicks(3, 3), [3]);
});

test('pageBundle takes the pager payload, its bundle, or text', () => {
  const text = 'Signature: len(obj, /)\nDocstring: Return the number of items';
  assert.deepEqual(pageBundle({ data: { 'text/plain': text }, start: 0 }), {
    'text/plain': text
  });
  assert.deepEqual(pageBundle({ 'text/html': '<b>x</b>', 'text/plain': 'x' }), {
    'text/html': '<b>x</b>',
    'text/plain': 'x'
  });
  assert.deepEqual(pageBundle(text), { 'text/plain': text });
  assert.equal(pageBundle(null), null);
  assert.equal(pageBundle(''), null);
  assert.equal(pageBundle({ start: 0 }), null);
});

test('relative times tick each second in the first minute, then slower', () => {
  const now = 1795000000000;
  assert.equal(tickDelay(now - 5000, now), 1000);
  assert.equal(tickDelay(now - 5 * 60000, now), 15000);
  assert.equal(tickDelay(now - 2 * 3600000, now), 60000);
  assert.equal(tickDelay(null, now), 60000);
});
