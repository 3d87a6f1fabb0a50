/**
 * jupyter-lineage for JupyterLab: the run history of every cell, recorded by
 * the lineage kernel and served over the `jupyter.lineage` comm.
 *
 * Small plugins:
 * - `jupyter-lineage:plugin`  the tracker (one history model per notebook)
 *                             and the settings;
 * - `jupyter-lineage:panel`   the Run history sidebar, run and compare views,
 *                             restore, commands;
 * - `jupyter-lineage:cell-indicators`  the per-cell run indicators.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { historyIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { IPanelActions } from './components/HistoryPanel';
import { errorText, HistoryModel } from './model';
import { recordEveryKernel } from './recordevery';
import { LineageTracker } from './tracker';
import {
  CommandIDs,
  DEFAULT_SETTINGS,
  IHistoryItem,
  IHistoryPage,
  ILineageSettings,
  ILineageTracker
} from './tokens';
import { NotebookIndicators } from './widgets/CellIndicators';
import { LineagePanel } from './widgets/LineagePanel';
// The run and compare views (and @codemirror/merge) load on first use, so
// they cost nothing at JupyterLab's start.
import type { IViewActions } from './widgets/RunView';

export * from './tokens';
export { HistoryModel, LineageClient } from './model';

const PLUGIN_ID = 'jupyter-lineage:plugin';
const CATEGORY = 'Run History';

/** Read settings, falling back to defaults for anything missing or bad. */
function readSettings(settings: ISettingRegistry.ISettings): ILineageSettings {
  const c = settings.composite as Partial<ILineageSettings>;
  return {
    pageSize:
      typeof c.pageSize === 'number' && c.pageSize >= 1
        ? Math.min(1000, Math.floor(c.pageSize))
        : DEFAULT_SETTINGS.pageSize,
    showCellIndicators:
      typeof c.showCellIndicators === 'boolean'
        ? c.showCellIndicators
        : DEFAULT_SETTINGS.showCellIndicators,
    showChart:
      typeof c.showChart === 'boolean' ? c.showChart : DEFAULT_SETTINGS.showChart
  };
}

/** The tracker: one history model per open notebook, and the settings. */
const trackerPlugin: JupyterFrontEndPlugin<ILineageTracker> = {
  id: PLUGIN_ID,
  description: 'Connects each notebook to its lineage kernel’s run history.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry],
  provides: ILineageTracker,
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    settingRegistry: ISettingRegistry | null
  ): ILineageTracker => {
    const tracker = new LineageTracker(
      notebooks,
      app.serviceManager.kernelspecs ?? null
    );
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          tracker.updateSettings(readSettings(settings));
          settings.changed.connect(() =>
            tracker.updateSettings(readSettings(settings))
          );
        })
        .catch(reason => {
          console.error('jupyter-lineage: cannot load settings', reason);
        });
    }
    return tracker;
  }
};

/** The Run history panel, run and compare views, restore, commands. */
const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-lineage:panel',
  description: 'The Run history sidebar, run view, compare view and restore.',
  autoStart: true,
  requires: [ILineageTracker, INotebookTracker, IRenderMimeRegistry, IEditorServices],
  optional: [ILayoutRestorer, ICommandPalette, IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    lineage: ILineageTracker,
    notebooks: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    editorServices: IEditorServices,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    languages: IEditorLanguageRegistry | null
  ): void => {
    const tracker = lineage as LineageTracker;
    const { commands, shell } = app;

    const mimeTypeOf = (model: HistoryModel): string => {
      const nb = tracker.panelFor(model);
      return nb?.content.codeMimetype || 'text/x-ipython';
    };

    /** Where the last run or compare view was put, to tab the next beside it. */
    let lastView: Widget | null = null;
    const openInMain = (content: Widget, model: HistoryModel): void => {
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
      const nb = tracker.panelFor(model);
      if (lastView && !lastView.isDisposed && lastView.isAttached) {
        shell.add(widget, 'main', { mode: 'tab-after', ref: lastView.id });
      } else if (nb) {
        shell.add(widget, 'main', { mode: 'split-right', ref: nb.id });
      } else {
        shell.add(widget, 'main');
      }
      lastView = widget;
      shell.activateById(widget.id);
    };

    const openRun = async (
      model: HistoryModel,
      executionId: number
    ): Promise<Widget> => {
      const { RunView } = await import('./widgets/RunView');
      const view = new RunView({
        model,
        executionId,
        editorServices,
        rendermime,
        mimeType: mimeTypeOf(model),
        actions: viewActions,
        showChart: tracker.settings.showChart
      });
      openInMain(view, model);
      return view;
    };

    const openCompare = async (
      model: HistoryModel,
      a: number,
      b: number
    ): Promise<void> => {
      const [older, newer] = a < b ? [a, b] : [b, a];
      const { CompareView } = await import('./widgets/CompareView');
      const view = new CompareView({
        model,
        a: older,
        b: newer,
        rendermime,
        languages,
        mimeType: mimeTypeOf(model),
        actions: viewActions
      });
      openInMain(view, model);
    };

    /** The run of the same cell just before `item`. */
    const previousRun = async (
      model: HistoryModel,
      item: IHistoryItem
    ): Promise<number | null> => {
      if (item.prev_execution_id) {
        return item.prev_execution_id;
      }
      if (!item.cell_id || !model.client) {
        return null;
      }
      const page = await model.client.request<IHistoryPage>('history', {
        cell_id: item.cell_id,
        before: item.id,
        limit: 1
      });
      return page.items[0]?.id ?? null;
    };

    const compareWithPrevious = async (
      model: HistoryModel,
      item: IHistoryItem
    ): Promise<void> => {
      try {
        const prev = await previousRun(model, item);
        if (prev === null) {
          Notification.info('This is the first recorded run of its cell.', {
            autoClose: 4000
          });
          return;
        }
        await openCompare(model, prev, item.id);
      } catch (err) {
        Notification.error(`Cannot compare: ${errorText(err)}`, {
          autoClose: 6000
        });
      }
    };

    const goToCell = (model: HistoryModel, cellId: string): void => {
      const nb = tracker.panelFor(model);
      if (!nb) {
        return;
      }
      const index = model.cellIndex(cellId);
      if (index < 0) {
        return;
      }
      shell.activateById(nb.id);
      nb.content.activeCellIndex = index;
      void nb.content.scrollToItem(index, 'smart');
    };

    /**
     * Put a run's code back into its cell, as one edit of the cell's shared
     * source (so the cell's undo, Ctrl+Z, takes it back); into a new cell
     * below the active one when the cell is gone.
     */
    const restore = async (
      model: HistoryModel,
      item: IHistoryItem
    ): Promise<void> => {
      const nb = tracker.panelFor(model);
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
    };

    const viewActions: IViewActions = {
      restore: (m, i) => void restore(m, i),
      compareWithPrevious: (m, i) => void compareWithPrevious(m, i),
      goToCell
    };

    const panel = new LineagePanel({
      open: item => {
        const m = panel.state.model;
        if (m) {
          void openRun(m, item.id);
        }
      },
      compareWithPrevious: item => {
        const m = panel.state.model;
        if (m) {
          void compareWithPrevious(m, item);
        }
      },
      compare: (a, b) => {
        const m = panel.state.model;
        if (m) {
          void openCompare(m, a, b);
        }
      },
      restore: item => {
        const m = panel.state.model;
        if (m) {
          void restore(m, item);
        }
      },
      switchKernel: () => {
        const nb = notebooks.currentWidget;
        const connector = nb ? tracker.connectorFor(nb) : null;
        void connector?.switchKernel().catch(err =>
          Notification.error(`Cannot switch kernel: ${errorText(err)}`)
        );
      },
      focusNotebook: () => {
        const nb = notebooks.currentWidget;
        if (nb) {
          shell.activateById(nb.id);
        }
      },
      recordEveryKernel: () => {
        const nb = notebooks.currentWidget;
        if (nb) {
          void recordEveryKernel(nb.sessionContext).then(
            done => done && Notification.success(done, { autoClose: 8000 }),
            err =>
              Notification.error(`Cannot record every kernel: ${errorText(err)}`)
          );
        }
      }
    } satisfies IPanelActions);

    // Follow the active notebook and its active cell.
    const follow = () => {
      panel.state.setModel(tracker.current);
      panel.state.setActiveCell(notebooks.activeCell?.model.id ?? null);
    };
    tracker.currentChanged.connect(follow);
    notebooks.activeCellChanged.connect(() =>
      panel.state.setActiveCell(notebooks.activeCell?.model.id ?? null)
    );
    follow();

    shell.add(panel, 'right', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'jupyter-lineage-panel');
    }

    const currentModel = (): HistoryModel | null => panel.state.model;
    const hasModel = () => currentModel()?.state === 'ready';

    const showPanel = () => {
      shell.activateById(panel.id);
    };

    /** An execution id from args, or the focused row, or the active cell's last run. */
    const targetRun = (args: { executionId?: unknown }): IHistoryItem | null => {
      const model = currentModel();
      if (!model) {
        return null;
      }
      if (typeof args.executionId === 'number') {
        return (
          model.item(args.executionId) ?? ({ id: args.executionId } as IHistoryItem)
        );
      }
      const focused = panel.state.focusedItem();
      if (focused && panel.isVisible) {
        return focused;
      }
      const cellId = notebooks.activeCell?.model.id;
      const summary = cellId ? model.cells.get(cellId) : undefined;
      if (summary) {
        return (
          model.item(summary.last_execution_id) ??
          ({ id: summary.last_execution_id, cell_id: cellId } as IHistoryItem)
        );
      }
      return null;
    };

    commands.addCommand(CommandIDs.togglePanel, {
      label: 'Show Run History',
      caption: 'Open the Run history panel of the active notebook',
      icon: historyIcon,
      execute: () => {
        if (panel.isVisible) {
          panel.focusList();
        } else {
          showPanel();
          requestAnimationFrame(() => panel.focusList());
        }
      }
    });
    commands.addCommand(CommandIDs.showCellHistory, {
      label: 'Show Runs of This Cell',
      caption: 'Open the Run history panel filtered to a cell',
      execute: args => {
        const cellId =
          typeof args.cellId === 'string'
            ? args.cellId
            : (notebooks.activeCell?.model.id ?? null);
        panel.state.setScope('cell', cellId);
        showPanel();
      }
    });
    commands.addCommand(CommandIDs.showAllHistory, {
      label: 'Show Runs of All Cells',
      execute: () => {
        panel.state.setScope('all');
        showPanel();
      }
    });
    commands.addCommand(CommandIDs.openRun, {
      label: 'Open Run',
      caption: 'Open a run (the focused one, or the active cell’s last run)',
      isEnabled: () => hasModel(),
      execute: args => {
        const model = currentModel();
        const item = targetRun(args);
        if (model && item) {
          return openRun(model, item.id);
        }
      }
    });
    // The run a command acts on, read in full: only an id may be known, and
    // compare and restore both need its cell.
    const fullTargetRun = async (
      args: { executionId?: unknown }
    ): Promise<{ model: NonNullable<ReturnType<typeof currentModel>>; item: IHistoryItem } | null> => {
      const model = currentModel();
      const item = targetRun(args);
      if (!model || !item) {
        return null;
      }
      const full: IHistoryItem =
        item.cell_id !== undefined ? item : await model.execution(item.id);
      return { model, item: full };
    };
    commands.addCommand(CommandIDs.compareWithPrevious, {
      label: 'Compare With Previous Run of This Cell',
      isEnabled: () => hasModel(),
      execute: async args => {
        const target = await fullTargetRun(args);
        if (target) {
          await compareWithPrevious(target.model, target.item);
        }
      }
    });
    commands.addCommand(CommandIDs.compareRuns, {
      label: 'Compare Marked Runs',
      isEnabled: () => hasModel() && panel.state.comparePair() !== null,
      execute: args => {
        const model = currentModel();
        const pair =
          typeof args.a === 'number' && typeof args.b === 'number'
            ? ([args.a, args.b] as [number, number])
            : panel.state.comparePair();
        if (model && pair) {
          return openCompare(model, pair[0], pair[1]);
        }
      }
    });
    commands.addCommand(CommandIDs.restoreRun, {
      label: 'Restore Code of Run',
      caption: 'Put a past run’s code back into its cell (undoable)',
      isEnabled: () => hasModel(),
      execute: async args => {
        const target = await fullTargetRun(args);
        if (target) {
          await restore(target.model, target.item);
        }
      }
    });
    commands.addCommand(CommandIDs.toggleErrorsOnly, {
      label: 'Show Only Failed Runs',
      isToggled: () => panel.state.errorsOnly,
      execute: () => panel.state.setErrorsOnly(!panel.state.errorsOnly)
    });
    commands.addCommand(CommandIDs.focusSearch, {
      label: 'Search Run History',
      execute: () => {
        showPanel();
        requestAnimationFrame(() => panel.focusSearch());
      }
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Reload Run History',
      isEnabled: () => hasModel(),
      execute: async () => {
        const model = currentModel();
        await Promise.all([model?.reload(), model?.refreshCells()]);
      }
    });

    app.commands.addKeyBinding({
      command: CommandIDs.togglePanel,
      keys: ['Accel Shift Y'],
      selector: 'body'
    });
    app.commands.addKeyBinding({
      command: CommandIDs.showCellHistory,
      keys: ['Accel Shift U'],
      selector: '.jp-Notebook'
    });

    if (palette) {
      for (const command of [
        CommandIDs.togglePanel,
        CommandIDs.showCellHistory,
        CommandIDs.showAllHistory,
        CommandIDs.openRun,
        CommandIDs.compareWithPrevious,
        CommandIDs.compareRuns,
        CommandIDs.restoreRun,
        CommandIDs.toggleErrorsOnly,
        CommandIDs.focusSearch,
        CommandIDs.refresh
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
  }
};

/** The per-cell run indicators. */
const indicatorsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-lineage:cell-indicators',
  description: 'Shows in each code cell how many times it ran, its last duration and peak memory.',
  autoStart: true,
  requires: [ILineageTracker, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    lineage: ILineageTracker,
    notebooks: INotebookTracker
  ): void => {
    const tracker = lineage as LineageTracker;
    const live = new Map<NotebookPanel, NotebookIndicators>();
    const onClick = (cellId: string) =>
      void app.commands.execute(CommandIDs.showCellHistory, { cellId });

    const add = (nb: NotebookPanel) => {
      if (live.has(nb) || !tracker.settings.showCellIndicators) {
        return;
      }
      const model = tracker.modelFor(nb);
      if (!model) {
        return;
      }
      const ind = new NotebookIndicators(nb, model, onClick);
      live.set(nb, ind);
      nb.disposed.connect(() => {
        live.get(nb)?.dispose();
        live.delete(nb);
      });
    };
    // The tracker plugin adds its model on widgetAdded first (it activated
    // first), so the model exists here.
    notebooks.widgetAdded.connect((_, nb) => add(nb));
    notebooks.forEach(add);
    tracker.settingsChanged.connect((_, s) => {
      if (s.showCellIndicators) {
        notebooks.forEach(add);
      } else {
        for (const ind of live.values()) {
          ind.dispose();
        }
        live.clear();
      }
    });
  }
};

const plugins: JupyterFrontEndPlugin<any>[] = [
  trackerPlugin,
  panelPlugin,
  indicatorsPlugin
];

export default plugins;
