/**
 * The per-notebook history model, with no DOM: paging, filters, live
 * updates from `recorded` events, per-cell summaries, cached executions.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { LineageClient } from './client';
import { errorText } from './format';
import {
  ConnectionState,
  ICellSummary,
  IDiff,
  IExecution,
  IHello,
  IHistoryFilter,
  IHistoryItem,
  IHistoryModel,
  IHistoryPage,
  IHistoryQuery,
  IRecordedEvent,
  ISwitchOffer,
  LineageError
} from './tokens';

/** Whether a history item passes a filter (for live `recorded` items). */
export function matchesFilter(
  item: IHistoryItem,
  filter: IHistoryFilter
): boolean {
  if (item.silent) {
    return false;
  }
  if (filter.cellId !== null && item.cell_id !== filter.cellId) {
    return false;
  }
  if (filter.errorsOnly && item.status !== 'error') {
    return false;
  }
  if (filter.search.trim() !== '') {
    // Full-text matching is the service's job; a live item is only shown
    // once the user searches again.
    return false;
  }
  return true;
}

/** The `history` parameters for a filter. */
export function filterToQuery(
  filter: IHistoryFilter,
  limit: number,
  before: number | null
): IHistoryQuery {
  const q: IHistoryQuery = { limit };
  if (filter.cellId !== null) {
    q.cell_id = filter.cellId;
  }
  if (filter.errorsOnly) {
    q.status = 'error';
  }
  const search = filter.search.trim();
  if (search !== '') {
    q.search = search;
  }
  if (before !== null) {
    q.before = before;
  }
  return q;
}

/** The last run's own memory fields of a summary, from its history row. */
function lastRunFields(
  item: IHistoryItem
): Pick<ICellSummary, 'last_rss_start' | 'last_peak_rss' | 'last_rss_delta'> {
  return {
    last_rss_start: item.rss_start ?? null,
    last_peak_rss: item.peak_rss ?? null,
    last_rss_delta: item.rss_delta ?? null
  };
}

/** Fold one recorded execution into a per-cell summary. */
export function foldIntoSummary(
  summary: ICellSummary | undefined,
  item: IHistoryItem
): ICellSummary {
  const wall = item.wall_ms ?? null;
  const isError = item.status === 'error';
  if (!summary) {
    return {
      cell_id: item.cell_id ?? '',
      notebook_path: item.notebook_path ?? null,
      runs: 1,
      errors: isError ? 1 : 0,
      last_execution_id: item.id,
      last_status: item.status,
      last_started_ms: item.started_ms,
      last_wall_ms: wall,
      min_wall_ms: wall,
      max_wall_ms: wall,
      peak_rss: item.peak_rss ?? null,
      ...lastRunFields(item)
    };
  }
  const newer = item.id >= summary.last_execution_id;
  return {
    ...summary,
    runs: summary.runs + 1,
    errors: summary.errors + (isError ? 1 : 0),
    last_execution_id: newer ? item.id : summary.last_execution_id,
    last_status: newer ? item.status : summary.last_status,
    last_started_ms: newer ? item.started_ms : summary.last_started_ms,
    last_wall_ms: newer ? wall : summary.last_wall_ms,
    min_wall_ms:
      wall === null
        ? summary.min_wall_ms
        : Math.min(wall, summary.min_wall_ms ?? wall),
    max_wall_ms:
      wall === null
        ? summary.max_wall_ms
        : Math.max(wall, summary.max_wall_ms ?? wall),
    peak_rss:
      item.peak_rss === null || item.peak_rss === undefined
        ? summary.peak_rss
        : Math.max(item.peak_rss, summary.peak_rss ?? 0),
    ...(newer ? lastRunFields(item) : {})
  };
}

/**
 * A summary with its last run's own memory filled in from that run's row,
 * when the service did not send it.
 */
export function withLastRun(
  summary: ICellSummary,
  last: IHistoryItem | undefined
): ICellSummary {
  if (
    !last ||
    last.id !== summary.last_execution_id ||
    summary.last_rss_delta !== undefined
  ) {
    return summary;
  }
  return { ...summary, ...lastRunFields(last) };
}

/**
 * One notebook's run history: the state of the connection, the loaded
 * pages under the current filter, per-cell summaries, and cached
 * executions. It never polls; new runs come from `recorded` events.
 */
export class HistoryModel implements IHistoryModel {
  constructor(options: HistoryModel.IOptions = {}) {
    this._pageSize = options.pageSize ?? 50;
    this.label = options.label ?? '';
  }

  /** A name for the notebook (its path), for headers. */
  label: string;

  /** Emitted when the list, filter or connection state changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted when per-cell summaries change (cell indicators). */
  get cellsChanged(): ISignal<this, void> {
    return this._cellsChanged;
  }

  /** Emitted for each new run (after the model has folded it in). */
  get runRecorded(): ISignal<this, IHistoryItem> {
    return this._runRecorded;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** Why the state is what it is (shown to the user), if anything. */
  get message(): string {
    return this._message;
  }

  get hello(): IHello | null {
    return this._hello;
  }

  get client(): LineageClient | null {
    return this._client;
  }

  /** Loaded runs under the current filter, newest first. */
  get items(): readonly IHistoryItem[] {
    return this._items;
  }

  get hasMore(): boolean {
    return this._nextCursor !== null;
  }

  get loading(): boolean {
    return this._loading;
  }

  /** The last error while loading, if any. */
  get loadError(): string {
    return this._loadError;
  }

  get filter(): IHistoryFilter {
    return this._filter;
  }

  get pageSize(): number {
    return this._pageSize;
  }
  set pageSize(value: number) {
    const v = Math.max(1, Math.min(1000, Math.floor(value) || 50));
    if (v !== this._pageSize) {
      this._pageSize = v;
    }
  }

  /** The offer to switch kernels, when the kernel is not a lineage one. */
  get switchOffer(): ISwitchOffer | null {
    return this._switchOffer;
  }

  /** Per-cell summaries by cell id. */
  get cells(): ReadonlyMap<string, ICellSummary> {
    return this._cells;
  }

  /**
   * Maps a cell id to its 0-based position in the notebook (or -1 when the
   * cell is gone). The tracker sets it; the model only passes it on.
   */
  cellLocator: (cellId: string) => number = () => -1;

  cellIndex(cellId: string | null): number {
    return cellId === null ? -1 : this.cellLocator(cellId);
  }

  /** Set the connection state without a client (no kernel, not lineage…). */
  setState(
    state: ConnectionState,
    message = '',
    switchOffer: ISwitchOffer | null = null
  ): void {
    this._detach();
    this._state = state;
    this._message = message;
    this._switchOffer = switchOffer;
    this._resetList();
    this._changed.emit();
  }

  /**
   * Use a connected client (its hello already received): load the cell
   * summaries and the first page, and follow its `recorded` events.
   */
  async attach(client: LineageClient, hello: IHello): Promise<void> {
    this._detach();
    this._client = client;
    this._hello = hello;
    this._state = 'ready';
    this._message = hello.recording
      ? ''
      : 'The kernel is not recording (see its health).';
    this._switchOffer = null;
    client.recorded.connect(this._onRecorded, this);
    client.closed.connect(this._onClosed, this);
    this._resetList();
    this._changed.emit();
    await Promise.all([this.reload(), this.refreshCells()]);
  }

  /** Change the filter and reload from the first page. */
  setFilter(filter: Partial<IHistoryFilter>): void {
    const next = { ...this._filter, ...filter };
    if (
      next.cellId === this._filter.cellId &&
      next.errorsOnly === this._filter.errorsOnly &&
      next.search === this._filter.search
    ) {
      return;
    }
    this._filter = next;
    void this.reload();
  }

  /** Drop loaded pages and load the first one again. */
  async reload(): Promise<void> {
    this._resetList();
    this._changed.emit();
    await this.loadMore();
  }

  /** Load the next page, if there is one and none is loading. */
  async loadMore(): Promise<void> {
    const client = this._client;
    if (!client || this._loading || this._nextCursor === null) {
      return;
    }
    const generation = this._generation;
    const before = this._nextCursor === undefined ? null : this._nextCursor;
    this._loading = true;
    this._loadError = '';
    this._changed.emit();
    try {
      const page = await client.request<IHistoryPage>(
        'history',
        filterToQuery(this._filter, this._pageSize, before) as Record<
          string,
          unknown
        >
      );
      if (generation !== this._generation || this._isDisposed) {
        return; // the filter changed meanwhile
      }
      for (const item of page.items) {
        if (!this._ids.has(item.id)) {
          this._ids.add(item.id);
          this._items.push(item);
        }
      }
      this._nextCursor = page.next_cursor ?? null;
      this._fillSummaries();
    } catch (err) {
      if (generation !== this._generation || this._isDisposed) {
        return;
      }
      this._loadError = errorText(err);
      this._nextCursor = null;
    } finally {
      if (generation === this._generation && !this._isDisposed) {
        this._loading = false;
        this._changed.emit();
      }
    }
  }

  /** Load the per-cell summaries again. */
  async refreshCells(): Promise<void> {
    const client = this._client;
    if (!client) {
      return;
    }
    try {
      const rows = await client.request<ICellSummary[]>('cells');
      if (client !== this._client) {
        return;
      }
      this._cells.clear();
      for (const row of rows) {
        this._cells.set(row.cell_id, row);
      }
      this._fillSummaries(false);
      this._cellsChanged.emit();
    } catch (err) {
      console.warn('jupyter-lineage: cells request failed', err);
    }
  }

  /** Ask views to redraw (cell positions changed, …). */
  notifyViews(): void {
    this._changed.emit();
    this._cellsChanged.emit();
  }

  /** One execution in full (cached). */
  execution(id: number): Promise<IExecution> {
    const client = this._client;
    if (!client) {
      return Promise.reject(new LineageError('unavailable', 'not connected'));
    }
    let p = this._executions.get(id);
    if (!p) {
      p = client.request<IExecution>('execution', { execution_id: id });
      p.catch(() => this._executions.delete(id));
      this._executions.set(id, p);
      if (this._executions.size > 64) {
        const oldest = this._executions.keys().next().value as number;
        this._executions.delete(oldest);
      }
    }
    return p;
  }

  /** Compare two executions (`a` older, `b` newer by convention). */
  diff(a: number, b: number): Promise<IDiff> {
    const client = this._client;
    if (!client) {
      return Promise.reject(new LineageError('unavailable', 'not connected'));
    }
    return client.request<IDiff>('diff', { a, b });
  }

  /**
   * The run of the same cell just before `item`, or null on the cell's
   * first run. Read from the loaded list when it holds every run (no
   * errors-only or search filter) back to that one; else asked of the
   * service. (`prev_execution_id` is the session's previous run, which is
   * another cell's as often as not.)
   */
  async previousRunOf(item: IHistoryItem): Promise<number | null> {
    const known = this._previousInList(item);
    if (known !== undefined) {
      return known;
    }
    const client = this._client;
    if (!item.cell_id || !client) {
      return null;
    }
    const page = await client.request<IHistoryPage>('history', {
      cell_id: item.cell_id,
      before: item.id,
      limit: 1
    });
    return page.items[0]?.id ?? null;
  }

  /**
   * Whether `item` is known to be its cell's first recorded run (so there
   * is nothing to compare it with); false when it is not, or not known.
   */
  isFirstRun(item: IHistoryItem): boolean {
    if (!item.cell_id) {
      return true;
    }
    const summary = this._cells.get(item.cell_id);
    if (
      summary &&
      summary.runs === 1 &&
      summary.last_execution_id === item.id
    ) {
      return true;
    }
    return this._previousInList(item) === null;
  }

  /**
   * The previous run of `item`'s cell from the loaded list: an id, null
   * when the list proves there is none, undefined when it cannot say.
   */
  private _previousInList(item: IHistoryItem): number | null | undefined {
    const f = this._filter;
    if (f.errorsOnly || f.search.trim() !== '' || !item.cell_id) {
      return undefined;
    }
    if (f.cellId !== null && f.cellId !== item.cell_id) {
      return undefined;
    }
    const at = this._items.findIndex(i => i.id === item.id);
    if (at < 0) {
      return undefined;
    }
    for (let i = at + 1; i < this._items.length; i++) {
      if (this._items[i].cell_id === item.cell_id) {
        return this._items[i].id;
      }
    }
    // Reached the end of the list: none, if the list is the whole history.
    return this._nextCursor === null && !this._loadError ? null : undefined;
  }

  /** A loaded item by id, if loaded. */
  item(id: number): IHistoryItem | undefined {
    return this._items.find(i => i.id === id) ?? this._recent.get(id);
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._detach();
    this._isDisposed = true;
    Signal.clearData(this);
  }

  private _onRecorded(_: LineageClient, ev: IRecordedEvent): void {
    const item = ev.execution;
    if (!item || typeof item.id !== 'number') {
      // The row could not be read back: the next reload lists it.
      return;
    }
    // The kernel pushes every run of the project's notebooks it records;
    // this panel shows its own notebook's.
    const mine = this._hello?.notebook_path ?? null;
    if (mine && item.notebook_path && item.notebook_path !== mine) {
      return;
    }
    if (item.silent) {
      return;
    }
    this._recent.set(item.id, item);
    if (this._recent.size > 256) {
      this._recent.delete(this._recent.keys().next().value as number);
    }
    if (item.cell_id) {
      this._cells.set(
        item.cell_id,
        foldIntoSummary(this._cells.get(item.cell_id), item)
      );
      this._cellsChanged.emit();
    }
    if (matchesFilter(item, this._filter) && !this._ids.has(item.id)) {
      this._ids.add(item.id);
      // Newest first; a late event goes where its id says.
      let at = 0;
      while (at < this._items.length && this._items[at].id > item.id) {
        at++;
      }
      this._items.splice(at, 0, item);
      this._changed.emit();
    }
    this._runRecorded.emit(item);
  }

  /** Give summaries their last run's own memory from loaded rows. */
  private _fillSummaries(emit = true): void {
    let changed = false;
    for (const [cellId, summary] of this._cells) {
      const next = withLastRun(summary, this.item(summary.last_execution_id));
      if (next !== summary) {
        this._cells.set(cellId, next);
        changed = true;
      }
    }
    if (changed && emit) {
      this._cellsChanged.emit();
    }
  }

  private _onClosed(): void {
    this.setState('error', 'The lineage comm was closed.');
  }

  private _detach(): void {
    if (this._client) {
      this._client.recorded.disconnect(this._onRecorded, this);
      this._client.closed.disconnect(this._onClosed, this);
      this._client = null;
    }
    this._hello = null;
    this._executions.clear();
  }

  private _resetList(): void {
    this._generation++;
    this._items = [];
    this._ids.clear();
    this._nextCursor = undefined;
    this._loading = false;
    this._loadError = '';
  }

  private _pageSize: number;
  private _isDisposed = false;
  private _state: ConnectionState = 'no-kernel';
  private _message = '';
  private _hello: IHello | null = null;
  private _client: LineageClient | null = null;
  private _switchOffer: ISwitchOffer | null = null;
  private _filter: IHistoryFilter = {
    cellId: null,
    errorsOnly: false,
    search: ''
  };
  private _items: IHistoryItem[] = [];
  private _ids = new Set<number>();
  /** undefined: nothing loaded yet; null: no more pages. */
  private _nextCursor: number | null | undefined = undefined;
  private _loading = false;
  private _loadError = '';
  private _generation = 0;
  private _cells = new Map<string, ICellSummary>();
  private _executions = new Map<number, Promise<IExecution>>();
  private _recent = new Map<number, IHistoryItem>();
  private _changed = new Signal<this, void>(this);
  private _cellsChanged = new Signal<this, void>(this);
  private _runRecorded = new Signal<this, IHistoryItem>(this);
}

export namespace HistoryModel {
  export interface IOptions {
    pageSize?: number;
    label?: string;
  }
}
