/**
 * A small indicator under each code cell's input: how many times it ran,
 * the last duration and the last run's own memory (its change, and its peak
 * over its start: what users read as "this cell's memory", not the
 * kernel's total). Fed by the `cells` request and `recorded` events
 * (through the history model); clicking it opens that cell's runs.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import { CellList, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { PanelLayout, Widget } from '@lumino/widgets';
import {
  formatBytes,
  formatDelta,
  formatDuration,
  formatOwnMemory,
  ownMemory
} from '../format';
import { ICellSummary, IHistoryModel } from '../tokens';

export const INDICATOR_CLASS = 'jp-LineageCellIndicator';

/** The last run's own memory, from a summary. */
function lastRunMemory(s: ICellSummary) {
  return ownMemory({
    rss_start: s.last_rss_start,
    peak_rss: s.last_peak_rss,
    rss_delta: s.last_rss_delta
  });
}

/** The indicator's text for a cell summary. */
export function indicatorText(s: ICellSummary): string {
  const parts = [`${s.runs} run${s.runs === 1 ? '' : 's'}`];
  if (s.last_wall_ms !== null && s.last_wall_ms !== undefined) {
    parts.push(formatDuration(s.last_wall_ms));
  }
  const mem = formatOwnMemory(lastRunMemory(s));
  if (mem) {
    parts.push(mem);
  }
  return parts.join(' · ');
}

export function indicatorTitle(s: ICellSummary): string {
  const errors = s.errors ? ` (${s.errors} failed)` : '';
  const range =
    s.min_wall_ms !== null &&
    s.min_wall_ms !== undefined &&
    s.max_wall_ms !== null &&
    s.max_wall_ms !== undefined &&
    s.runs > 1
      ? `; durations ${formatDuration(s.min_wall_ms)} – ${formatDuration(s.max_wall_ms)}`
      : '';
  const m = lastRunMemory(s);
  const mem =
    m.change !== null || m.peak !== null
      ? `, memory ${formatDelta(m.change, 'bytes')} (peak ` +
        `${m.peak === null ? '—' : `+${formatBytes(m.peak)}`} over its start)`
      : '';
  return (
    `Ran ${s.runs} time${s.runs === 1 ? '' : 's'}${errors}; last run ` +
    `${formatDuration(s.last_wall_ms)}${mem}${range}.\n` +
    "Click to see this cell's runs."
  );
}

class Indicator extends Widget {
  constructor(
    readonly cell: Cell,
    onClick: (cellId: string) => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass(INDICATOR_CLASS);
    this.node.setAttribute('type', 'button');
    this.node.addEventListener('click', e => {
      e.preventDefault();
      e.stopPropagation();
      onClick(cell.model.id);
    });
    // Keep clicks from moving the notebook's selection before ours runs.
    this.node.addEventListener('mousedown', e => e.stopPropagation());
    this.hide();
  }

  set(summary: ICellSummary | undefined): void {
    if (!summary) {
      if (!this.isHidden) {
        this.hide();
      }
      return;
    }
    const text = indicatorText(summary);
    if (this.node.textContent !== text) {
      this.node.textContent = text;
      this.node.title = indicatorTitle(summary);
      this.node.setAttribute(
        'aria-label',
        `${text}. Show this cell's run history`
      );
    }
    this.node.classList.toggle('jp-mod-error', summary.last_status === 'error');
    this.node.dataset.runs = String(summary.runs);
    if (this.isHidden) {
      this.show();
    }
  }
}

/** The indicators of one notebook. */
export class NotebookIndicators implements IDisposable {
  constructor(
    readonly panel: NotebookPanel,
    readonly model: IHistoryModel,
    private readonly _onClick: (cellId: string) => void
  ) {
    model.cellsChanged.connect(this._schedule, this);
    model.changed.connect(this._schedule, this);
    panel.content.modelChanged.connect(this._watch, this);
    this._watch();
    this._schedule();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.model.cellsChanged.disconnect(this._schedule, this);
    this.model.changed.disconnect(this._schedule, this);
    this.panel.content.modelChanged.disconnect(this._watch, this);
    this._cells?.changed.disconnect(this._schedule, this);
    for (const ind of this._indicators.values()) {
      ind.dispose();
    }
    this._indicators.clear();
  }

  private _watch(): void {
    this._cells?.changed.disconnect(this._schedule, this);
    this._cells = this.panel.content.model?.cells ?? null;
    this._cells?.changed.connect(this._schedule, this);
    this._schedule();
  }

  private _schedule(): void {
    if (this._pending || this._isDisposed) {
      return;
    }
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this._update();
    });
  }

  private _update(): void {
    if (this._isDisposed) {
      return;
    }
    const ready = this.model.state === 'ready';
    const seen = new Set<Cell>();
    for (const cell of this.panel.content.widgets) {
      if (!(cell instanceof CodeCell)) {
        continue;
      }
      seen.add(cell);
      let ind = this._indicators.get(cell);
      if (!ind) {
        ind = this._attach(cell) ?? undefined;
        if (!ind) {
          continue;
        }
      }
      ind.set(ready ? this.model.cells.get(cell.model.id) : undefined);
    }
    for (const [cell, ind] of this._indicators) {
      if (!seen.has(cell) || cell.isDisposed) {
        ind.dispose();
        this._indicators.delete(cell);
      }
    }
  }

  private _attach(cell: CodeCell): Indicator | null {
    const layout = cell.layout as PanelLayout | null;
    if (!layout || cell.isDisposed) {
      return null;
    }
    // Right under the input, above the outputs.
    const widgets = layout.widgets;
    const at = widgets.findIndex(w => w.hasClass('jp-Cell-inputWrapper'));
    if (at < 0) {
      // A placeholder cell (windowed notebook): try once it is rendered.
      if (!this._waiting.has(cell)) {
        this._waiting.add(cell);
        void cell.ready.then(() => this._schedule());
      }
      return null;
    }
    const ind = new Indicator(cell, this._onClick);
    layout.insertWidget(at + 1, ind);
    this._indicators.set(cell, ind);
    cell.disposed.connect(() => {
      this._indicators.delete(cell);
    });
    return ind;
  }

  private _isDisposed = false;
  private _pending = false;
  private _cells: CellList | null = null;
  private _waiting = new WeakSet<Cell>();
  private _indicators = new Map<Cell, Indicator>();
}
