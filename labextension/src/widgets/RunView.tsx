/**
 * The run view: one past execution in the main area. Its code in a
 * read-only editor with the notebook's highlighting, its outputs rendered
 * by JupyterLab's rendermime exactly as the notebook rendered them
 * (tracebacks included), and a chart of its resources.
 */
import React from 'react';
import { CodeEditor, CodeEditorWrapper, IEditorServices } from '@jupyterlab/codeeditor';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import * as nbformat from '@jupyterlab/nbformat';
import { Button, ReactWidget } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';
import { StatusIcon } from '../components/HistoryPanel';
import { ResourceChart } from '../components/ResourceChart';
import {
  formatBytes,
  formatCellPosition,
  formatDelta,
  formatDuration,
  formatExecutionCount,
  formatTimestamp,
  statusLabel
} from '../format';
import { errorText, HistoryModel } from '../model';
import { IExecution, IHistoryItem, IStoredOutput } from '../tokens';

/** What the run and compare views' buttons do. */
export interface IViewActions {
  restore(model: HistoryModel, item: IHistoryItem): void;
  compareWithPrevious(model: HistoryModel, item: IHistoryItem): void;
  goToCell(model: HistoryModel, cellId: string): void;
}

/** Build a read-only editor showing `code` with the given MIME type. */
export function readOnlyEditor(
  editorServices: IEditorServices,
  code: string,
  mimeType: string
): CodeEditorWrapper {
  const model = new CodeEditor.Model({ mimeType });
  model.sharedModel.setSource(code);
  const editor = new CodeEditorWrapper({
    factory: editorServices.factoryService.newInlineEditor,
    model,
    editorOptions: {
      config: { readOnly: true, lineNumbers: true, lineWrap: false }
    }
  });
  editor.addClass('jp-LineageCode');
  editor.disposed.connect(() => model.dispose());
  return editor;
}

/**
 * An output area holding stored outputs. Past outputs are rendered
 * untrusted: HTML is sanitised and scripts do not run, as for a notebook
 * opened from disk that the user has not trusted.
 */
export function storedOutputArea(
  rendermime: IRenderMimeRegistry,
  outputs: readonly IStoredOutput[]
): OutputArea {
  const model = new OutputAreaModel({ trusted: false });
  model.fromJSON(outputs.map(o => o.output as unknown as nbformat.IOutput));
  const area = new OutputArea({ model, rendermime });
  area.addClass('jp-LineageOutputs');
  area.disposed.connect(() => model.dispose());
  return area;
}

function Stat(props: { label: string; value: string; title?: string }) {
  return (
    <div className="jp-LineageStat" title={props.title}>
      <div className="jp-LineageStat-label">{props.label}</div>
      <div className="jp-LineageStat-value">{props.value}</div>
    </div>
  );
}

function RunHeader(props: {
  exec: IExecution;
  model: HistoryModel;
  actions: IViewActions;
  showChart: boolean;
}): JSX.Element {
  const { exec, model, actions, showChart } = props;
  const cellIndex = model.cellIndex(exec.cell_id);
  return (
    <div className="jp-LineageRunView-header">
      <div className="jp-LineageRunView-title">
        <StatusIcon status={exec.status} />
        <span className="jp-LineageRunView-count">
          {formatExecutionCount(exec.execution_count)}
        </span>
        <span>{formatCellPosition(cellIndex, exec.cell_id)}</span>
        <span className="jp-LineageRunView-when">
          {formatTimestamp(exec.started_ms)}
        </span>
        <span className="jp-LineageRunView-status">
          {statusLabel(exec.status)}
          {exec.error_name ? `: ${exec.error_name}` : ''}
        </span>
        <span className="jp-LineageRunView-spacer" />
        {exec.cell_id && cellIndex >= 0 ? (
          <Button
            small
            minimal
            onClick={() => actions.goToCell(model, exec.cell_id as string)}
          >
            Go to cell
          </Button>
        ) : null}
        {exec.prev_execution_id ? (
          <Button
            small
            className="jp-LineageRunView-comparePrev"
            onClick={() => actions.compareWithPrevious(model, exec)}
          >
            Compare with previous
          </Button>
        ) : null}
        <Button
          small
          className="jp-LineageRunView-restore"
          title={
            cellIndex >= 0
              ? 'Put this code back into its cell (undo with Ctrl+Z in the cell)'
              : 'The cell is gone: put this code into a new cell'
          }
          onClick={() => actions.restore(model, exec)}
        >
          {cellIndex >= 0 ? 'Restore code' : 'Restore into new cell'}
        </Button>
      </div>
      <div className="jp-LineageRunView-stats">
        <Stat label="Duration" value={formatDuration(exec.wall_ms)} />
        <Stat label="CPU time" value={formatDuration(exec.cpu_ms)} />
        <Stat label="Peak memory" value={formatBytes(exec.peak_rss)} />
        <Stat
          label="Memory change"
          value={formatDelta(exec.rss_delta ?? null, 'bytes')}
        />
        {exec.gpu_mem_peak !== null && exec.gpu_mem_peak !== undefined ? (
          <Stat label="GPU memory" value={formatBytes(exec.gpu_mem_peak)} />
        ) : null}
        {exec.gpu_util_max !== null && exec.gpu_util_max !== undefined ? (
          <Stat label="GPU use" value={`${exec.gpu_util_max} %`} />
        ) : null}
        <Stat label="Outputs" value={String(exec.outputs.length)} />
      </div>
      {exec.truncated ? (
        <div className="jp-LineageBanner jp-mod-warning">
          Some outputs were too large and were stored truncated.
        </div>
      ) : null}
      {showChart ? <ResourceChart samples={exec.samples ?? []} /> : null}
    </div>
  );
}

/** A header rendered with React (the rest of the view is Lumino). */
class HeaderWidget extends ReactWidget {
  constructor(private readonly _render: () => JSX.Element) {
    super();
  }
  protected render(): JSX.Element {
    return this._render();
  }
}

export class RunView extends Panel {
  constructor(options: RunView.IOptions) {
    super();
    this.addClass('jp-LineageRunView');
    this.id = `jp-lineage-run-${options.executionId}-${Private.nextId++}`;
    this.title.label = `Run #${options.executionId}`;
    this.title.closable = true;
    this._options = options;
    const loading = new Widget();
    loading.node.textContent = 'Loading run…';
    loading.addClass('jp-LineageBanner');
    this.addWidget(loading);
    void this._load(loading);
  }

  readonly ready: Promise<void> = new Promise(r => (this._resolveReady = r));

  private async _load(loading: Widget): Promise<void> {
    const { model, executionId, editorServices, rendermime, actions } =
      this._options;
    try {
      const exec = await model.execution(executionId);
      if (this.isDisposed) {
        return;
      }
      loading.dispose();
      const name = model.label.split('/').pop() ?? '';
      this.title.label = `Run ${formatExecutionCount(exec.execution_count)} · ${name}`;
      this.title.caption = `${model.label}\n${formatTimestamp(exec.started_ms)}`;
      this.addWidget(
        new HeaderWidget(() => (
          <RunHeader
            exec={exec}
            model={model}
            actions={actions}
            showChart={this._options.showChart}
          />
        ))
      );
      this.addWidget(section('Code'));
      this.addWidget(
        readOnlyEditor(editorServices, exec.code ?? '', this._options.mimeType)
      );
      this.addWidget(section(`Outputs (${exec.outputs.length})`));
      if (exec.outputs.length === 0) {
        const none = new Widget();
        none.node.textContent = 'This run produced no output.';
        none.addClass('jp-LineageNone');
        this.addWidget(none);
      } else {
        this.addWidget(storedOutputArea(rendermime, exec.outputs));
      }
    } catch (err) {
      loading.node.textContent = `Could not load run #${executionId}: ${errorText(err)}`;
      loading.addClass('jp-mod-error');
    } finally {
      this._resolveReady();
    }
  }

  private _options: RunView.IOptions;
  private _resolveReady!: () => void;
}

export namespace RunView {
  export interface IOptions {
    model: HistoryModel;
    executionId: number;
    editorServices: IEditorServices;
    rendermime: IRenderMimeRegistry;
    /** The code's MIME type (from the notebook's language). */
    mimeType: string;
    actions: IViewActions;
    showChart: boolean;
  }
}

/** A section heading inside a view. */
export function section(text: string): Widget {
  const w = new Widget();
  w.addClass('jp-LineageSection');
  w.node.textContent = text;
  return w;
}

namespace Private {
  export let nextId = 0;
}
