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
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LineageActions } from './actions';
import { addCommands } from './commands';
import { LineageTracker } from './tracker';
import {
  CommandIDs,
  DEFAULT_SETTINGS,
  ILineageSettings,
  ILineageTracker
} from './tokens';
import { NotebookIndicators } from './widgets/CellIndicators';
import { LineagePanel } from './widgets/LineagePanel';

export * from './tokens';
export { LineageClient } from './client';
export { HistoryModel } from './model';

const PLUGIN_ID = 'jupyter-lineage:plugin';

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
      typeof c.showChart === 'boolean'
        ? c.showChart
        : DEFAULT_SETTINGS.showChart
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
  requires: [
    ILineageTracker,
    INotebookTracker,
    IRenderMimeRegistry,
    IEditorServices
  ],
  optional: [ILayoutRestorer, ICommandPalette, IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: ILineageTracker,
    notebooks: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    editorServices: IEditorServices,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    languages: IEditorLanguageRegistry | null
  ): void => {
    const actions = new LineageActions({
      app,
      tracker,
      notebooks,
      rendermime,
      editorServices,
      languages
    });
    const panel: LineagePanel = new LineagePanel(
      actions.panelActions(() => panel.state.model)
    );

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

    app.shell.add(panel, 'right', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'jupyter-lineage-panel');
    }
    addCommands(app, panel, actions, notebooks, palette);
  }
};

/** The per-cell run indicators. */
const indicatorsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-lineage:cell-indicators',
  description:
    'Shows in each code cell how many times it ran, its last duration and peak memory.',
  autoStart: true,
  requires: [ILineageTracker, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    tracker: ILineageTracker,
    notebooks: INotebookTracker
  ): void => {
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
