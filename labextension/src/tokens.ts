/**
 * Interfaces and tokens of jupyter-lineage.
 *
 * The protocol types mirror docs/protocol.md (`jupyter.lineage` comm,
 * protocol_version 1). Only the fields the extension reads are typed; the
 * kernel may send more, and they are kept as they came.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

/** The comm target the lineage kernel answers itself. */
export const COMM_TARGET = 'jupyter.lineage';

/** The protocol version this extension speaks. */
export const PROTOCOL_VERSION = 1;

/** The kernelspec metadata key that marks a lineage kernelspec. */
export const KERNELSPEC_METADATA_KEY = 'jupyter_lineage';

/** The suffix of a lineage kernelspec's name (`python3` → `python3-lineage`). */
export const KERNELSPEC_NAME_SUFFIX = '-lineage';

export type ExecutionStatus =
  'ok' | 'error' | 'aborted' | 'interrupted' | 'died' | 'skipped' | 'running';

/** One execution as `history` lists it (newest first). */
export interface IHistoryItem {
  id: number;
  session_id?: number;
  msg_id?: string;
  cell_id: string | null;
  notebook_path?: string | null;
  execution_count: number | null;
  code_preview: string;
  status: ExecutionStatus | string;
  started_ms: number;
  ended_ms: number | null;
  wall_ms: number | null;
  cpu_ms: number | null;
  rss_start?: number | null;
  peak_rss: number | null;
  rss_delta?: number | null;
  gpu_mem_peak: number | null;
  gpu_util_max?: number | null;
  error_name?: string | null;
  error_value?: string | null;
  output_count?: number;
  truncated?: boolean;
  silent?: boolean;
  /**
   * The session's previous execution (often another cell's): not "the
   * previous run of this cell", which `IHistoryModel.previousRunOf` finds.
   */
  prev_execution_id?: number | null;
  [key: string]: unknown;
}

/** An nbformat v4 output, as the kernel stored it. */
export interface IStoredOutput {
  output: { output_type: string; [key: string]: unknown };
  display_id?: string | null;
  truncated?: string[];
  sha256?: Record<string, string>;
}

/** One point of an execution's resource time series. */
export interface ISample {
  t_ms: number;
  rss: number | null;
  cpu_ms: number | null;
  gpu_mem: number | null;
  gpu_util: number | null;
}

/** One execution in full (`execution` request). */
export interface IExecution extends IHistoryItem {
  code: string;
  traceback?: string[] | null;
  outputs: IStoredOutput[];
  samples: ISample[];
  session_uuid?: string;
  rss_end?: number | null;
  exit_code?: number | null;
  exit_signal?: number | null;
  /**
   * What the pager showed for this run (`obj?`, `%prun`…): the reply's
   * `page` payload as a MIME bundle, or its text; absent when none.
   */
  page?: Record<string, unknown> | string | null;
}

export type ChangeStatus = 'added' | 'removed' | 'changed' | 'unchanged';

/** Two executions compared (`diff` request). */
export interface IDiff {
  a: IHistoryItem;
  b: IHistoryItem;
  code: {
    changed: boolean;
    unified: string;
    added_lines: number;
    removed_lines: number;
  };
  outputs: Array<{
    position: number;
    status: ChangeStatus;
    output_type_a: string | null;
    output_type_b: string | null;
    mimes: Array<{
      mime: string;
      status: ChangeStatus;
      unified?: string | null;
      a?: unknown;
      b?: unknown;
    }>;
  }>;
  resources: {
    wall_ms: number | null;
    cpu_ms: number | null;
    peak_rss: number | null;
    rss_delta: number | null;
    gpu_mem_peak: number | null;
    gpu_util_max: number | null;
  };
}

/** A per-cell summary (`cells` request). */
export interface ICellSummary {
  cell_id: string;
  notebook_path?: string | null;
  runs: number;
  errors: number;
  last_execution_id: number;
  last_status: string;
  last_started_ms: number;
  last_wall_ms: number | null;
  min_wall_ms?: number | null;
  max_wall_ms?: number | null;
  /** The kernel's peak over all the cell's runs. */
  peak_rss: number | null;
  /**
   * The last run's own memory figures (as in a history row), when the
   * service sends them or the model has seen that run.
   */
  last_rss_start?: number | null;
  last_peak_rss?: number | null;
  last_rss_delta?: number | null;
}

/** The hello event (on comm open, or as the `hello` reply's result). */
export interface IHello {
  event: 'hello';
  protocol_version: number;
  lineage_version: string;
  notebook_path: string | null;
  recording: boolean;
}

/**
 * The `recorded` event pushed when an execution has been stored.
 * `execution` is the stored row in the very shape `history` lists it; null
 * only when it could not be read back.
 */
export interface IRecordedEvent {
  event: 'recorded';
  protocol_version: number;
  execution: IHistoryItem | null;
  [key: string]: unknown;
}

/** Parameters of a `history` request. */
export interface IHistoryQuery {
  scope?: 'notebook' | 'project';
  cell_id?: string;
  status?: string;
  since_ms?: number;
  until_ms?: number;
  search?: string;
  limit?: number;
  before?: number | null;
  include_silent?: boolean;
}

export interface IHistoryPage {
  items: IHistoryItem[];
  next_cursor: number | null;
}

/** An error the service answered with (`ok: false`). */
export class LineageError extends Error {
  constructor(
    readonly code: string,
    message: string
  ) {
    super(message);
    this.name = 'LineageError';
  }
}

/**
 * The panel's filter. `cellId` null means all cells; `search` empty means
 * no full-text search.
 */
export interface IHistoryFilter {
  cellId: string | null;
  errorsOnly: boolean;
  search: string;
}

/** Where the connection to a notebook's kernel stands. */
export type ConnectionState =
  'no-kernel' | 'connecting' | 'ready' | 'not-lineage' | 'error';

/** User settings (schema/plugin.json). */
export interface ILineageSettings {
  pageSize: number;
  showCellIndicators: boolean;
  showChart: boolean;
}

export const DEFAULT_SETTINGS: ILineageSettings = {
  pageSize: 50,
  showCellIndicators: true,
  showChart: true
};

/** What the panel offers when the kernel is not a lineage kernel. */
export interface ISwitchOffer {
  /** The lineage kernelspec to switch to. */
  name: string;
  displayName: string;
}

/**
 * One notebook's run history, as the panel, the views and the cell
 * indicators read it: the connection state, the loaded runs under the
 * current filter, per-cell summaries, and executions in full.
 */
export interface IHistoryModel {
  /** A name for the notebook (its path), for headers. */
  readonly label: string;
  /** Emitted when the list, filter or connection state changes. */
  readonly changed: ISignal<IHistoryModel, void>;
  /** Emitted when per-cell summaries change (cell indicators). */
  readonly cellsChanged: ISignal<IHistoryModel, void>;
  /** Emitted for each new run, after the model has folded it in. */
  readonly runRecorded: ISignal<IHistoryModel, IHistoryItem>;
  readonly isDisposed: boolean;
  readonly state: ConnectionState;
  /** Why the state is what it is (shown to the user), if anything. */
  readonly message: string;
  readonly hello: IHello | null;
  /** Loaded runs under the current filter, newest first. */
  readonly items: readonly IHistoryItem[];
  readonly hasMore: boolean;
  readonly loading: boolean;
  /** The last error while loading, if any. */
  readonly loadError: string;
  readonly filter: IHistoryFilter;
  /** The offer to switch kernels, when the kernel is not a lineage one. */
  readonly switchOffer: ISwitchOffer | null;
  /** Per-cell summaries by cell id. */
  readonly cells: ReadonlyMap<string, ICellSummary>;
  /** A cell's 0-based position in the notebook, or -1 when it is gone. */
  cellIndex(cellId: string | null): number;
  /** Change the filter and reload from the first page. */
  setFilter(filter: Partial<IHistoryFilter>): void;
  /** Drop loaded pages and load the first one again. */
  reload(): Promise<void>;
  /** Load the next page, if there is one and none is loading. */
  loadMore(): Promise<void>;
  /** Load the per-cell summaries again. */
  refreshCells(): Promise<void>;
  /** One execution in full (cached). */
  execution(id: number): Promise<IExecution>;
  /** Compare two executions (`a` older, `b` newer by convention). */
  diff(a: number, b: number): Promise<IDiff>;
  /** The run of the same cell just before this one, or null on its first. */
  previousRunOf(item: IHistoryItem): Promise<number | null>;
  /** Whether a run is known to be its cell's first (nothing to compare). */
  isFirstRun(item: IHistoryItem): boolean;
  /** A loaded run by id, if loaded. */
  item(id: number): IHistoryItem | undefined;
}

/**
 * The lineage tracker: one history model per open notebook, shared by the
 * panel, the run views and the cell indicators.
 */
export interface ILineageTracker {
  /** The model of the active notebook, if any. */
  readonly current: IHistoryModel | null;
  /** Emitted when the active notebook (and so `current`) changes. */
  readonly currentChanged: ISignal<ILineageTracker, IHistoryModel | null>;
  /** The settings in force. */
  readonly settings: ILineageSettings;
  readonly settingsChanged: ISignal<ILineageTracker, ILineageSettings>;
  /** Every model, one per open notebook. */
  models(): IHistoryModel[];
  /** The model of a notebook (made on first ask). */
  modelFor(panel: NotebookPanel): IHistoryModel | null;
  /** The notebook a model belongs to. */
  panelFor(model: IHistoryModel): NotebookPanel | null;
  /** Switch a notebook to the lineage kernelspec its model offers. */
  switchKernel(panel: NotebookPanel): Promise<void>;
}

export const ILineageTracker = new Token<ILineageTracker>(
  'jupyter-lineage:ILineageTracker',
  'Per-notebook run history models of jupyter-lineage.'
);

/** Command ids. */
export namespace CommandIDs {
  export const togglePanel = 'lineage:toggle-panel';
  export const showCellHistory = 'lineage:show-cell-history';
  export const showAllHistory = 'lineage:show-all-history';
  export const openRun = 'lineage:open-run';
  export const compareRuns = 'lineage:compare-runs';
  export const compareWithPrevious = 'lineage:compare-with-previous';
  export const restoreRun = 'lineage:restore-run';
  export const toggleErrorsOnly = 'lineage:toggle-errors-only';
  export const focusSearch = 'lineage:focus-search';
  export const refresh = 'lineage:refresh';
}
