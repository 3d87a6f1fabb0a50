/**
 * The panel's own state (no DOM): which notebook model it shows, the
 * filter the user chose, the runs marked for comparison, the focused row.
 * The filter is applied to whichever notebook is active.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { IHistoryItem, IHistoryModel } from './tokens';

export type Scope = 'all' | 'cell';

export class PanelState {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get model(): IHistoryModel | null {
    return this._model;
  }

  get scope(): Scope {
    return this._scope;
  }

  /** The cell the `cell` scope shows (the active cell, or a chosen one). */
  get cellId(): string | null {
    return this._cellId;
  }

  get errorsOnly(): boolean {
    return this._errorsOnly;
  }

  get search(): string {
    return this._search;
  }

  /** Ids of the runs marked for comparison, oldest mark first (at most 2). */
  get marked(): readonly number[] {
    return this._marked;
  }

  get focusedIndex(): number {
    return this._focused;
  }

  setModel(model: IHistoryModel | null): void {
    if (model === this._model) {
      return;
    }
    this._model = model;
    this._marked = [];
    this._focused = -1;
    this._apply();
    this._changed.emit();
  }

  setScope(scope: Scope, cellId: string | null = this._cellId): void {
    this._scope = scope;
    this._cellId = cellId;
    this._focused = -1;
    this._apply();
    this._changed.emit();
  }

  /** The active cell changed; in `cell` scope the list follows it. */
  setActiveCell(cellId: string | null): void {
    if (cellId === this._cellId) {
      return;
    }
    this._cellId = cellId;
    if (this._scope === 'cell') {
      this._focused = -1;
      this._apply();
      this._changed.emit();
    }
  }

  setErrorsOnly(value: boolean): void {
    this._errorsOnly = value;
    this._focused = -1;
    this._apply();
    this._changed.emit();
  }

  setSearch(value: string): void {
    this._search = value;
    this._focused = -1;
    this._apply();
    this._changed.emit();
  }

  /** Mark or unmark a run for comparison; a third mark drops the oldest. */
  toggleMark(id: number): void {
    if (this._marked.includes(id)) {
      this._marked = this._marked.filter(m => m !== id);
    } else {
      this._marked = [...this._marked, id].slice(-2);
    }
    this._changed.emit();
  }

  clearMarks(): void {
    this._marked = [];
    this._changed.emit();
  }

  /**
   * The two marked runs ordered older → newer (by id), or null unless two
   * are marked.
   */
  comparePair(): [number, number] | null {
    if (this._marked.length !== 2) {
      return null;
    }
    const [x, y] = this._marked;
    return x < y ? [x, y] : [y, x];
  }

  setFocused(index: number): void {
    const n = this._model?.items.length ?? 0;
    const next = n === 0 ? -1 : Math.max(0, Math.min(n - 1, index));
    if (next !== this._focused) {
      this._focused = next;
      this._changed.emit();
    }
  }

  focusedItem(): IHistoryItem | null {
    const items = this._model?.items ?? [];
    return this._focused >= 0 && this._focused < items.length
      ? items[this._focused]
      : null;
  }

  private _apply(): void {
    this._model?.setFilter({
      cellId: this._scope === 'cell' ? this._cellId : null,
      errorsOnly: this._errorsOnly,
      search: this._search
    });
  }

  private _model: IHistoryModel | null = null;
  private _scope: Scope = 'all';
  private _cellId: string | null = null;
  private _errorsOnly = false;
  private _search = '';
  private _marked: number[] = [];
  private _focused = -1;
  private _changed = new Signal<this, void>(this);
}
