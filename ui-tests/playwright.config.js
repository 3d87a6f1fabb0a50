// UI tests of jupyter-lineage: galata + @playwright/test in Debian's
// chromium, against a JupyterLab started from the repository's .venv with
// the real lineage kernel. `make ui-test` runs them.
const path = require('path');
const base = require('@jupyterlab/galata/lib/playwright-config');
const { env, chromiumFlags } = require('./tests/env');

const port = Number(process.env.LINEAGE_UI_PORT || 8899);

module.exports = {
  ...base,
  testDir: './tests',
  testMatch: '**/*.spec.ts',
  testIgnore: '**/*.bench.ts',
  outputDir: './test-results',
  timeout: 120000,
  expect: { timeout: 20000 },
  workers: 1,
  retries: 0,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  use: {
    ...base.use,
    baseURL: `http://127.0.0.1:${port}`,
    viewport: { width: 1400, height: 900 },
    trace: 'retain-on-failure',
    video: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: chromiumFlags
    }
  },
  webServer: {
    command: `jupyter lab --config ${path.join(__dirname, 'jupyter_server_test_config.py')}`,
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 120000,
    reuseExistingServer: false,
    env: env(port),
    stdout: 'ignore',
    stderr: process.env.LINEAGE_UI_DEBUG ? 'pipe' : 'ignore'
  }
};
