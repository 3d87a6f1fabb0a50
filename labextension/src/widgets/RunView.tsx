/**
 * The run view: one past execution in the main area. Its code in a
 * read-only editor with the notebook's highlighting, its outputs rendered
 * by JupyterLab's rendermime exactly as the notebook rendered them
 * (tracebacks included), and a chart of its resources.
 */
import React from 'react';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Button } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { ResourceChart } from '../components/ResourceChart';
import { StatusIcon } from '../components/StatusIcon';
import {
  formatBytes,
  formatCellPosition,
  formatDelta,
  formatDuration,
  formatExecutionCount,
  formatTimestamp,
  statusLabel
} from '../format';
import { IExecution, IHistoryModel } from '../tokens';
import {
  IViewActions,
  LoadingView,
  ReactPart,
  readOnlyEditor,
  section,
  storedOutputArea
} from './parts';

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
  model: IHistoryModel;
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

export class RunView extends LoadingView {
  constructor(options: RunView.IOptions) {
    super({
      className: 'jp-LineageRunView',
      idPrefix: `jp-lineage-run-${options.executionId}`,
      label: `Run #${options.executionId}`,
      loadingText: 'Loading run…'
    });
    this._options = options;
    this.start(
      () => this._build(),
      `Could not load run #${options.executionId}`
    );
  }

  private async _build(): Promise<void> {
    const { model, executionId, editorServices, rendermime, actions } =
      this._options;
    const exec = await model.execution(executionId);
    if (this.isDisposed) {
      return;
    }
    const name = model.label.split('/').pop() ?? '';
    this.title.label = `Run ${formatExecutionCount(exec.execution_count)} · ${name}`;
    this.title.caption = `${model.label}\n${formatTimestamp(exec.started_ms)}`;
    this.addWidget(
      new ReactPart(() => (
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
  }

  private _options: RunView.IOptions;
}

export namespace RunView {
  export interface IOptions {
    model: IHistoryModel;
    executionId: number;
    editorServices: IEditorServices;
    rendermime: IRenderMimeRegistry;
    /** The code's MIME type (from the notebook's language). */
    mimeType: string;
    actions: IViewActions;
    showChart: boolean;
  }
}
