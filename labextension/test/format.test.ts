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
  formatWhen,
  polylinePoints,
  statusLabel
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
