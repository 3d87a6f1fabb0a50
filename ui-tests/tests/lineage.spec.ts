/**
 * The Run history panel against real JupyterLab, real chromium and the real
 * lineage kernel (python3-lineage wrapping ipykernel).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import {
  artifact,
  cellSource,
  LINEAGE_KERNEL,
  notebook,
  openPanel,
  PLAIN_KERNEL,
  PNG_CELL,
  setCellSource,
  waitForKernelIdle
} from './helpers';

test.use({ autoGoto: true });

const NAME = 'lineage.ipynb';
const CELLS = [
  { id: 'c-print', source: 'print("hello lineage")' },
  { id: 'c-error', source: '1/0' },
  { id: 'c-png', source: PNG_CELL },
  { id: 'c-edit', source: 'x = 1\nprint("value", x)' }
];

/**
 * The panel, a run and a comparison, in one theme. Runs and comparisons
 * share the one preview tab, so each is opened before its screenshot.
 */
async function screenshots(
  page: IJupyterLabPageFixture,
  theme: 'light' | 'dark'
): Promise<void> {
  const panel = page.locator('#jp-lineage-panel');
  await panel.screenshot({ path: artifact(`panel-${theme}.png`) });
  await panel.locator('.jp-LineageRun[data-cell-id="c-png"]').first().click();
  const run = page.locator('.jp-LineageMain:has(.jp-LineageRunView)');
  await expect(run.locator('.jp-RenderedImage img')).toBeVisible();
  await run.screenshot({ path: artifact(`run-view-${theme}.png`) });
  const newest = panel.locator('.jp-LineageRun').first();
  await newest.hover();
  await newest
    .locator('button[aria-label="Compare with previous run"]')
    .click();
  const diff = page.locator('.jp-LineageMain:has(.jp-LineageCompareView)');
  await expect(diff.locator('.jp-LineageMerge')).toBeVisible();
  await diff.screenshot({ path: artifact(`diff-${theme}.png`) });
}

test('run history: live list, run view, compare, restore, indicators', async ({
  page,
  tmpPath
}) => {
  const path = `${tmpPath}/${NAME}`;
  await page.contents.uploadContent(
    notebook(LINEAGE_KERNEL, CELLS),
    'text',
    path
  );
  await page.notebook.openByPath(path);
  await page.notebook.activate(NAME);
  await waitForKernelIdle(page);

  const panel = await openPanel(page);
  const rows = panel.locator('.jp-LineageRun');
  await expect(panel.locator('.jp-LineageVirtualList')).toBeVisible();
  await expect(panel.locator('.jp-LineageNotLineage')).toHaveCount(0);

  await test.step('every run appears live', async () => {
    for (let i = 0; i < CELLS.length; i++) {
      await page.notebook.runCell(i);
      await expect(rows).toHaveCount(i + 1);
    }
    // Edit the last cell and run it again.
    await setCellSource(page, 3, 'x = 2\nprint("value", x)');
    await page.notebook.runCell(3);
    await expect(rows).toHaveCount(5);
    await expect(rows.first()).toContainText('x = 2');
    await expect(rows.first()).toContainText('cell 4');
    // At the default sidebar width, duration, CPU and memory are all shown.
    const cost = rows.first().locator('.jp-LineageRun-cost');
    await expect(cost).toContainText(/ms.*CPU.*mem/);
    expect(
      await cost.evaluate(el => el.scrollWidth <= el.clientWidth + 1)
    ).toBe(true);
    await expect(panel.locator('.jp-LineageRun.jp-mod-error')).toHaveCount(1);
    await expect(panel.locator('.jp-LineageRun.jp-mod-error')).toContainText(
      '1/0'
    );
  });

  await test.step('the cell indicator counts runs', async () => {
    const indicator = (i: number) =>
      page
        .locator('.jp-Notebook .jp-Cell')
        .nth(i)
        .locator('.jp-LineageCellIndicator');
    await expect(indicator(3)).toContainText('2 runs');
    await expect(indicator(0)).toContainText('1 run');
    // Clicking it filters the panel to that cell.
    await indicator(3).click();
    await expect(
      panel.locator('.jp-LineageSegmented [aria-checked="true"]')
    ).toHaveText('Active cell');
    await expect(rows).toHaveCount(2);
    await panel
      .locator('.jp-LineageSegmented button', { hasText: 'All cells' })
      .click();
    await expect(rows).toHaveCount(5);
  });

  await test.step('filters: errors only, full-text search', async () => {
    await panel.locator('.jp-LineageCheck input').check();
    await expect(rows).toHaveCount(1);
    await panel.locator('.jp-LineageCheck input').uncheck();
    await expect(rows).toHaveCount(5);
    await panel.locator('.jp-LineageSearch').fill('lineage');
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText('hello lineage');
    await panel.locator('.jp-LineageSearch').fill('');
    await expect(rows).toHaveCount(5);
  });

  await test.step('opening a run renders its image', async () => {
    await panel.locator('.jp-LineageRun[data-cell-id="c-png"]').click();
    const view = page.locator('.jp-LineageRunView');
    await expect(view.locator('.jp-RenderedImage img')).toBeVisible();
    await expect(view.locator('.jp-LineageCode .cm-content')).toContainText(
      'zlib'
    );
    // The image is the one the notebook shows.
    const src = await view.locator('.jp-RenderedImage img').getAttribute('src');
    expect(src).toMatch(/^data:image\/png;base64,iVBORw0KGgo/);
  });

  await test.step('an error run shows its traceback', async () => {
    await panel.locator('.jp-LineageRun[data-cell-id="c-error"]').click();
    const view = page.locator('.jp-LineageRunView').last();
    await expect(
      view.locator(
        '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
      )
    ).toContainText('ZeroDivisionError');
  });

  await test.step('compare with the previous run shows the edited line', async () => {
    const newest = panel.locator('.jp-LineageRun').first();
    await newest.hover();
    await newest
      .locator('button[aria-label="Compare with previous run"]')
      .click();
    const merge = page.locator('.jp-LineageCompareView .jp-LineageMerge');
    // Unified (for narrow panes) and side by side.
    await merge
      .locator('.jp-LineageCodeDiff-mode[data-mode="unified"]')
      .click();
    await expect(merge.locator('.cm-deletedChunk')).toContainText('x = 1');
    await expect(merge.locator('.cm-changedLine')).toContainText('x = 2');
    await merge.locator('.jp-LineageCodeDiff-mode[data-mode="split"]').click();
    await expect(merge.locator('.cm-merge-a .cm-changedLine')).toContainText(
      'x = 1'
    );
    await expect(merge.locator('.cm-merge-b .cm-changedLine')).toContainText(
      'x = 2'
    );
    await expect(
      page.locator('.jp-LineageCompareView .jp-LineageUnified')
    ).toContainText('+value 2');
    await expect(
      page.locator('.jp-LineageCompareView .jp-LineageSide')
    ).toHaveCount(2);
  });

  await test.step('light theme screenshots', async () => {
    await screenshots(page, 'light');
  });

  await test.step('restore puts the old code back, undoably', async () => {
    const older = panel.locator('.jp-LineageRun[data-cell-id="c-edit"]').nth(1);
    await expect(older).toContainText('x = 1');
    await older.hover();
    await older.locator('button[aria-label="Restore code"]').click();
    await expect
      .poll(() => cellSource(page, 3))
      .toBe('x = 1\nprint("value", x)');
    // Ctrl+Z in the cell takes the restore back.
    await page.notebook.enterCellEditingMode(3);
    await page.keyboard.press('Control+z');
    await expect
      .poll(() => cellSource(page, 3))
      .toBe('x = 2\nprint("value", x)');
  });

  await test.step('dark theme screenshots', async () => {
    await page.theme.setDarkTheme();
    await screenshots(page, 'dark');
    await page.theme.setLightTheme();
  });
});

test('a plain python3 kernel: the panel explains and offers to switch', async ({
  page,
  tmpPath
}) => {
  const path = `${tmpPath}/plain.ipynb`;
  await page.contents.uploadContent(
    notebook(PLAIN_KERNEL, [{ id: 'p1', source: 'print(1)' }]),
    'text',
    path
  );
  await page.notebook.openByPath(path);
  await page.notebook.activate('plain.ipynb');
  await waitForKernelIdle(page);
  const panel = await openPanel(page);
  const banner = panel.locator('.jp-LineageNotLineage');
  await expect(banner).toContainText('not a lineage kernel');
  const button = banner.locator('.jp-LineageSwitch');
  await expect(button).toHaveText(`Switch to ${LINEAGE_KERNEL.display_name}`);
  await panel.screenshot({ path: artifact('not-lineage-light.png') });

  await button.click();
  await expect(panel.locator('.jp-LineageNotLineage')).toHaveCount(0, {
    timeout: 60000
  });
  await expect(panel.locator('.jp-LineageVirtualList')).toBeVisible({
    timeout: 60000
  });
  await waitForKernelIdle(page);
  await page.notebook.runCell(0);
  await expect(panel.locator('.jp-LineageRun')).toHaveCount(1);
});
