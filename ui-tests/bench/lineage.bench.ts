/**
 * UI benchmark (numbers, not pass/fail) of jupyter-lineage in real
 * JupyterLab + Debian chromium:
 *
 * 1. a notebook with 10,000 recorded runs (made through the real kernel by
 *    make_history.py): how long the Run history panel takes to open and
 *    show its rows, to reload its first page, to answer a full-text search,
 *    and how smoothly it scrolls (frame times while paging in);
 * 2. JupyterLab's start time with the extension enabled vs disabled
 *    (`jupyter labextension disable`), interleaved rounds, medians.
 *
 * Prints a table and writes ui-tests/artifacts/bench.json.
 */
import { test, Page } from '@playwright/test';
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { artifact, LINEAGE_KERNEL } from '../tests/helpers';
// env.js is CommonJS, shared with the playwright configs.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { env: serverEnv, venv } = require('../tests/env');

const RUNS = Number(process.env.LINEAGE_BENCH_RUNS || 10000);
const CELLS = 20;
const ROUNDS = Number(process.env.LINEAGE_BENCH_ROUNDS || 7);
// Start times vary by ±500 ms on a small machine: more rounds for them.
const START_ROUNDS = Number(process.env.LINEAGE_BENCH_START_ROUNDS || 15);
const PORT = Number(process.env.LINEAGE_BENCH_PORT || 8897);
const BASE = `http://127.0.0.1:${PORT}`;
const jupyter = path.join(venv, 'bin', 'jupyter');
const python = path.join(venv, 'bin', 'python');

test.setTimeout(30 * 60 * 1000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const r1 = (x: number) => Math.round(x * 10) / 10;

function waitForServer(timeoutMs = 120000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      http
        .get(`${BASE}/api/status`, res => {
          res.resume();
          if (res.statusCode === 200) {
            resolve();
          } else {
            retry();
          }
        })
        .on('error', retry);
    };
    const retry = () =>
      Date.now() - t0 > timeoutMs
        ? reject(new Error('jupyter lab did not start'))
        : setTimeout(poll, 250);
    poll();
  });
}

/**
 * Time (ms, in-page clock) from clicking `click` (a selector, or
 * `#activate:ID` to activate a shell widget) to `selector` being in the
 * DOM and painted (checked every animation frame), all inside the page so
 * playwright's own round trips are not counted.
 */
async function clickUntil(
  page: Page,
  click: string,
  selector: string,
  mustVanishFirst = false
): Promise<number> {
  return page.evaluate(
    ([c, sel, vanish]) =>
      new Promise<number>((resolve, reject) => {
        const shown = () => {
          const el = document.querySelector(sel) as HTMLElement | null;
          return !!el && el.offsetParent !== null;
        };
        let gone = !vanish;
        let done = false;
        // DOM changes are seen as they happen, so a list emptied and refilled
        // between two frames still counts as gone.
        const observer = new MutationObserver(() => {
          gone = gone || !shown();
          if (gone && shown() && !done) {
            done = true;
            observer.disconnect();
            // the frame that paints it
            requestAnimationFrame(() => resolve(performance.now() - t0));
          }
        });
        observer.observe(document.body, {
          childList: true,
          subtree: true,
          attributes: true
        });
        const t0 = performance.now();
        if (c.startsWith('#activate:')) {
          // What the sidebar tab and the "Show Run History" command do.
          (window as any).jupyterapp.shell.activateById(
            c.slice('#activate:'.length)
          );
        } else {
          (document.querySelector(c) as HTMLElement).click();
        }
        setTimeout(() => {
          if (!done) {
            observer.disconnect();
            reject(new Error(`timeout waiting for ${sel}`));
          }
        }, 60000);
      }),
    [click, selector, mustVanishFirst] as [string, string, boolean]
  );
}

/** Time (ms, in-page clock) until a selector matches, after `start`. */
async function timeUntil(
  page: Page,
  start: () => Promise<void>,
  selector: string
): Promise<number> {
  await page.evaluate(() => ((window as any).__t0 = performance.now()));
  await start();
  await page.waitForSelector(selector, { state: 'visible', timeout: 60000 });
  return page.evaluate(() => performance.now() - (window as any).__t0);
}

test('panel with 10,000 runs; added start time', async ({ browser }) => {
  // The history is made once per run count and kept in the system temp dir
  // (LINEAGE_BENCH_FRESH=1 makes it again): 10,000 runs take a few minutes.
  const root = path.join(os.tmpdir(), `lineage-bench-${RUNS}`);
  const env = serverEnv(PORT, { JUPYTERLAB_GALATA_ROOT_DIR: root });
  const nbPath = path.join(root, 'bench.ipynb');
  const marker = path.join(root, 'made.json');
  if (process.env.LINEAGE_BENCH_FRESH || !fs.existsSync(marker)) {
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(
      nbPath,
      JSON.stringify({
        nbformat: 4,
        nbformat_minor: 5,
        metadata: { kernelspec: { ...LINEAGE_KERNEL, language: 'python' } },
        cells: Array.from({ length: CELLS }, (_, i) => ({
          id: `b${i}`,
          cell_type: 'code',
          metadata: {},
          execution_count: null,
          outputs: [],
          source: `x_${i} = 0\nprint('cell ${i}', x_${i})`
        }))
      })
    );
    // 1. History through the real kernel.
    const out = execFileSync(
      python,
      [path.join(__dirname, 'make_history.py'), nbPath, String(RUNS)],
      { env, stdio: ['ignore', 'pipe', 'ignore'] }
    );
    fs.writeFileSync(marker, out.toString().trim().split('\n').pop() as string);
  }
  const made = JSON.parse(fs.readFileSync(marker, 'utf-8'));

  const server: ChildProcess = spawn(
    jupyter,
    [
      'lab',
      '--config',
      path.join(__dirname, '..', 'jupyter_server_test_config.py')
    ],
    { env, stdio: 'ignore' }
  );
  const results: Record<string, unknown> = { runs: made };
  try {
    await waitForServer();
    const context = await browser.newContext({
      viewport: { width: 1400, height: 900 }
    });
    const page = await context.newPage();

    // --- the panel over 10,000 runs ---
    await page.goto(`${BASE}/lab/tree/bench.ipynb?reset`);
    await page.waitForSelector(
      '.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]',
      { timeout: 120000 }
    );
    // The model is ready once the indicators have their counts.
    await page.waitForSelector('.jp-LineageCellIndicator:not(.lm-mod-hidden)', {
      timeout: 60000
    });
    const TAB = '.jp-SideBar.jp-mod-right li[data-id="jp-lineage-panel"]';
    const tab = page.locator(TAB);
    const open: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      open.push(
        await clickUntil(
          page,
          '#activate:jp-lineage-panel',
          '#jp-lineage-panel .jp-LineageRun'
        )
      );
      await tab.click(); // close again
      await page.waitForSelector('#jp-lineage-panel', { state: 'hidden' });
    }
    await tab.click();
    await page.waitForSelector('#jp-lineage-panel .jp-LineageRun');

    // Reload: a `history` request for the first page over the comm + render.
    // (The reload empties the list synchronously, so the row found is new.)
    const reload: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      reload.push(
        await clickUntil(
          page,
          '#jp-lineage-panel button[aria-label="Reload history"]',
          '#jp-lineage-panel .jp-LineageRun',
          true
        )
      );
    }

    // Full-text search over 10,000 runs.
    const search: number[] = [];
    const box = page.locator('#jp-lineage-panel .jp-LineageSearch');
    for (let i = 0; i < ROUNDS; i++) {
      const n = RUNS - 1 - i * 37;
      search.push(
        await timeUntil(
          page,
          async () => {
            await box.fill(`"run ${n} of"`);
            await box.press('Enter');
          },
          `#jp-lineage-panel .jp-LineageRun:has-text("x_${n % CELLS} = ${n}")`
        )
      );
    }
    await box.fill('');
    await box.press('Enter');
    await page.waitForSelector('#jp-lineage-panel .jp-LineageRun');
    const total = await page
      .locator('#jp-lineage-panel .jp-LineagePanel-count')
      .textContent();

    // Scroll: 6 s of continuous scrolling (≈ 2,000 px/s), frame times from rAF.
    const scroll = await page.evaluate(async () => {
      const list = document.querySelector(
        '#jp-lineage-panel .jp-LineageVirtualList'
      ) as HTMLElement;
      const frames: number[] = [];
      let last = performance.now();
      const t0 = last;
      await new Promise<void>(resolve => {
        const step = (now: number) => {
          frames.push(now - last);
          last = now;
          list.scrollTop += 34;
          if (now - t0 < 6000) {
            requestAnimationFrame(step);
          } else {
            resolve();
          }
        };
        requestAnimationFrame(step);
      });
      const rows = list.querySelectorAll('.jp-LineageRun').length;
      return { frames, scrollTop: list.scrollTop, rowsInDom: rows };
    });
    const loaded = await page
      .locator('#jp-lineage-panel .jp-LineagePanel-count')
      .textContent();
    const frames = scroll.frames.slice(1);
    results.panel = {
      open_ms: {
        median: r1(median(open)),
        max: r1(Math.max(...open)),
        all: open.map(r1)
      },
      reload_first_page_ms: {
        median: r1(median(reload)),
        max: r1(Math.max(...reload))
      },
      search_ms: { median: r1(median(search)), max: r1(Math.max(...search)) },
      total_label: total,
      scroll: {
        frames: frames.length,
        frame_ms_median: r1(median(frames)),
        frame_ms_p95: r1(pct(frames, 95)),
        frame_ms_max: r1(Math.max(...frames)),
        frames_over_33ms: frames.filter(f => f > 33.4).length,
        rows_in_dom: scroll.rowsInDom,
        loaded_after: loaded
      }
    };
    await page.close();

    // --- start time, with vs without the extension ---
    const ownJs: number[] = [];
    const ownBytes: number[] = [];
    const startTime = async (): Promise<number> => {
      const p = await context.newPage();
      await p.goto(`${BASE}/lab?reset`);
      await p.waitForFunction(() => !!(window as any).jupyterapp, null, {
        polling: 10
      });
      const t = await p.evaluate(async () => {
        await (window as any).jupyterapp.restored;
        const now = performance.now();
        // What of the start was spent fetching the extension's own files.
        const own = (
          performance.getEntriesByType(
            'resource'
          ) as PerformanceResourceTiming[]
        ).filter(e => e.name.includes('/lab/extensions/jupyter-lineage/'));
        return {
          now,
          ownMs: own.reduce((a, e) => a + e.duration, 0),
          ownBytes: own.reduce((a, e) => a + (e.encodedBodySize || 0), 0)
        };
      });
      await p.close();
      if (t.ownMs > 0) {
        ownJs.push(t.ownMs);
        ownBytes.push(t.ownBytes);
      }
      return t.now;
    };
    const toggle = (how: 'enable' | 'disable') =>
      execFileSync(jupyter, ['labextension', how, 'jupyter-lineage'], {
        env,
        stdio: 'ignore'
      });
    const withExt: number[] = [];
    const withoutExt: number[] = [];
    await startTime(); // warm caches once
    for (let i = 0; i < START_ROUNDS; i++) {
      toggle('enable');
      withExt.push(await startTime());
      toggle('disable');
      withoutExt.push(await startTime());
    }
    toggle('enable');
    results.start = {
      with_ms: { median: r1(median(withExt)), all: withExt.map(r1) },
      without_ms: { median: r1(median(withoutExt)), all: withoutExt.map(r1) },
      added_ms_median: r1(median(withExt) - median(withoutExt)),
      own_files_fetch_ms_median: r1(median(ownJs)),
      own_files_bytes: ownBytes[0] ?? 0
    };
    await context.close();
  } finally {
    server.kill('SIGTERM');
    await new Promise(r => setTimeout(r, 2000));
    if (server.exitCode === null) {
      server.kill('SIGKILL');
    }
  }

  results.machine = { cpus: os.cpus().length, chromium: browser.version() };
  fs.writeFileSync(artifact('bench.json'), JSON.stringify(results, null, 2));
  const p = results.panel as any;
  const s = results.start as any;
  console.log(
    [
      '',
      `jupyter-lineage UI bench (${browser.version()}, ${os.cpus().length} CPUs)`,
      `history: ${made.runs} runs made through the real kernel in ${made.seconds} s (${made.runs_per_s}/s, ${made.kernels} kernels)`,
      `panel open → rows shown       median ${p.open_ms.median} ms   max ${p.open_ms.max} ms   (budget 1000 ms)`,
      `reload first page (comm)      median ${p.reload_first_page_ms.median} ms   max ${p.reload_first_page_ms.max} ms`,
      `full-text search              median ${p.search_ms.median} ms   max ${p.search_ms.max} ms`,
      `scroll 6 s (paging in)        ${p.scroll.frames} frames, median ${p.scroll.frame_ms_median} ms, p95 ${p.scroll.frame_ms_p95} ms, max ${p.scroll.frame_ms_max} ms, ${p.scroll.frames_over_33ms} frames > 33 ms; ${p.scroll.rows_in_dom} rows in DOM; ${p.scroll.loaded_after}`,
      `JupyterLab start (restored)   with ${s.with_ms.median} ms, without ${s.without_ms.median} ms → added ${s.added_ms_median} ms (budget 150 ms; ${START_ROUNDS} interleaved rounds, medians)`,
      `  of which fetching the extension's files (remoteEntry + chunks + CSS, ${s.own_files_bytes} B): median ${s.own_files_fetch_ms_median} ms (parallel with the rest)`,
      ''
    ].join('\n')
  );
});
