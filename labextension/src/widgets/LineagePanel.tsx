/**
 * The Run history sidebar widget. Follows the active notebook and its
 * active cell; the list itself is components/HistoryPanel.
 */
import React from 'react';
import { ReactWidget, historyIcon } from '@jupyterlab/ui-components';
import { HistoryPanel, IPanelActions } from '../components/HistoryPanel';
import { PanelState } from '../panelstate';

export class LineagePanel extends ReactWidget {
  constructor(actions: IPanelActions) {
    super();
    this._actions = actions;
    this.id = 'jp-lineage-panel';
    this.addClass('jp-LineagePanel');
    this.title.icon = historyIcon;
    this.title.caption = 'Run history';
    this.title.label = '';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Run history');
  }

  readonly state = new PanelState();

  /** Move the keyboard focus to the search box. */
  focusSearch(): void {
    this._searchRef.current?.focus();
    this._searchRef.current?.select();
  }

  /** Move the keyboard focus to the list of runs. */
  focusList(): void {
    (this.node.querySelector('.jp-LineageVirtualList') as HTMLElement)?.focus();
  }

  protected render(): JSX.Element {
    return (
      <HistoryPanel
        state={this.state}
        actions={this._actions}
        searchRef={this._searchRef}
      />
    );
  }

  private _actions: IPanelActions;
  private _searchRef = React.createRef<HTMLInputElement>();
}
