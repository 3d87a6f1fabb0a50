/**
 * One history model (and its kernel connector) per open notebook.
 */
import type { KernelSpec } from '@jupyterlab/services';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import { SessionConnector } from './connection';
import { HistoryModel } from './model';
import {
  DEFAULT_SETTINGS,
  IHistoryModel,
  ILineageSettings,
  ILineageTracker
} from './tokens';

export class LineageTracker implements ILineageTracker {
  constructor(
    private readonly _notebooks: INotebookTracker,
    private readonly _specs: KernelSpec.IManager | null
  ) {
    _notebooks.widgetAdded.connect((_, panel) => this._add(panel));
    _notebooks.forEach(panel => this._add(panel));
    _notebooks.currentChanged.connect(() =>
      this._currentChanged.emit(this.current)
    );
  }

  get current(): HistoryModel | null {
    const panel = this._notebooks.currentWidget;
    if (!panel) {
      return null;
    }
    // The notebook tracker may announce a new current notebook before its
    // widgetAdded signal reaches us.
    this._add(panel);
    return this._entries.get(panel)?.model ?? null;
  }

  get currentChanged(): ISignal<this, HistoryModel | null> {
    return this._currentChanged;
  }

  get settings(): ILineageSettings {
    return this._settings;
  }

  get settingsChanged(): ISignal<this, ILineageSettings> {
    return this._settingsChanged;
  }

  updateSettings(settings: ILineageSettings): void {
    this._settings = settings;
    for (const { model } of this._entries.values()) {
      model.pageSize = settings.pageSize;
    }
    this._settingsChanged.emit(settings);
  }

  models(): HistoryModel[] {
    return Array.from(this._entries.values()).map(e => e.model);
  }

  modelFor(panel: NotebookPanel): HistoryModel | null {
    this._add(panel);
    return this._entries.get(panel)?.model ?? null;
  }

  async switchKernel(panel: NotebookPanel): Promise<void> {
    await this._entries.get(panel)?.connector.switchKernel();
  }

  /** The notebook panel a model belongs to. */
  panelFor(model: IHistoryModel): NotebookPanel | null {
    for (const [panel, e] of this._entries) {
      if (e.model === model) {
        return panel;
      }
    }
    return null;
  }

  private _add(panel: NotebookPanel): void {
    if (this._entries.has(panel) || panel.isDisposed) {
      return;
    }
    const model = new HistoryModel({
      pageSize: this._settings.pageSize,
      label: panel.context.path
    });
    // Cell positions, recomputed lazily after the cell list changes.
    let index: Map<string, number> | null = null;
    const invalidate = () => {
      index = null;
      // Positions changed: let the views redraw.
      model.notifyViews();
    };
    const watchCells = () => {
      index = null;
      panel.content.model?.cells.changed.connect(invalidate);
    };
    panel.content.modelChanged.connect(watchCells);
    watchCells();
    model.cellLocator = (cellId: string) => {
      if (!index) {
        index = new Map();
        const cells = panel.content.model?.cells;
        if (cells) {
          for (let i = 0; i < cells.length; i++) {
            index.set(cells.get(i).id, i);
          }
        }
      }
      return index.get(cellId) ?? -1;
    };
    panel.context.pathChanged.connect((_, path) => (model.label = path));
    const connector = new SessionConnector(
      panel.sessionContext,
      model,
      this._specs
    );
    this._entries.set(panel, { model, connector });
    panel.disposed.connect(() => {
      this._entries.delete(panel);
      connector.dispose();
      model.dispose();
    });
  }

  private _entries = new Map<
    NotebookPanel,
    { model: HistoryModel; connector: SessionConnector }
  >();
  private _settings: ILineageSettings = { ...DEFAULT_SETTINGS };
  private _currentChanged = new Signal<this, HistoryModel | null>(this);
  private _settingsChanged = new Signal<this, ILineageSettings>(this);
}
