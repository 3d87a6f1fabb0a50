/**
 * The commands of the Run history, their key bindings and palette entries
 * (as jupyterlab-git's `addCommands`).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { historyIcon } from '@jupyterlab/ui-components';
import { LineageActions } from './actions';
import { CommandIDs, IHistoryItem, IHistoryModel } from './tokens';
import { LineagePanel } from './widgets/LineagePanel';

const CATEGORY = 'Run History';

/** The argument schema of a command (`describedBy`), for the command's callers. */
function argsOf(
  properties: Record<string, { type: string; description: string }>
) {
  return { args: { type: 'object', properties } };
}
const NO_ARGS = argsOf({});
const RUN_ARGS = argsOf({
  executionId: {
    type: 'number',
    description:
      'The run (execution id); default: the focused row, else the active cell’s last run'
  }
});

export function addCommands(
  app: JupyterFrontEnd,
  panel: LineagePanel,
  actions: LineageActions,
  notebooks: INotebookTracker,
  palette: ICommandPalette | null
): void {
  const { commands, shell } = app;
  const currentModel = (): IHistoryModel | null => panel.state.model;
  const hasModel = () => currentModel()?.state === 'ready';
  const showPanel = () => shell.activateById(panel.id);

  /**
   * Make a cell its notebook's active cell (and that notebook the current
   * one), so the panel's "Active cell" scope shows that cell and stays on it.
   */
  const selectCell = (cellId: string): void => {
    const nb =
      notebooks.find(w => {
        const cells = w.content.model?.cells;
        if (!cells) {
          return false;
        }
        for (let i = 0; i < cells.length; i++) {
          if (cells.get(i).id === cellId) {
            return true;
          }
        }
        return false;
      }) ?? null;
    if (!nb) {
      return;
    }
    const index = nb.content.widgets.findIndex(c => c.model.id === cellId);
    if (index >= 0 && nb.content.activeCellIndex !== index) {
      nb.content.activeCellIndex = index;
    }
  };

  /** An execution id from args, or the focused row, or the active cell's last run. */
  const targetRun = (args: { executionId?: unknown }): IHistoryItem | null => {
    const model = currentModel();
    if (!model) {
      return null;
    }
    if (typeof args.executionId === 'number') {
      return (
        model.item(args.executionId) ??
        ({ id: args.executionId } as IHistoryItem)
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

  // The run a command acts on, read in full: only an id may be known, and
  // compare and restore both need its cell.
  const fullTargetRun = async (args: {
    executionId?: unknown;
  }): Promise<{ model: IHistoryModel; item: IHistoryItem } | null> => {
    const model = currentModel();
    const item = targetRun(args);
    if (!model || !item) {
      return null;
    }
    const full: IHistoryItem =
      item.cell_id !== undefined ? item : await model.execution(item.id);
    return { model, item: full };
  };

  commands.addCommand(CommandIDs.togglePanel, {
    describedBy: NO_ARGS,
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
    describedBy: argsOf({
      cellId: {
        type: 'string',
        description: 'The cell whose runs to show; default: the active cell'
      }
    }),
    label: 'Show Runs of This Cell',
    caption: 'Open the Run history panel filtered to a cell',
    execute: args => {
      const cellId =
        typeof args.cellId === 'string'
          ? args.cellId
          : (notebooks.activeCell?.model.id ?? null);
      if (cellId) {
        selectCell(cellId);
      }
      panel.state.setScope('cell', cellId);
      showPanel();
    }
  });
  commands.addCommand(CommandIDs.showAllHistory, {
    describedBy: NO_ARGS,
    label: 'Show Runs of All Cells',
    execute: () => {
      panel.state.setScope('all');
      showPanel();
    }
  });
  commands.addCommand(CommandIDs.openRun, {
    describedBy: RUN_ARGS,
    label: 'Open Run',
    caption: 'Open a run (the focused one, or the active cell’s last run)',
    isEnabled: () => hasModel(),
    execute: async args => {
      const model = currentModel();
      const item = targetRun(args);
      if (model && item) {
        await actions.openRun(model, item.id);
      }
    }
  });
  commands.addCommand(CommandIDs.compareWithPrevious, {
    describedBy: RUN_ARGS,
    label: 'Compare With Previous Run of This Cell',
    isEnabled: () => hasModel(),
    execute: async args => {
      const target = await fullTargetRun(args);
      if (target) {
        await actions.compareWithPrevious(target.model, target.item);
      }
    }
  });
  commands.addCommand(CommandIDs.compareRuns, {
    describedBy: argsOf({
      a: { type: 'number', description: 'One run (execution id)' },
      b: {
        type: 'number',
        description: 'The other run; default for both: the two marked runs'
      }
    }),
    label: 'Compare Marked Runs',
    isEnabled: () => hasModel() && panel.state.comparePair() !== null,
    execute: args => {
      const model = currentModel();
      const pair =
        typeof args.a === 'number' && typeof args.b === 'number'
          ? ([args.a, args.b] as [number, number])
          : panel.state.comparePair();
      if (model && pair) {
        return actions.openCompare(model, pair[0], pair[1]);
      }
    }
  });
  commands.addCommand(CommandIDs.restoreRun, {
    describedBy: RUN_ARGS,
    label: 'Restore Code of Run',
    caption: 'Put a past run’s code back into its cell (undoable)',
    isEnabled: () => hasModel(),
    execute: async args => {
      const target = await fullTargetRun(args);
      if (target) {
        await actions.restore(target.model, target.item);
      }
    }
  });
  commands.addCommand(CommandIDs.toggleErrorsOnly, {
    describedBy: NO_ARGS,
    label: 'Show Only Failed Runs',
    isToggled: () => panel.state.errorsOnly,
    execute: () => panel.state.setErrorsOnly(!panel.state.errorsOnly)
  });
  commands.addCommand(CommandIDs.focusSearch, {
    describedBy: NO_ARGS,
    label: 'Search Run History',
    execute: () => {
      showPanel();
      requestAnimationFrame(() => panel.focusSearch());
    }
  });
  commands.addCommand(CommandIDs.refresh, {
    describedBy: NO_ARGS,
    label: 'Reload Run History',
    isEnabled: () => hasModel(),
    execute: async () => {
      const model = currentModel();
      await Promise.all([model?.reload(), model?.refreshCells()]);
    }
  });

  commands.addKeyBinding({
    command: CommandIDs.togglePanel,
    keys: ['Accel Shift Y'],
    selector: 'body'
  });
  commands.addKeyBinding({
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
