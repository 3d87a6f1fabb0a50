/**
 * The compare view: two runs side by side. The code in a CodeMirror merge
 * view, the outputs rendered side by side with text diffs per MIME type,
 * and the resource deltas (b − a).
 */
import React from 'react';
import { MergeView, unifiedMergeView } from '@codemirror/merge';
import { EditorState, Extension } from '@codemirror/state';
import { EditorView, lineNumbers } from '@codemirror/view';
import { IEditorLanguageRegistry, jupyterTheme } from '@jupyterlab/codemirror';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';
import { StatusIcon } from '../components/StatusIcon';
import {
  formatBytes,
  formatCellPosition,
  formatDelta,
  formatDuration,
  formatExecutionCount,
  formatTimestamp,
  ownMemory,
  stripAnsi
} from '../format';
import { IDiff, IExecution, IHistoryItem, IHistoryModel } from '../tokens';
import {
  IViewActions,
  LoadingView,
  ReactPart,
  section,
  storedOutputArea
} from './parts';

/** How the code diff is laid out. */
export type CodeDiffMode = 'split' | 'unified';

/** Below this width (px) the code diff starts unified: two columns would not fit. */
const NARROW_PX = 640;

/**
 * The code of two runs compared, read-only: side by side (a CodeMirror
 * merge view) or unified (one editor, removed lines shown above added
 * ones), with lines wrapped or not. Starts unified in a narrow pane.
 */
export class CodeDiffWidget extends Widget {
  constructor(
    private readonly _a: string,
    private readonly _b: string,
    private readonly _extensions: Extension[]
  ) {
    super();
    this.addClass('jp-LineageMerge');
    const bar = document.createElement('div');
    bar.className = 'jp-LineageCodeDiff-bar';
    bar.setAttribute('role', 'toolbar');
    bar.setAttribute('aria-label', 'Code diff layout');
    this._modeButtons = (['split', 'unified'] as const).map(mode => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'jp-LineageCodeDiff-mode';
      b.dataset.mode = mode;
      b.textContent = mode === 'split' ? 'Side by side' : 'Unified';
      b.addEventListener('click', () => this.setMode(mode, this._wrap));
      bar.appendChild(b);
      return b;
    });
    const wrap = document.createElement('label');
    wrap.className = 'jp-LineageCheck jp-LineageCodeDiff-wrap';
    this._wrapBox = document.createElement('input');
    this._wrapBox.type = 'checkbox';
    this._wrapBox.addEventListener('change', () =>
      this.setMode(this._mode, this._wrapBox.checked)
    );
    wrap.append(this._wrapBox, ' Wrap lines');
    bar.appendChild(wrap);
    this.node.appendChild(bar);
    this._host = document.createElement('div');
    this._host.className = 'jp-LineageCodeDiff-host';
    this.node.appendChild(this._host);
  }

  get mode(): CodeDiffMode {
    return this._mode;
  }

  /** Lay the diff out again. */
  setMode(mode: CodeDiffMode, wrap: boolean): void {
    this._mode = mode;
    this._wrap = wrap;
    this._wrapBox.checked = wrap;
    for (const b of this._modeButtons) {
      const on = b.dataset.mode === mode;
      b.classList.toggle('jp-mod-active', on);
      b.setAttribute('aria-pressed', String(on));
    }
    this._destroyView();
    this._host.replaceChildren();
    const common: Extension[] = [
      lineNumbers(),
      EditorView.editable.of(false),
      EditorState.readOnly.of(true),
      jupyterTheme,
      ...(wrap ? [EditorView.lineWrapping] : []),
      ...this._extensions
    ];
    this.node.dataset.mode = mode;
    if (mode === 'split') {
      this._merge = new MergeView({
        a: { doc: this._a, extensions: common },
        b: { doc: this._b, extensions: common },
        parent: this._host,
        gutter: true,
        highlightChanges: true,
        collapseUnchanged: { margin: 3, minSize: 6 }
      });
    } else {
      this._unified = new EditorView({
        doc: this._b,
        extensions: [
          ...common,
          unifiedMergeView({
            original: this._a,
            mergeControls: false,
            highlightChanges: true,
            gutter: true,
            collapseUnchanged: { margin: 3, minSize: 6 }
          })
        ],
        parent: this._host
      });
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._destroyView();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._merge && !this._unified) {
      const width = this.node.clientWidth || window.innerWidth;
      this.setMode(width < NARROW_PX ? 'unified' : 'split', width < NARROW_PX);
    }
  }

  private _destroyView(): void {
    this._merge?.destroy();
    this._merge = null;
    this._unified?.destroy();
    this._unified = null;
  }

  private _mode: CodeDiffMode = 'split';
  private _wrap = false;
  private _host: HTMLElement;
  private _wrapBox: HTMLInputElement;
  private _modeButtons: HTMLButtonElement[];
  private _merge: MergeView | null = null;
  private _unified: EditorView | null = null;
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
  // A run's own peak (over its start), as the rows show it.
  const peakA = ownMemory(a).peak;
  const peakB = ownMemory(b).peak;
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
            label="Memory change"
            a={a.rss_delta}
            b={b.rss_delta}
            delta={r.rss_delta}
            kind="bytes"
          />
          <DeltaRow
            label="Peak over start"
            a={peakA}
            b={peakB}
            delta={peakA === null || peakB === null ? null : peakB - peakA}
            kind="bytes"
          />
          <DeltaRow
            label="Kernel peak"
            a={a.peak_rss}
            b={b.peak_rss}
            delta={r.peak_rss}
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
  // Tracebacks carry IPython's colour codes; a diff shows the text.
  const lines = stripAnsi(props.text)
    .split('\n')
    .filter(l => !l.startsWith('\\ No newline at end of file'));
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
    this.addWidget(new CodeDiffWidget(ea.code ?? '', eb.code ?? '', lang));
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
