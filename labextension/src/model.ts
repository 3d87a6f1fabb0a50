/**
 * State of jupyter-lineage, with no DOM: the comm client (request ids, part
 * reassembly, events) and the per-notebook history model (paging, filters,
 * live updates, per-cell summaries).
 */
import { ISignal, Signal } from '@lumino/signaling';
import {
  ConnectionState,
  ICellSummary,
  IDiff,
  IExecution,
  IHello,
  IHistoryFilter,
  IHistoryItem,
  IHistoryPage,
  IHistoryQuery,
  IRecordedEvent,
  LineageError,
  PROTOCOL_VERSION
} from './tokens';

/**
 * What the client needs from a comm. The kernel adapter (connection.ts)
 * wraps JupyterLab's `IComm`; the unit tests use a small in-memory one.
 */
export interface ILineageTransport {
  /** Send one `comm_msg` with this data. */
  send(data: Record<string, unknown>): void;
  /** Close the comm (sends `comm_close`). */
  close(): void;
}

/** A reply or event sent in parts (docs/protocol.md, "Large replies"). */
interface IPartial {
  parts: number;
  received: number;
  texts: string[];
}

/**
 * The `jupyter.lineage` comm client: numbers requests, matches replies by
 * id, reassembles parted replies, and hands events on as signals.
 */
export class LineageClient {
  constructor(
    readonly transport: ILineageTransport,
    options: LineageClient.IOptions = {}
  ) {
    this._timeoutMs = options.timeoutMs ?? 30000;
  }

  /** Emitted for every `hello` event (comm open, or a later hello). */
  get hello(): ISignal<this, IHello> {
    return this._hello;
  }

  /** Emitted for every `recorded` event. */
  get recorded(): ISignal<this, IRecordedEvent> {
    return this._recorded;
  }

  /** Emitted once when the comm is closed or the client disposed. */
  get closed(): ISignal<this, void> {
    return this._closed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Requests still waiting for their reply. */
  get pendingCount(): number {
    return this._pending.size;
  }

  /**
   * Send a request and resolve with its `result`; reject with a
   * `LineageError` on `ok: false`, a timeout or a closed comm.
   */
  request<T>(name: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this._isDisposed) {
      return Promise.reject(new LineageError('closed', 'comm closed'));
    }
    const id = this._nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer =
        this._timeoutMs > 0
          ? setTimeout(() => {
              this._pending.delete(id);
              reject(
                new LineageError('timeout', `no reply to ${name} in time`)
              );
            }, this._timeoutMs)
          : null;
      this._pending.set(id, {
        name,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer
      });
      try {
        this.transport.send({
          ...params,
          request: name,
          id,
          protocol_version: PROTOCOL_VERSION
        });
      } catch (err) {
        this._settle(id);
        reject(err);
      }
    });
  }

  /** Feed one comm message's `data` (the kernel adapter calls this). */
  handleMessage(data: unknown): void {
    if (this._isDisposed || !data || typeof data !== 'object') {
      return;
    }
    const msg = data as Record<string, unknown>;
    if (typeof msg.part === 'number' && typeof msg.parts === 'number') {
      this._handlePart(msg);
      return;
    }
    this._dispatch(msg);
  }

  /** The comm was closed by the other side. */
  handleClose(): void {
    this.dispose();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const id of Array.from(this._pending.keys())) {
      const p = this._settle(id);
      p?.reject(new LineageError('closed', 'comm closed'));
    }
    this._partials.clear();
    this._closed.emit();
    Signal.clearData(this);
  }

  private _handlePart(msg: Record<string, unknown>): void {
    const key = `${msg.reply ?? ''}|${msg.event ?? ''}|${JSON.stringify(
      msg.id ?? null
    )}`;
    const parts = msg.parts as number;
    const index = msg.part as number;
    let partial = this._partials.get(key);
    if (!partial || partial.parts !== parts) {
      partial = { parts, received: 0, texts: new Array(parts) };
      this._partials.set(key, partial);
    }
    if (index < 0 || index >= parts || partial.texts[index] !== undefined) {
      return;
    }
    partial.texts[index] = String(msg.text ?? '');
    partial.received++;
    if (partial.received < parts) {
      return;
    }
    this._partials.delete(key);
    let whole: unknown;
    try {
      whole = JSON.parse(partial.texts.join(''));
    } catch (err) {
      const p = typeof msg.id === 'number' ? this._settle(msg.id) : undefined;
      p?.reject(new LineageError('internal', `bad parted reply: ${err}`));
      return;
    }
    if (whole && typeof whole === 'object') {
      this._dispatch(whole as Record<string, unknown>);
    }
  }

  private _dispatch(msg: Record<string, unknown>): void {
    if (typeof msg.reply === 'string') {
      const p = typeof msg.id === 'number' ? this._settle(msg.id) : undefined;
      if (!p) {
        return; // a reply nobody waits for (timed out): drop it
      }
      if (msg.ok === false) {
        const e = (msg.error ?? {}) as { code?: string; message?: string };
        p.reject(
          new LineageError(e.code ?? 'internal', e.message ?? 'request failed')
        );
      } else {
        p.resolve(msg.result);
      }
      return;
    }
    switch (msg.event) {
      case 'hello':
        this._hello.emit(msg as unknown as IHello);
        break;
      case 'recorded':
        this._recorded.emit(msg as unknown as IRecordedEvent);
        break;
      default:
        break; // unknown events are for newer clients
    }
  }

  private _settle(id: number): LineageClient.IPending | undefined {
    const p = this._pending.get(id);
    if (p) {
      this._pending.delete(id);
      if (p.timer !== null) {
        clearTimeout(p.timer);
      }
    }
    return p;
  }

  private _nextId = 1;
  private _timeoutMs: number;
  private _isDisposed = false;
  private _pending = new Map<number, LineageClient.IPending>();
  private _partials = new Map<string, IPartial>();
  private _hello = new Signal<this, IHello>(this);
  private _recorded = new Signal<this, IRecordedEvent>(this);
  private _closed = new Signal<this, void>(this);
}

export namespace LineageClient {
  export interface IOptions {
    /** Reject a request with no reply after this long; 0 waits forever. */
    timeoutMs?: number;
  }
  export interface IPending {
    name: string;
    resolve: (value: unknown) => void;
    reject: (reason: unknown) => void;
    timer: ReturnType<typeof setTimeout> | null;
  }
}

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
      peak_rss: item.peak_rss ?? null
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
        : Math.max(item.peak_rss, summary.peak_rss ?? 0)
  };
}

/** What the panel offers when the kernel is not a lineage kernel. */
export interface ISwitchOffer {
  /** The lineage kernelspec to switch to. */
  name: string;
  displayName: string;
}

/**
 * One notebook's run history: the state of the connection, the loaded
 * pages under the current filter, per-cell summaries, and cached
 * executions. It never polls; new runs come from `recorded` events.
 */
export class HistoryModel {
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
    const item: IHistoryItem | null =
      ev.execution ??
      (ev.recorded
        ? ({
            id: ev.recorded.execution_id,
            cell_id: ev.recorded.cell_id,
            notebook_path: ev.recorded.notebook_path ?? null,
            execution_count: ev.recorded.execution_count,
            code_preview: '',
            status: ev.recorded.status,
            started_ms: ev.recorded.started_ms,
            ended_ms: ev.recorded.ended_ms,
            wall_ms: ev.recorded.wall_ms,
            cpu_ms: null,
            peak_rss: null,
            gpu_mem_peak: null,
            silent: ev.recorded.silent
          } as IHistoryItem)
        : null);
    if (!item) {
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
