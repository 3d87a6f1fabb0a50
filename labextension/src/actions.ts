/**
 * What the panel's rows, the views' buttons and the commands do: open a run
 * or a comparison in the main area, compare a run with the previous run of
 * its cell, go to a cell, restore a run's code.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { historyIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { IPanelActions } from './components/HistoryPanel';
import { errorText } from './format';
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
      }
    };
  }

  private _mimeTypeOf(model: IHistoryModel): string {
    const nb = this._o.tracker.panelFor(model);
    return nb?.content.codeMimetype || 'text/x-ipython';
  }

  /** Put a view in the main area: beside the last view, else beside its notebook. */
  private _openInMain(content: Widget, model: IHistoryModel): void {
    const { shell } = this._o.app;
    const widget = new MainAreaWidget({ content });
    widget.title.label = content.title.label;
    widget.title.caption = content.title.caption;
    widget.title.icon = historyIcon;
    widget.title.closable = true;
    widget.addClass('jp-LineageMain');
    content.title.changed.connect(() => {
      widget.title.label = content.title.label;
      widget.title.caption = content.title.caption;
    });
    const nb = this._o.tracker.panelFor(model);
    const last = this._lastView;
    if (last && !last.isDisposed && last.isAttached) {
      shell.add(widget, 'main', { mode: 'tab-after', ref: last.id });
    } else if (nb) {
      shell.add(widget, 'main', { mode: 'split-right', ref: nb.id });
    } else {
      shell.add(widget, 'main');
    }
    this._lastView = widget;
    shell.activateById(widget.id);
  }

  private _o: LineageActions.IOptions;
  /** Where the last run or compare view was put, to tab the next beside it. */
  private _lastView: Widget | null = null;
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
