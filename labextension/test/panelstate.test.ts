/**
 * Unit tests of the panel's state: scope following the active cell, marks
 * for comparison, keyboard focus bounds.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HistoryModel } from '../src/model';
import { PanelState } from '../src/panelstate';

test('the cell scope follows the active cell; all cells ignores it', () => {
  const state = new PanelState();
  const model = new HistoryModel();
  state.setModel(model);
  state.setActiveCell('a');
  assert.equal(model.filter.cellId, null);
  state.setScope('cell');
  assert.equal(model.filter.cellId, 'a');
  state.setActiveCell('b');
  assert.equal(model.filter.cellId, 'b');
  state.setScope('all');
  assert.equal(model.filter.cellId, null);
  state.setScope('cell', 'z');
  assert.equal(model.filter.cellId, 'z');
});

test('filters carry over to the next notebook', () => {
  const state = new PanelState();
  state.setErrorsOnly(true);
  state.setSearch('plot');
  const model = new HistoryModel();
  state.setModel(model);
  assert.deepEqual(model.filter, {
    cellId: null,
    errorsOnly: true,
    search: 'plot'
  });
});

test('marks: at most two, ordered older → newer for compare', () => {
  const state = new PanelState();
  state.toggleMark(9);
  assert.equal(state.comparePair(), null);
  state.toggleMark(4);
  assert.deepEqual(state.comparePair(), [4, 9]);
  state.toggleMark(7); // drops the oldest mark (9)
  assert.deepEqual(state.marked, [4, 7]);
  state.toggleMark(4);
  assert.deepEqual(state.marked, [7]);
  state.clearMarks();
  assert.deepEqual(state.marked, []);
});

test('focus stays within the list', () => {
  const state = new PanelState();
  state.setFocused(3);
  assert.equal(state.focusedIndex, -1); // no model, no rows
  assert.equal(state.focusedItem(), null);
});
