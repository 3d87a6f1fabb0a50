/**
 * Helpers shared by the UI tests and the bench.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

export const ARTIFACTS = path.resolve(__dirname, '..', 'artifacts');

/** Where a screenshot goes (ui-tests/artifacts, gitignored). */
export function artifact(name: string): string {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** A tiny PNG built with zlib/struct, displayed as a raw image/png output. */
export const PNG_CELL = [
  'import struct, zlib',
  'from IPython.display import Image, display',
  'def png(w, h, rgb):',
  "    raw = b''.join(b'\\x00' + bytes(rgb) * w for _ in range(h))",
  '    def chunk(t, d):',
  "        c = struct.pack('>I', len(d)) + t + d",
  "        return c + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)",
  "    return (b'\\x89PNG\\r\\n\\x1a\\n'",
  "            + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))",
  "            + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))",
  'display(Image(data=png(24, 24, (200, 40, 40))))'
].join('\n');

/** An nbformat 4.5 notebook with these code cells (ids given). */
export function notebook(
  kernel: { name: string; display_name: string },
  cells: Array<{ id: string; source: string }>
): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { ...kernel, language: 'python' },
      language_info: { name: 'python' }
    },
    cells: cells.map(c => ({
      id: c.id,
      cell_type: 'code',
      metadata: {},
      execution_count: null,
      outputs: [],
      source: c.source
    }))
  });
}

export const LINEAGE_KERNEL = {
  name: 'python3-lineage',
  display_name: 'Python 3 (ipykernel) · lineage'
};
export const PLAIN_KERNEL = {
  name: 'python3',
  display_name: 'Python 3 (ipykernel)'
};

/** Wait until the active notebook's kernel is idle. */
export async function waitForKernelIdle(
  page: IJupyterLabPageFixture,
  timeout = 60000
): Promise<void> {
  await page
    .locator(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]'
    )
    .first()
    .waitFor({ timeout });
}

/** Open the Run history panel (its tab in the right sidebar). */
export async function openPanel(
  page: IJupyterLabPageFixture
): Promise<Locator> {
  const panel = page.locator('#jp-lineage-panel');
  if (!(await panel.isVisible())) {
    await page
      .locator('.jp-SideBar.jp-mod-right li[data-id="jp-lineage-panel"]')
      .click();
  }
  await panel.waitFor({ state: 'visible' });
  return panel;
}

/** Replace a code cell's source through the notebook model (no typing). */
export async function setCellSource(
  page: IJupyterLabPageFixture,
  index: number,
  source: string
): Promise<void> {
  await page.evaluate(
    ([i, s]) => {
      const app = (window as any).jupyterapp;
      const nb = Array.from(app.shell.widgets('main') as Iterable<any>).find(
        w => w.content?.model?.cells
      );
      nb.content.model.cells.get(i).sharedModel.setSource(s);
    },
    [index, source] as [number, string]
  );
}

/** A cell's source, from the notebook model. */
export async function cellSource(
  page: IJupyterLabPageFixture,
  index: number
): Promise<string> {
  return page.evaluate(i => {
    const app = (window as any).jupyterapp;
    const nb = Array.from(app.shell.widgets('main') as Iterable<any>).find(
      w => w.content?.model?.cells
    );
    return nb.content.model.cells.get(i).sharedModel.getSource();
  }, index);
}
