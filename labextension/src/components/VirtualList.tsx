/**
 * A virtualised list of fixed-height rows: only the rows in view (plus a few)
 * are in the DOM, so 10,000 runs cost as much as 30. Asks for more rows when
 * the user scrolls near the end.
 */
import React from 'react';

export interface IVirtualListProps<T> {
  items: readonly T[];
  rowHeight: number;
  /** Rows rendered above and below the viewport. */
  overscan?: number;
  /** Called when the viewport comes within `threshold` rows of the end. */
  onNearEnd?: () => void;
  threshold?: number;
  /** Index of the keyboard-focused row (kept in view). */
  focusedIndex: number;
  renderRow: (item: T, index: number) => React.ReactNode;
  /** Shown after the last row (e.g. "loading…"). */
  footer?: React.ReactNode;
  className?: string;
  listProps?: React.HTMLAttributes<HTMLDivElement>;
}

export function VirtualList<T>(props: IVirtualListProps<T>): JSX.Element {
  const {
    items,
    rowHeight,
    overscan = 6,
    onNearEnd,
    threshold = 15,
    focusedIndex,
    renderRow,
    footer,
    className,
    listProps
  } = props;
  const ref = React.useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = React.useState(0);
  const [height, setHeight] = React.useState(400);

  React.useEffect(() => {
    const node = ref.current;
    if (!node) {
      return;
    }
    setHeight(node.clientHeight || 400);
    if (typeof ResizeObserver === 'undefined') {
      return;
    }
    const ro = new ResizeObserver(() => setHeight(node.clientHeight || 400));
    ro.observe(node);
    return () => ro.disconnect();
  }, []);

  // Keep the focused row in view.
  React.useEffect(() => {
    const node = ref.current;
    if (!node || focusedIndex < 0) {
      return;
    }
    const top = focusedIndex * rowHeight;
    if (top < node.scrollTop) {
      node.scrollTop = top;
    } else if (top + rowHeight > node.scrollTop + node.clientHeight) {
      node.scrollTop = top + rowHeight - node.clientHeight;
    }
  }, [focusedIndex, rowHeight]);

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(
    items.length,
    Math.ceil((scrollTop + height) / rowHeight) + overscan
  );

  React.useEffect(() => {
    if (onNearEnd && last >= items.length - threshold) {
      onNearEnd();
    }
  }, [last, items.length, onNearEnd, threshold]);

  const rows: React.ReactNode[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div
        key={i}
        className="jp-LineageVirtualList-row"
        style={{ top: i * rowHeight, height: rowHeight }}
      >
        {renderRow(items[i], i)}
      </div>
    );
  }
  return (
    <div
      ref={ref}
      className={`jp-LineageVirtualList ${className ?? ''}`}
      onScroll={e => setScrollTop((e.target as HTMLDivElement).scrollTop)}
      {...listProps}
    >
      <div
        className="jp-LineageVirtualList-spacer"
        style={{ height: items.length * rowHeight }}
      >
        {rows}
      </div>
      {footer}
    </div>
  );
}
