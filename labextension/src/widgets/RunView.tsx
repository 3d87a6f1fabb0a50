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
  ownMemory,
  pageBundle,
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
  hasPrevious: boolean;
}): JSX.Element {
  const { exec, model, actions, showChart, hasPrevious } = props;
  const cellIndex = model.cellIndex(exec.cell_id);
  const mem = ownMemory(exec);
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
        {hasPrevious ? (
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
        <Stat
          label="Memory change"
          value={formatDelta(mem.change, 'bytes')}
          title="Resident memory at the end of the run minus at its start"
        />
        <Stat
          label="Peak over start"
          value={mem.peak === null ? '—' : `+${formatBytes(mem.peak)}`}
          title="How much more memory the run needed at its height than at its start"
        />
        <Stat
          label="Kernel peak"
          value={formatBytes(exec.peak_rss)}
          title="The whole kernel's resident memory at the run's height"
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
      {showChart ? (
        <ResourceChart samples={exec.samples ?? []} wallMs={exec.wall_ms} />
      ) : null}
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
    // Whether there is an earlier run of this cell to compare with; a
    // failed look-up only hides the button.
    const previous = await model.previousRunOf(exec).catch(() => null);
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
          hasPrevious={previous !== null}
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
    // The pager's text (`obj?`, `%prun`…), as the notebook showed it below
    // the cell.
    const page = pageBundle(exec.page);
    if (page) {
      this.addWidget(section('Pager'));
      const area = storedOutputArea(rendermime, [
        { output: { output_type: 'display_data', data: page, metadata: {} } }
      ]);
      area.addClass('jp-LineagePager');
      this.addWidget(area);
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
