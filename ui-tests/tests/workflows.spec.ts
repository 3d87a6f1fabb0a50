/**
 * Panel workflows a user meets in the first hour, against real JupyterLab,
 * real chromium and the real lineage kernel: comparing a cell with its own
 * previous run, searching as one types, reading an error diff, and one
 * preview tab for every run and comparison opened.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';
import {
  artifact,
  LINEAGE_KERNEL,
  notebook,
  openPanel,
  setCellSource,
  waitForKernelIdle
} from './helpers';

test.use({ autoGoto: true });

/** Open a fresh notebook of these cells; return the panel and its rows. */
async function open(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  name: string,
  cells: Array<{ id: string; source: string }>
): Promise<{ panel: Locator; rows: Locator }> {
  const path = `${tmpPath}/${name}`;
  await page.contents.uploadContent(
    notebook(LINEAGE_KERNEL, cells),
    'text',
    path
  );
  await page.notebook.openByPath(path);
  await page.notebook.activate(name);
  await waitForKernelIdle(page);
  const panel = await openPanel(page);
  await expect(panel.locator('.jp-LineageVirtualList')).toBeVisible();
  return { panel, rows: panel.locator('.jp-LineageRun') };
}

const COMPARE = 'button[aria-label="Compare with previous run"]';

test('compare with previous: the previous run of this cell, not of the session', async ({
  page,
  tmpPath
}) => {
  const { panel, rows } = await open(page, tmpPath, 'prev.ipynb', [
    { id: 'c-a', source: 'a = 1\nprint("a is", a)' },
    { id: 'c-b', source: 'print("another cell")' }
  ]);
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(1);
  await page.notebook.runCell(1);
  await expect(rows).toHaveCount(2);
  await setCellSource(page, 0, 'a = 2\nprint("a is", a)');
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(3);

  // Only the second run of cell a has a previous run to compare with.
  const newest = rows.first();
  await expect(newest).toContainText('a = 2');
  await newest.hover();
  await expect(newest.locator(COMPARE)).toBeVisible();
  await rows.nth(1).hover();
  await expect(rows.nth(1).locator(COMPARE)).toHaveCount(0);
  await rows.nth(2).hover();
  await expect(rows.nth(2).locator(COMPARE)).toHaveCount(0);

  // The D key on the newest row: cell a's runs [1] and [3], not [2].
  await panel.locator('.jp-LineageVirtualList').focus();
  await page.keyboard.press('Home');
  await page.keyboard.press('d');
  const view = page.locator('.jp-LineageCompareView');
  const runs = view.locator('.jp-LineageCompare-runs');
  await expect(runs.locator('div').nth(0)).toContainText('[1]');
  await expect(runs.locator('div').nth(1)).toContainText('[3]');
  await expect(view.locator('.jp-LineageUnified')).toContainText('+a is 2');
  await expect(view).not.toContainText('another cell');

  // The run view of a first run offers no comparison; of a later one, it does.
  await rows.nth(2).click();
  const run = page.locator('.jp-LineageRunView');
  await expect(run.locator('.jp-LineageRunView-restore')).toBeVisible();
  await expect(run.locator('.jp-LineageRunView-comparePrev')).toHaveCount(0);
  await rows.first().click();
  await expect(run.locator('.jp-LineageRunView-comparePrev')).toBeVisible();

  // A click on a cell's indicator shows that cell's own runs.
  const indicator = page
    .locator('.jp-Notebook .jp-Cell')
    .nth(1)
    .locator('.jp-LineageCellIndicator');
  await indicator.click();
  await expect(
    panel.locator('.jp-LineageSegmented [aria-checked="true"]')
  ).toHaveText('Active cell');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('another cell');
  await panel
    .locator('.jp-LineageSegmented button', { hasText: 'All cells' })
    .click();
  await expect(rows).toHaveCount(3);
});

test('one preview tab: runs and comparisons replace each other until kept', async ({
  page,
  tmpPath
}) => {
  const { rows } = await open(page, tmpPath, 'tabs.ipynb', [
    { id: 't1', source: 'print(1)' },
    { id: 't2', source: 'print(2)' }
  ]);
  await page.notebook.runCell(0);
  await page.notebook.runCell(1);
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(3);
  const tabs = page.locator('.jp-LineageMain');
  await rows.nth(2).click();
  await expect(page.locator('.jp-LineageRunView')).toContainText('print(1)');
  await rows.nth(1).click();
  await expect(page.locator('.jp-LineageRunView')).toContainText('print(2)');
  await expect(tabs).toHaveCount(1);
  await rows.first().hover();
  await rows.first().locator(COMPARE).click();
  await expect(page.locator('.jp-LineageCompareView')).toBeVisible();
  await expect(tabs).toHaveCount(1);
  await expect(page.locator('.jp-LineageRunView')).toHaveCount(0);
  // "Keep open" keeps this one; the next run opens in a new tab.
  await tabs.first().locator('.jp-LineageKeep').click();
  await rows.nth(1).click();
  await expect(tabs).toHaveCount(2);
  await expect(page.locator('.jp-LineageCompareView')).toHaveCount(1);
});

test('an error diff reads as text, with no ANSI escapes', async ({
  page,
  tmpPath
}) => {
  const { panel, rows } = await open(page, tmpPath, 'errors.ipynb', [
    { id: 'e1', source: 'raise ValueError("first")' }
  ]);
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(1);
  await setCellSource(page, 0, 'raise ValueError("second")');
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(2);
  // Error rows show the error's name.
  await expect(rows.first().locator('.jp-LineageRun-error')).toHaveText(
    'ValueError'
  );
  await rows.first().hover();
  await rows.first().locator(COMPARE).click();
  const diff = panel
    .page()
    .locator('.jp-LineageCompareView .jp-LineageUnified');
  await expect(diff.first()).toContainText('ValueError: second');
  const text = (await diff.allInnerTexts()).join('\n');
  expect(text).toContain('-ValueError: first');
  expect(text).not.toContain('\u001b');
  expect(text).not.toMatch(/\[\d+(;\d+)*m/);
  const tab = page.locator('.jp-LineageMain:has(.jp-LineageCompareView)');
  await tab.screenshot({ path: artifact('error-diff-light.png') });
  await page.theme.setDarkTheme();
  await tab.screenshot({ path: artifact('error-diff-dark.png') });
  await page.theme.setLightTheme();
});

test('search as one types: a word prefix finds runs, and is highlighted', async ({
  page,
  tmpPath
}) => {
  const { panel, rows } = await open(page, tmpPath, 'search.ipynb', [
    { id: 's1', source: 'total = sum(i for i in range(10))' },
    { id: 's2', source: 'print("unrelated")' },
    { id: 's3', source: '1/0' }
  ]);
  for (let i = 0; i < 3; i++) {
    await page.notebook.runCell(i);
    await expect(rows).toHaveCount(i + 1);
  }
  const search = panel.locator('.jp-LineageSearch');
  await search.fill('rang');
  await expect(rows).toHaveCount(1);
  await expect(rows.first().locator('.jp-LineageMatch')).toHaveText('rang');
  await search.fill('ZeroDivision');
  await expect(rows).toHaveCount(1);
  await expect(rows.first().locator('.jp-LineageRun-error')).toContainText(
    'ZeroDivisionError'
  );
  await panel.screenshot({ path: artifact('search-light.png') });
  await search.fill('');
  await expect(rows).toHaveCount(3);
});

// Pending: the opening memory reading is still taken on the recorder's next
// tick, so the first tens of milliseconds of a cell are not counted yet.
test.fixme("a cell's own memory: its change and peak, not the kernel's total", async ({
  page,
  tmpPath
}) => {
  const { rows } = await open(page, tmpPath, 'memory.ipynb', [
    {
      id: 'm1',
      source: 'import time\nx = bytearray(200 * 2**20)\ntime.sleep(0.5)'
    },
    { id: 'm2', source: 'del x' }
  ]);
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(1);
  // 200 MiB allocated by the cell, whatever the kernel held before it.
  const grew = /\+(19\d|20\d|21\d) MiB/;
  await expect(rows.first().locator('.jp-LineageRun-cost')).toContainText(grew);
  const indicator = page
    .locator('.jp-Notebook .jp-Cell')
    .nth(0)
    .locator('.jp-LineageCellIndicator');
  await expect(indicator).toContainText(grew);
  await page.notebook.runCell(1);
  await expect(rows).toHaveCount(2);
  await expect(rows.first().locator('.jp-LineageRun-cost')).toContainText(
    /−(19\d|20\d|21\d) MiB/
  );
});

// Pending: the recorder does not store the reply's pager payload yet.
test.fixme('the run view shows what the pager showed', async ({
  page,
  tmpPath
}) => {
  const { rows } = await open(page, tmpPath, 'pager.ipynb', [
    { id: 'p1', source: 'len?' }
  ]);
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(1);
  await rows.first().click();
  const view = page.locator('.jp-LineageRunView');
  await expect(view.locator('.jp-LineagePager')).toContainText(
    'Return the number of items'
  );
});
