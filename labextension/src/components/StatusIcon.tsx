/**
 * A run's status as an icon with its label, shared by the panel's rows and
 * the run and compare views.
 */
import React from 'react';
import {
  caretDownEmptyThinIcon,
  checkIcon,
  errorIcon,
  runningIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import { statusLabel } from '../format';

export function StatusIcon(props: { status: string }): JSX.Element {
  const { status } = props;
  const Icon =
    status === 'ok'
      ? checkIcon
      : status === 'error' || status === 'died'
        ? errorIcon
        : status === 'running'
          ? runningIcon
          : status === 'interrupted' || status === 'aborted'
            ? stopIcon
            : caretDownEmptyThinIcon;
  return (
    <span
      className={`jp-LineageStatus jp-LineageStatus-${status}`}
      title={statusLabel(status)}
      aria-label={statusLabel(status)}
      role="img"
    >
      <Icon.react tag="span" width="14px" height="14px" />
    </span>
  );
}
