/**
 * "Record every kernel" from the panel: a plain Python 3 notebook, not
 * recorded; one click turns on lineage-provisioner for the user
 * (`jupyter lineage enable --user`) and gives the notebook a new kernel,
 * whose runs the panel shows; the saved notebook still names `python3`.
 * Runs with playwright.provisioner.config.js (its own server).
 */
import { expect, test } from '@jupyterlab/galata';
import {
  artifact,
  notebook,
  openPanel,
  PLAIN_KERNEL,
  waitForKernelIdle
} from './helpers';

test.use({ autoGoto: true });
test.skip(
  !process.env.LINEAGE_UI_PROVISIONER,
  'runs with playwright.provisioner.config.js'
);

test('record every kernel: a plain python3 notebook is recorded and stays python3', async ({
  page,
  tmpPath
}) => {
  const name = 'plain-recorded.ipynb';
  const path = `${tmpPath}/${name}`;
  await page.contents.uploadContent(
    notebook(PLAIN_KERNEL, [
      { id: 'r1', source: 'x = 40' },
      { id: 'r2', source: 'print("answer", x + 2)' }
    ]),
    'text',
    path
  );
  await page.notebook.openByPath(path);
  await page.notebook.activate(name);
  await waitForKernelIdle(page);

  const panel = await openPanel(page);
  const banner = panel.locator('.jp-LineageNotLineage');
  await expect(banner).toContainText('not a lineage kernel');
  await banner.locator('.jp-LineageRecordEvery').click();
  await page.locator('.jp-Dialog .jp-mod-accept').click();

  // A new kernel, started through lineage-provisioner: the panel connects.
  await expect(panel.locator('.jp-LineageNotLineage')).toHaveCount(0, {
    timeout: 60000
  });
  await expect(panel.locator('.jp-LineageVirtualList')).toBeVisible({
    timeout: 60000
  });
  await waitForKernelIdle(page);
  await page.notebook.runCell(0);
  await page.notebook.runCell(1);
  await expect(panel.locator('.jp-LineageRun')).toHaveCount(2);
  await expect(panel.locator('.jp-LineageRun').first()).toBeVisible();
  await panel.screenshot({ path: artifact('record-every-kernel.png') });

  await page.notebook.save();
  const saved = await page.request.get(
    `/api/contents/${path}?content=1&type=notebook`
  );
  expect(saved.ok()).toBeTruthy();
  const model = await saved.json();
  expect(model.content.metadata.kernelspec.name).toBe('python3');
  expect(model.content.cells[1].outputs[0].text).toContain('answer 42');
});
