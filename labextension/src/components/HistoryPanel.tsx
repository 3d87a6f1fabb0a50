/**
 * The Run history panel's React tree: toolbar (scope, errors only, search),
 * connection banners, the virtualised list of runs, the compare bar.
 */
import React from 'react';
import {
  Button,
  closeIcon,
  historyIcon,
  refreshIcon,
  searchIcon,
  undoIcon
} from '@jupyterlab/ui-components';
import {
  firstLine,
  formatBytes,
  formatCellPosition,
  formatDelta,
  formatDuration,
  formatExecutionCount,
  formatTimestamp,
  formatWhen,
  highlightMatches,
  ownMemory,
  statusLabel,
  tickDelay
} from '../format';
import { PanelState } from '../panelstate';
import { IHistoryItem, IHistoryModel } from '../tokens';
import { StatusIcon } from './StatusIcon';
import { VirtualList } from './VirtualList';

/**
 * Row height in px; the list is virtualised on it. Three lines (code,
 * where and when, cost) so duration, CPU and memory stay visible at the
 * default sidebar width.
 */
export const ROW_HEIGHT = 62;

/** What the rows' buttons and keys do. */
export interface IPanelActions {
  open(item: IHistoryItem): void;
  compareWithPrevious(item: IHistoryItem): void;
  compare(a: number, b: number): void;
  restore(item: IHistoryItem): void;
  switchKernel(): void;
  /** `jupyter lineage enable --user`, then a new kernel (recordevery.ts). */
  recordEveryKernel?(): void;
  /** Put the keyboard focus back into the notebook. */
  focusNotebook(): void;
}

/** Where and when a run happened: [7] · cell 3 · 5 s ago. */
export function runWhere(
  item: IHistoryItem,
  position: string,
  now: number
): string[] {
  return [
    formatExecutionCount(item.execution_count),
    position,
    formatWhen(item.started_ms, now)
  ];
}

/** What a run cost: duration, CPU, the cell's own memory, GPU. */
export function runCost(item: IHistoryItem): string[] {
  const parts = [formatDuration(item.wall_ms)];
  if (item.cpu_ms !== null && item.cpu_ms !== undefined) {
    parts.push(`CPU ${formatDuration(item.cpu_ms)}`);
  }
  // The change first, the peak last: at a narrow width the peak is what the
  // ellipsis takes (it is in the row's tooltip too).
  const mem = ownMemory(item);
  if (mem.change !== null) {
    parts.push(`mem ${formatDelta(mem.change, 'bytes')}`);
  }
  if (mem.peak !== null && mem.peak !== mem.change) {
    parts.push(`peak +${formatBytes(mem.peak)}`);
  }
  if (item.gpu_mem_peak !== null && item.gpu_mem_peak !== undefined) {
    parts.push(`GPU ${formatBytes(item.gpu_mem_peak)}`);
  }
  return parts;
}

/** Text with the search's matches marked. */
function Highlighted(props: { text: string; query: string }): JSX.Element {
  const segments = highlightMatches(props.text, props.query);
  return (
    <>
      {segments.map((seg, i) =>
        seg.match ? (
          <mark key={i} className="jp-LineageMatch">
            {seg.text}
          </mark>
        ) : (
          <React.Fragment key={i}>{seg.text}</React.Fragment>
        )
      )}
    </>
  );
}

function MetaLine(props: { parts: string[]; className?: string }) {
  return (
    <div className={`jp-LineageRun-meta ${props.className ?? ''}`}>
      {props.parts.map((p, i) => (
        <span key={i} className="jp-LineageRun-metaItem">
          {p}
        </span>
      ))}
    </div>
  );
}

function RunRow(props: {
  item: IHistoryItem;
  index: number;
  model: IHistoryModel;
  state: PanelState;
  actions: IPanelActions;
  now: number;
  search: string;
}): JSX.Element {
  const { item, index, model, state, actions, now, search } = props;
  const cellIndex = model.cellIndex(item.cell_id);
  const position = formatCellPosition(cellIndex, item.cell_id);
  const marked = state.marked.includes(item.id);
  const focused = state.focusedIndex === index;
  const code = firstLine(item.code_preview) || '(empty cell)';
  const mem = ownMemory(item);
  const title =
    `${statusLabel(item.status)} · ${formatTimestamp(item.started_ms)}` +
    (item.error_name ? `\n${item.error_name}: ${item.error_value ?? ''}` : '') +
    (mem.change !== null || mem.peak !== null
      ? `\nMemory of this cell: change ${formatDelta(mem.change, 'bytes')}, ` +
        `peak ${mem.peak === null ? '—' : `+${formatBytes(mem.peak)}`} over its start ` +
        `(binary units: 1 MiB = 1024 KiB)`
      : '');
  const first = model.isFirstRun(item);
  return (
    <div
      id={`jp-lineage-run-${item.id}`}
      className={
        'jp-LineageRun' +
        (focused ? ' jp-mod-focused' : '') +
        (marked ? ' jp-mod-marked' : '') +
        (item.status === 'error' ? ' jp-mod-error' : '')
      }
      role="option"
      aria-selected={focused}
      data-execution-id={item.id}
      data-cell-id={item.cell_id ?? ''}
      title={title}
      onClick={e => {
        state.setFocused(index);
        if (e.ctrlKey || e.metaKey || e.shiftKey) {
          state.toggleMark(item.id);
        } else {
          actions.open(item);
        }
      }}
    >
      <input
        type="checkbox"
        className="jp-LineageRun-mark"
        checked={marked}
        title="Mark for comparison"
        aria-label="Mark for comparison"
        tabIndex={-1}
        onClick={e => e.stopPropagation()}
        onChange={() => state.toggleMark(item.id)}
      />
      <StatusIcon status={item.status} />
      <div className="jp-LineageRun-body">
        <div className="jp-LineageRun-code">
          <Highlighted text={code} query={search} />
        </div>
        <div className="jp-LineageRun-metaRow">
          <MetaLine parts={runWhere(item, position, now)} />
          {item.error_name ? (
            <span
              className="jp-LineageRun-error"
              title={item.error_value ?? ''}
            >
              <Highlighted text={item.error_name} query={search} />
            </span>
          ) : null}
        </div>
        <MetaLine parts={runCost(item)} className="jp-LineageRun-cost" />
      </div>
      <div className="jp-LineageRun-actions">
        {!first ? (
          <button
            className="jp-LineageIconButton"
            title="Compare with the previous run of this cell (D)"
            aria-label="Compare with previous run"
            tabIndex={-1}
            onClick={e => {
              e.stopPropagation();
              actions.compareWithPrevious(item);
            }}
          >
            ⇄
          </button>
        ) : null}
        <button
          className="jp-LineageIconButton"
          title={
            cellIndex >= 0
              ? 'Restore this code into its cell (R)'
              : 'Restore this code into a new cell (R)'
          }
          aria-label="Restore code"
          tabIndex={-1}
          onClick={e => {
            e.stopPropagation();
            actions.restore(item);
          }}
        >
          <undoIcon.react tag="span" width="14px" height="14px" />
        </button>
      </div>
    </div>
  );
}

function Banner(props: {
  model: IHistoryModel;
  actions: IPanelActions;
}): JSX.Element | null {
  const { model, actions } = props;
  switch (model.state) {
    case 'ready':
      return model.message ? (
        <div className="jp-LineageBanner jp-mod-warning">{model.message}</div>
      ) : null;
    case 'connecting':
      return (
        <div className="jp-LineageBanner">
          {model.message || 'Connecting to the kernel…'}
        </div>
      );
    case 'no-kernel':
      return (
        <div className="jp-LineageBanner">
          {model.message || 'The notebook has no kernel.'}
        </div>
      );
    case 'not-lineage': {
      const offer = model.switchOffer;
      return (
        <div className="jp-LineageBanner jp-LineageNotLineage">
          <p>{model.message}</p>
          <p>
            Run history is recorded by a lineage kernel, which runs the same
            kernel underneath and stores every cell run with its outputs and
            resources.
          </p>
          {offer ? (
            <Button
              className="jp-LineageSwitch"
              onClick={() => actions.switchKernel()}
            >
              Switch to {offer.displayName}
            </Button>
          ) : (
            <p>
              No lineage kernelspec is installed for it. Install one with{' '}
              <code>jupyter lineage install --wrap &lt;kernel&gt;</code>.
            </p>
          )}
          {actions.recordEveryKernel ? (
            <Button
              className="jp-LineageRecordEvery"
              title="Record every kernel under its own name (jupyter lineage enable --user): notebooks keep their kernel"
              onClick={() => actions.recordEveryKernel?.()}
            >
              Record every kernel
            </Button>
          ) : null}
        </div>
      );
    }
    case 'error':
      return (
        <div className="jp-LineageBanner jp-mod-error">
          {model.message || 'The lineage service is not available.'}
        </div>
      );
    default:
      return null;
  }
}

export interface IHistoryPanelProps {
  state: PanelState;
  actions: IPanelActions;
  searchRef: React.RefObject<HTMLInputElement>;
}

/** Re-render on the state's and the model's signals. */
function useModelVersion(state: PanelState): number {
  const [version, setVersion] = React.useState(0);
  React.useEffect(() => {
    const bump = () => setVersion(v => v + 1);
    state.changed.connect(bump);
    let model = state.model;
    model?.changed.connect(bump);
    const follow = () => {
      model?.changed.disconnect(bump);
      model = state.model;
      model?.changed.connect(bump);
    };
    state.changed.connect(follow);
    return () => {
      state.changed.disconnect(bump);
      state.changed.disconnect(follow);
      model?.changed.disconnect(bump);
    };
  }, [state]);
  return version;
}

export function HistoryPanel(props: IHistoryPanelProps): JSX.Element {
  const { state, actions, searchRef } = props;
  useModelVersion(state);
  const model = state.model;
  const [query, setQuery] = React.useState(state.search);
  const [now, setNow] = React.useState(Date.now());

  // Relative times tick (no kernel traffic): every second while the newest
  // run is under a minute old, then as often as its label can change.
  const newest = model?.items[0]?.started_ms ?? null;
  React.useEffect(() => {
    const t = setTimeout(
      () => setNow(Date.now()),
      tickDelay(newest, Date.now())
    );
    return () => clearTimeout(t);
  }, [now, newest]);

  // Debounce the search box into the filter.
  React.useEffect(() => {
    if (query === state.search) {
      return;
    }
    const t = setTimeout(() => state.setSearch(query), 250);
    return () => clearTimeout(t);
  }, [query]);

  const items = model?.items ?? [];
  const onNearEnd = React.useCallback(() => {
    if (model && model.hasMore && !model.loading) {
      void model.loadMore();
    }
  }, [model]);

  const onKeyDown = (e: React.KeyboardEvent) => {
    if (!model) {
      return;
    }
    const page = 8;
    const item = state.focusedItem();
    switch (e.key) {
      case 'ArrowDown':
        state.setFocused(state.focusedIndex + 1);
        break;
      case 'ArrowUp':
        state.setFocused(state.focusedIndex - 1);
        break;
      case 'PageDown':
        state.setFocused(state.focusedIndex + page);
        break;
      case 'PageUp':
        state.setFocused(state.focusedIndex - page);
        break;
      case 'Home':
        state.setFocused(0);
        break;
      case 'End':
        state.setFocused(items.length - 1);
        break;
      case 'Enter':
        if (item) {
          actions.open(item);
        }
        break;
      case ' ':
        if (item) {
          state.toggleMark(item.id);
        }
        break;
      case 'd':
      case 'D':
        if (item && !model.isFirstRun(item)) {
          actions.compareWithPrevious(item);
        }
        break;
      case 'r':
      case 'R':
        if (item) {
          actions.restore(item);
        }
        break;
      case 'Escape':
        actions.focusNotebook();
        break;
      default:
        return;
    }
    e.preventDefault();
    e.stopPropagation();
  };

  const pair = state.comparePair();
  const focusedItem = state.focusedItem();
  const ready = model?.state === 'ready';
  const countText = model
    ? `${items.length}${model.hasMore ? '+' : ''} run${
        items.length === 1 ? '' : 's'
      }`
    : '';

  return (
    <div className="jp-LineagePanel-content">
      <div className="jp-LineagePanel-header">
        <historyIcon.react tag="span" width="16px" height="16px" />
        <span className="jp-LineagePanel-title">Run history</span>
        <span
          className="jp-LineagePanel-notebook"
          title={model?.hello?.notebook_path ?? model?.label ?? ''}
        >
          {model ? (model.label.split('/').pop() ?? '') : ''}
        </span>
        <button
          className="jp-LineageIconButton"
          title="Reload"
          aria-label="Reload history"
          disabled={!ready}
          onClick={() => {
            void model?.reload();
            void model?.refreshCells();
          }}
        >
          <refreshIcon.react tag="span" width="14px" height="14px" />
        </button>
      </div>
      {model === null ? (
        <div className="jp-LineageBanner">
          Open a notebook to see the history of its runs.
        </div>
      ) : (
        <>
          <Banner model={model} actions={actions} />
          {model.state === 'not-lineage' ||
          model.state === 'no-kernel' ? null : (
            <>
              <div
                className="jp-LineagePanel-filters"
                role="toolbar"
                aria-label="Run history filters"
              >
                <div className="jp-LineageSegmented" role="radiogroup">
                  <button
                    role="radio"
                    aria-checked={state.scope === 'all'}
                    className={state.scope === 'all' ? 'jp-mod-active' : ''}
                    onClick={() => state.setScope('all')}
                  >
                    All cells
                  </button>
                  <button
                    role="radio"
                    aria-checked={state.scope === 'cell'}
                    className={state.scope === 'cell' ? 'jp-mod-active' : ''}
                    title={
                      state.cellId
                        ? `Runs of ${formatCellPosition(
                            model.cellIndex(state.cellId),
                            state.cellId
                          )}`
                        : 'Runs of the active cell'
                    }
                    onClick={() => state.setScope('cell')}
                  >
                    Active cell
                  </button>
                </div>
                <label className="jp-LineageCheck">
                  <input
                    type="checkbox"
                    checked={state.errorsOnly}
                    onChange={e => state.setErrorsOnly(e.target.checked)}
                  />
                  Errors only
                </label>
              </div>
              <div className="jp-LineagePanel-search">
                <span className="jp-LineageSearch-icon">
                  <searchIcon.react tag="span" width="14px" height="14px" />
                </span>
                <input
                  ref={searchRef}
                  type="search"
                  className="jp-LineageSearch"
                  placeholder="Search code and outputs"
                  aria-label="Search code and outputs"
                  value={query}
                  onChange={e => setQuery(e.target.value)}
                  onKeyDown={e => {
                    if (e.key === 'Enter') {
                      state.setSearch(query);
                    } else if (e.key === 'ArrowDown') {
                      e.preventDefault();
                      state.setFocused(0);
                      (
                        (e.target as HTMLElement)
                          .closest('.jp-LineagePanel-content')
                          ?.querySelector(
                            '.jp-LineageVirtualList'
                          ) as HTMLElement
                      )?.focus();
                    } else if (e.key === 'Escape' && query) {
                      e.stopPropagation();
                      setQuery('');
                      state.setSearch('');
                    }
                  }}
                />
              </div>
            </>
          )}
          {ready ? (
            <VirtualList
              items={items}
              rowHeight={ROW_HEIGHT}
              focusedIndex={state.focusedIndex}
              onNearEnd={onNearEnd}
              className="jp-LineageList"
              listProps={{
                tabIndex: 0,
                role: 'listbox',
                'aria-label': 'Runs, newest first',
                'aria-activedescendant': focusedItem
                  ? `jp-lineage-run-${focusedItem.id}`
                  : undefined,
                onKeyDown,
                onFocus: () => {
                  if (state.focusedIndex < 0 && items.length > 0) {
                    state.setFocused(0);
                  }
                }
              }}
              renderRow={(item, index) => (
                <RunRow
                  item={item}
                  index={index}
                  model={model}
                  state={state}
                  actions={actions}
                  now={now}
                  search={state.search}
                />
              )}
              footer={
                <div className="jp-LineageList-footer">
                  {model.loadError
                    ? `Could not load runs: ${model.loadError}`
                    : model.loading
                      ? 'Loading…'
                      : items.length === 0
                        ? state.search ||
                          state.errorsOnly ||
                          state.scope === 'cell'
                          ? 'No runs match.'
                          : 'No runs yet. Run a cell and it shows up here.'
                        : model.hasMore
                          ? ''
                          : 'Start of the history.'}
                </div>
              }
            />
          ) : null}
          <div className="jp-LineagePanel-footer">
            <span className="jp-LineagePanel-count">
              {ready ? countText : ''}
            </span>
            {state.marked.length > 0 ? (
              <>
                <span className="jp-LineagePanel-marked">
                  {state.marked.length} marked
                </span>
                <Button
                  small
                  className="jp-LineageCompare"
                  disabled={!pair}
                  title="Compare the two marked runs"
                  onClick={() => pair && actions.compare(pair[0], pair[1])}
                >
                  Compare
                </Button>
                <button
                  className="jp-LineageIconButton"
                  title="Clear marks"
                  aria-label="Clear marks"
                  onClick={() => state.clearMarks()}
                >
                  <closeIcon.react tag="span" width="14px" height="14px" />
                </button>
              </>
            ) : ready && items.length > 1 ? (
              <span className="jp-LineagePanel-hint">
                Ctrl-click or Space marks runs to compare
              </span>
            ) : null}
          </div>
        </>
      )}
    </div>
  );
}
