/**
 * The compare view: two runs side by side. The code in a CodeMirror merge
 * view, the outputs rendered side by side with text diffs per MIME type,
 * and the resource deltas (b − a).
 */
import React from 'react';
import { MergeView } from '@codemirror/merge';
import { EditorState, Extension } from '@codemirror/state';
import { EditorView, lineNumbers } from '@codemirror/view';
import { IEditorLanguageRegistry, jupyterTheme } from '@jupyterlab/codemirror';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';
import { StatusIcon } from '../components/StatusIcon';
import {
  formatBytes,
  formatCellPosition,
  formatDelta,
  formatDuration,
  formatExecutionCount,
  formatTimestamp
} from '../format';
import { IDiff, IExecution, IHistoryItem, IHistoryModel } from '../tokens';
import {
  IViewActions,
  LoadingView,
  ReactPart,
  section,
  storedOutputArea
} from './parts';

/** A CodeMirror merge view (read-only) in a Lumino widget. */
export class MergeWidget extends Widget {
  constructor(a: string, b: string, extensions: Extension[]) {
    super();
    this.addClass('jp-LineageMerge');
    const common: Extension[] = [
      lineNumbers(),
      EditorView.editable.of(false),
      EditorState.readOnly.of(true),
      jupyterTheme,
      ...extensions
    ];
    this.view = new MergeView({
      a: { doc: a, extensions: common },
      b: { doc: b, extensions: common },
      parent: this.node,
      gutter: true,
      highlightChanges: true,
      collapseUnchanged: { margin: 3, minSize: 6 }
    });
  }

  readonly view: MergeView;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.view.destroy();
    super.dispose();
  }
}

function DeltaRow(props: {
  label: string;
  a: number | null | undefined;
  b: number | null | undefined;
  delta: number | null | undefined;
  kind: 'ms' | 'bytes';
}) {
  const fmt = props.kind === 'ms' ? formatDuration : formatBytes;
  const d = props.delta;
  const cls =
    d === null || d === undefined || d === 0
      ? ''
      : d > 0
        ? 'jp-mod-worse'
        : 'jp-mod-better';
  return (
    <tr>
      <th scope="row">{props.label}</th>
      <td>{fmt(props.a)}</td>
      <td>{fmt(props.b)}</td>
      <td className={`jp-LineageDelta ${cls}`}>{formatDelta(d, props.kind)}</td>
    </tr>
  );
}

function RunLabel(props: { item: IHistoryItem; model: IHistoryModel }) {
  const { item, model } = props;
  return (
    <span className="jp-LineageCompare-run">
      <StatusIcon status={item.status} />
      {formatExecutionCount(item.execution_count)}{' '}
      {formatCellPosition(model.cellIndex(item.cell_id), item.cell_id)} ·{' '}
      {formatTimestamp(item.started_ms)}
    </span>
  );
}

function CompareHeader(props: {
  diff: IDiff;
  a: IExecution;
  b: IExecution;
  model: IHistoryModel;
  actions: IViewActions;
}): JSX.Element {
  const { diff, a, b, model } = props;
  const r = diff.resources;
  return (
    <div className="jp-LineageCompare-header">
      <div className="jp-LineageCompare-runs">
        <div>
          <span className="jp-LineageCompare-side">A</span>
          <RunLabel item={a} model={model} />
        </div>
        <div>
          <span className="jp-LineageCompare-side">B</span>
          <RunLabel item={b} model={model} />
        </div>
      </div>
      <div className="jp-LineageCompare-summary">
        {diff.code.changed
          ? `Code: +${diff.code.added_lines} −${diff.code.removed_lines} lines`
          : 'Code unchanged'}
        {' · '}
        {(() => {
          const changed = diff.outputs.filter(o => o.status !== 'unchanged');
          return changed.length === 0
            ? 'outputs unchanged'
            : `${changed.length} output${changed.length === 1 ? '' : 's'} differ`;
        })()}
      </div>
      <table className="jp-LineageDeltas">
        <thead>
          <tr>
            <th />
            <th>A</th>
            <th>B</th>
            <th>B − A</th>
          </tr>
        </thead>
        <tbody>
          <DeltaRow
            label="Duration"
            a={a.wall_ms}
            b={b.wall_ms}
            delta={r.wall_ms}
            kind="ms"
          />
          <DeltaRow
            label="CPU time"
            a={a.cpu_ms}
            b={b.cpu_ms}
            delta={r.cpu_ms}
            kind="ms"
          />
          <DeltaRow
            label="Peak memory"
            a={a.peak_rss}
            b={b.peak_rss}
            delta={r.peak_rss}
            kind="bytes"
          />
          <DeltaRow
            label="Memory change"
            a={a.rss_delta}
            b={b.rss_delta}
            delta={r.rss_delta}
            kind="bytes"
          />
          {a.gpu_mem_peak !== null || b.gpu_mem_peak !== null ? (
            <DeltaRow
              label="GPU memory"
              a={a.gpu_mem_peak}
              b={b.gpu_mem_peak}
              delta={r.gpu_mem_peak}
              kind="bytes"
            />
          ) : null}
        </tbody>
      </table>
    </div>
  );
}

/** A unified diff with added/removed lines coloured. */
function UnifiedDiff(props: { text: string }) {
  const lines = props.text.split('\n');
  return (
    <pre className="jp-LineageUnified">
      {lines.map((l, i) => {
        const cls =
          l.startsWith('+++') || l.startsWith('---')
            ? 'jp-mod-file'
            : l.startsWith('@@')
              ? 'jp-mod-hunk'
              : l.startsWith('+')
                ? 'jp-mod-added'
                : l.startsWith('-')
                  ? 'jp-mod-removed'
                  : '';
        return (
          <div key={i} className={cls}>
            {l || ' '}
          </div>
        );
      })}
    </pre>
  );
}

function OutputDiffs(props: { diff: IDiff }): JSX.Element {
  const changed = props.diff.outputs.filter(o => o.status !== 'unchanged');
  if (changed.length === 0) {
    return <div className="jp-LineageNone">The outputs are the same.</div>;
  }
  return (
    <div className="jp-LineageOutputDiffs">
      {changed.map(o => (
        <div key={o.position} className="jp-LineageOutputDiff">
          <div className="jp-LineageOutputDiff-title">
            Output {o.position + 1}:{' '}
            <span className={`jp-LineageBadge jp-mod-${o.status}`}>
              {o.status}
            </span>{' '}
            {o.output_type_a ?? '—'} → {o.output_type_b ?? '—'}
          </div>
          {o.mimes
            .filter(m => m.status !== 'unchanged')
            .map(m => (
              <div key={m.mime} className="jp-LineageOutputDiff-mime">
                <div>
                  <code>{m.mime}</code>{' '}
                  <span className={`jp-LineageBadge jp-mod-${m.status}`}>
                    {m.status}
                  </span>
                </div>
                {m.unified ? <UnifiedDiff text={m.unified} /> : null}
              </div>
            ))}
        </div>
      ))}
    </div>
  );
}

export class CompareView extends LoadingView {
  constructor(options: CompareView.IOptions) {
    super({
      className: 'jp-LineageCompareView',
      idPrefix: `jp-lineage-compare-${options.a}-${options.b}`,
      label: `Compare #${options.a} ↔ #${options.b}`,
      loadingText: 'Comparing runs…'
    });
    this._options = options;
    this.start(() => this._build(), 'Could not compare runs');
  }

  private async _language(): Promise<Extension[]> {
    const { languages, mimeType } = this._options;
    if (!languages) {
      return [];
    }
    try {
      const spec = languages.findByMIME(mimeType);
      const lang = spec ? await languages.getLanguage(spec) : null;
      return lang?.support ? [lang.support] : [];
    } catch {
      return [];
    }
  }

  private async _build(): Promise<void> {
    const { model, a, b, rendermime, actions } = this._options;
    const [diff, ea, eb, lang] = await Promise.all([
      model.diff(a, b),
      model.execution(a),
      model.execution(b),
      this._language()
    ]);
    if (this.isDisposed) {
      return;
    }
    const name = model.label.split('/').pop() ?? '';
    this.title.label = `${formatExecutionCount(ea.execution_count)} ↔ ${formatExecutionCount(
      eb.execution_count
    )} · ${name}`;
    this.addWidget(
      new ReactPart(() => (
        <CompareHeader
          diff={diff}
          a={ea}
          b={eb}
          model={model}
          actions={actions}
        />
      ))
    );
    this.addWidget(section('Code'));
    this.addWidget(new MergeWidget(ea.code ?? '', eb.code ?? '', lang));
    this.addWidget(section('Output differences'));
    this.addWidget(new ReactPart(() => <OutputDiffs diff={diff} />));
    this.addWidget(section('Outputs side by side'));
    const sides = new Panel();
    sides.addClass('jp-LineageSides');
    for (const [label, exec] of [
      ['A', ea],
      ['B', eb]
    ] as const) {
      const col = new Panel();
      col.addClass('jp-LineageSide');
      const head = new Widget();
      head.addClass('jp-LineageSide-title');
      head.node.textContent = `${label} ${formatExecutionCount(exec.execution_count)}`;
      col.addWidget(head);
      col.addWidget(storedOutputArea(rendermime, exec.outputs));
      sides.addWidget(col);
    }
    this.addWidget(sides);
  }

  private _options: CompareView.IOptions;
}

export namespace CompareView {
  export interface IOptions {
    model: IHistoryModel;
    /** The older run (left). */
    a: number;
    /** The newer run (right). */
    b: number;
    rendermime: IRenderMimeRegistry;
    languages: IEditorLanguageRegistry | null;
    mimeType: string;
    actions: IViewActions;
  }
}
