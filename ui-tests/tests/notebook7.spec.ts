/**
 * The same extension in Notebook 7's notebook view: the cell indicators
 * under the cells, the Run history panel in its right sidebar, and runs
 * opened from it (in a dialog: Notebook 7's main area holds the notebook
 * alone).
 */
import { expect, test } from '@jupyterlab/galata';
import { artifact, LINEAGE_KERNEL, notebook } from './helpers';

test.use({ autoGoto: false });

test('Notebook 7: indicators, the panel in the right sidebar, a run view', async ({
  context,
  page: lab,
  tmpPath
}) => {
  const name = 'nb7.ipynb';
  await lab.contents.uploadContent(
    notebook(LINEAGE_KERNEL, [
      { id: 'n1', source: 'print("from notebook 7")' }
    ]),
    'text',
    `${tmpPath}/${name}`
  );
  // A plain page: galata's own `goto` waits for JupyterLab's launcher.
  const page = await context.newPage();
  await page.goto(`notebooks/${tmpPath}/${name}`);
  const cell = page.locator('.jp-Notebook .jp-CodeCell').first();
  await expect(cell).toBeVisible({ timeout: 60000 });

  // The panel, from its command's key binding, in the right sidebar.
  await page.keyboard.press('Control+Shift+Y');
  const panel = page.locator('#jp-lineage-panel');
  await expect(panel).toBeVisible();
  await expect(panel.locator('.jp-LineageVirtualList')).toBeVisible({
    timeout: 60000
  });

  // galata's notebook helpers drive JupyterLab's shell; this page is
  // Notebook 7's, so the cell is run as a user would.
  // eslint-disable-next-line jupyter/galata-prefer-notebook-cell-helper
  await cell.locator('.cm-content').click();
  // eslint-disable-next-line jupyter/galata-prefer-notebook-cell-helper
  await page.keyboard.press('Shift+Enter');
  await expect(cell.locator('.jp-OutputArea-output')).toContainText(
    'from notebook 7',
    { timeout: 60000 }
  );
  const rows = panel.locator('.jp-LineageRun');
  await expect(rows).toHaveCount(1);
  await expect(cell.locator('.jp-LineageCellIndicator')).toContainText('1 run');
  await page.screenshot({ path: artifact('notebook7-light.png') });

  await rows.first().click();
  const view = page.locator('.jp-LineageDialog .jp-LineageRunView');
  await expect(view).toBeVisible();
  await expect(view.locator('.jp-OutputArea-output')).toContainText(
    'from notebook 7'
  );
  await page.locator('.jp-LineageDialog').screenshot({
    path: artifact('notebook7-run-light.png')
  });
});
