/**
 * What the panel's rows, the views' buttons and the commands do: open a run
 * or a comparison in the main area, compare a run with the previous run of
 * its cell, go to a cell, restore a run's code.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  MainAreaWidget,
  Notification,
  ToolbarButton
} from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { historyIcon } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, Widget } from '@lumino/widgets';
import { IPanelActions } from './components/HistoryPanel';
import { errorText } from './format';
import { recordEveryKernel } from './recordevery';
import { IHistoryItem, IHistoryModel, ILineageTracker } from './tokens';
// The run and compare views (and @codemirror/merge) load on first use, so
// they cost nothing at JupyterLab's start.
import type { IViewActions } from './widgets/parts';

export class LineageActions implements IViewActions {
  constructor(options: LineageActions.IOptions) {
    this._o = options;
  }

  /** Open one run in the main area. */
  async openRun(model: IHistoryModel, executionId: number): Promise<Widget> {
    const { RunView } = await import('./widgets/RunView');
    const view = new RunView({
      model,
      executionId,
      editorServices: this._o.editorServices,
      rendermime: this._o.rendermime,
      mimeType: this._mimeTypeOf(model),
      actions: this,
      showChart: this._o.tracker.settings.showChart
    });
    this._openInMain(view, model);
    return view;
  }

  /** Open two runs side by side, the older on the left. */
  async openCompare(model: IHistoryModel, a: number, b: number): Promise<void> {
    const [older, newer] = a < b ? [a, b] : [b, a];
    const { CompareView } = await import('./widgets/CompareView');
    const view = new CompareView({
      model,
      a: older,
      b: newer,
      rendermime: this._o.rendermime,
      languages: this._o.languages,
      mimeType: this._mimeTypeOf(model),
      actions: this
    });
    this._openInMain(view, model);
  }

  /** Compare a run with the run of the same cell before it. */
  async compareWithPrevious(
    model: IHistoryModel,
    item: IHistoryItem
  ): Promise<void> {
    try {
      const prev = await model.previousRunOf(item);
      if (prev === null) {
        Notification.info('This is the first recorded run of its cell.', {
          autoClose: 4000
        });
        return;
      }
      await this.openCompare(model, prev, item.id);
    } catch (err) {
      Notification.error(`Cannot compare: ${errorText(err)}`, {
        autoClose: 6000
      });
    }
  }

  /** Make a cell the notebook's active cell, in view. */
  goToCell(model: IHistoryModel, cellId: string): void {
    const nb = this._o.tracker.panelFor(model);
    const index = model.cellIndex(cellId);
    if (!nb || index < 0) {
      return;
    }
    this._o.app.shell.activateById(nb.id);
    nb.content.activeCellIndex = index;
    void nb.content.scrollToItem(index, 'smart');
  }

  /**
   * Put a run's code back into its cell, as one edit of the cell's shared
   * source (so the cell's undo, Ctrl+Z, takes it back); into a new cell
   * below the active one when the cell is gone.
   */
  async restore(model: IHistoryModel, item: IHistoryItem): Promise<void> {
    const { shell } = this._o.app;
    const nb = this._o.tracker.panelFor(model);
    const nbModel = nb?.content.model;
    if (!nb || !nbModel) {
      return;
    }
    let code: string;
    try {
      code = (await model.execution(item.id)).code ?? '';
    } catch (err) {
      Notification.error(`Cannot restore: ${errorText(err)}`, {
        autoClose: 6000
      });
      return;
    }
    const index = model.cellIndex(item.cell_id);
    const cell = index >= 0 ? nbModel.cells.get(index) : null;
    if (cell && cell.type === 'code') {
      cell.sharedModel.setSource(code);
      shell.activateById(nb.id);
      nb.content.activeCellIndex = index;
      void nb.content.scrollToItem(index, 'smart');
      Notification.success(
        `Restored the code of run ${item.execution_count ?? ''} into cell ${index + 1}.`,
        {
          autoClose: 5000,
          actions: [
            {
              label: 'Undo',
              caption: 'Put the code back as it was (also Ctrl+Z in the cell)',
              callback: () => cell.sharedModel.undo()
            }
          ]
        }
      );
    } else {
      const at = Math.min(
        nbModel.cells.length,
        Math.max(0, nb.content.activeCellIndex + 1)
      );
      nbModel.sharedModel.insertCell(at, {
        cell_type: 'code',
        source: code,
        metadata: {}
      });
      shell.activateById(nb.id);
      nb.content.activeCellIndex = at;
      void nb.content.scrollToItem(at, 'smart');
      Notification.success(
        `The cell of run ${item.execution_count ?? ''} is gone: its code is in a new cell ${at + 1}.`,
        { autoClose: 5000 }
      );
    }
  }

  /** The panel's actions, on whichever model the panel shows. */
  panelActions(current: () => IHistoryModel | null): IPanelActions {
    const withModel =
      <A extends unknown[]>(f: (m: IHistoryModel, ...a: A) => unknown) =>
      (...args: A): void => {
        const m = current();
        if (m) {
          void f(m, ...args);
        }
      };
    const { notebooks, tracker, app } = this._o;
    return {
      open: withModel((m, item: IHistoryItem) => this.openRun(m, item.id)),
      compareWithPrevious: withModel((m, item: IHistoryItem) =>
        this.compareWithPrevious(m, item)
      ),
      compare: withModel((m, a: number, b: number) =>
        this.openCompare(m, a, b)
      ),
      restore: withModel((m, item: IHistoryItem) => this.restore(m, item)),
      switchKernel: () => {
        const nb = notebooks.currentWidget;
        if (nb) {
          tracker
            .switchKernel(nb)
            .catch(err =>
              Notification.error(`Cannot switch kernel: ${errorText(err)}`)
            );
        }
      },
      focusNotebook: () => {
        const nb = notebooks.currentWidget;
        if (nb) {
          app.shell.activateById(nb.id);
        }
      },
      recordEveryKernel: () => {
        const nb = notebooks.currentWidget;
        if (nb) {
          void recordEveryKernel(nb.sessionContext).then(
            done => done && Notification.success(done, { autoClose: 8000 }),
            err =>
              Notification.error(
                `Cannot record every kernel: ${errorText(err)}`
              )
          );
        }
      }
    };
  }

  private _mimeTypeOf(model: IHistoryModel): string {
    const nb = this._o.tracker.panelFor(model);
    return nb?.content.codeMimetype || 'text/x-ipython';
  }

  /**
   * Show a run or compare view in the one preview tab, which every open
   * reuses (the tab's "Keep open" pins it, and the next view gets a new
   * preview). The first preview goes beside the notebook. A shell whose
   * main area holds only the notebook (Notebook 7) gets a dialog instead.
   */
  private _openInMain(view: Widget, model: IHistoryModel): void {
    const { shell } = this._o.app;
    const preview = this._preview;
    if (preview && !preview.isDisposed && preview.isAttached) {
      preview.content.setView(view);
      shell.activateById(preview.id);
      return;
    }
    const host = new PreviewHost();
    const widget = new MainAreaWidget({ content: host });
    widget.id = `jp-lineage-preview-${++this._previews}`;
    widget.title.icon = historyIcon;
    widget.title.closable = true;
    widget.addClass('jp-LineageMain');
    widget.addClass('jp-mod-preview');
    host.titleChanged.connect(() => {
      widget.title.label = host.title.label;
      widget.title.caption = `${host.title.caption}\n(Preview: the next run or comparison you open replaces it; "Keep open" keeps it.)`;
    });
    const keep = new ToolbarButton({
      className: 'jp-LineageKeep',
      label: 'Keep open',
      tooltip: 'Keep this tab: the next run or comparison opens in a new tab',
      onClick: () => {
        if (this._preview === widget) {
          this._preview = null;
        }
        widget.removeClass('jp-mod-preview');
        keep.dispose();
      }
    });
    widget.toolbar.addItem('lineage-keep', keep);
    host.setView(view);
    const nb = this._o.tracker.panelFor(model);
    const last = this._lastTab;
    if (last && !last.isDisposed && last.isAttached) {
      shell.add(widget, 'main', { mode: 'tab-after', ref: last.id });
    } else if (nb) {
      shell.add(widget, 'main', { mode: 'split-right', ref: nb.id });
    } else {
      shell.add(widget, 'main');
    }
    if (!widget.isAttached) {
      // This shell keeps its main area for the notebook.
      host.release(view);
      widget.dispose();
      this._openInDialog(view);
      return;
    }
    this._preview = widget;
    this._lastTab = widget;
    shell.activateById(widget.id);
  }

  /** A view in a dialog, for shells with no room beside the notebook. */
  private _openInDialog(view: Widget): void {
    this._dialog?.reject();
    const dialog = new Dialog({
      title: view.title.label,
      body: view,
      buttons: [Dialog.cancelButton({ label: 'Close' })],
      hasClose: true
    });
    dialog.addClass('jp-LineageDialog');
    view.title.changed.connect(() => {
      const header = dialog.node.querySelector('.jp-Dialog-header');
      if (header) {
        header.textContent = view.title.label;
      }
    });
    this._dialog = dialog;
    void dialog.launch().then(() => {
      if (this._dialog === dialog) {
        this._dialog = null;
      }
    });
  }

  private _o: LineageActions.IOptions;
  /** The tab that the next run or compare view replaces the content of. */
  private _preview: MainAreaWidget<PreviewHost> | null = null;
  /** The last tab opened, to put a new one beside it. */
  private _lastTab: Widget | null = null;
  private _previews = 0;
  private _dialog: Dialog<unknown> | null = null;
}

export namespace LineageActions {
  export interface IOptions {
    app: JupyterFrontEnd;
    tracker: ILineageTracker;
    notebooks: INotebookTracker;
    rendermime: IRenderMimeRegistry;
    editorServices: IEditorServices;
    languages: IEditorLanguageRegistry | null;
  }
}

/**
 * The content of the preview tab: one view at a time, whose title it
 * takes; showing another view disposes the one before.
 */
class PreviewHost extends Panel {
  constructor() {
    super();
    this.addClass('jp-LineagePreview');
    // The tab mirrors its content's title: icon and close box included.
    this.title.icon = historyIcon;
    this.title.closable = true;
  }

  /** Emitted when the shown view's title changes (or another is shown). */
  get titleChanged(): ISignal<this, void> {
    return this._titleChanged;
  }

  setView(view: Widget): void {
    const old = this._view;
    if (old) {
      old.title.changed.disconnect(this._syncTitle, this);
      old.dispose();
    }
    this._view = view;
    this.addWidget(view);
    view.title.changed.connect(this._syncTitle, this);
    this._syncTitle();
  }

  /** Let go of the view without disposing it. */
  release(view: Widget): void {
    if (this._view === view) {
      view.title.changed.disconnect(this._syncTitle, this);
      view.parent = null;
      this._view = null;
    }
  }

  private _syncTitle(): void {
    this.title.label = this._view?.title.label ?? '';
    this.title.caption = this._view?.title.caption ?? '';
    this._titleChanged.emit();
  }

  private _view: Widget | null = null;
  private _titleChanged = new Signal<this, void>(this);
}
