// UI benchmark of jupyter-lineage (not pass/fail): `make ui-bench`.
// Starts its own JupyterLab (it needs to toggle the extension between runs).
const { chromiumFlags } = require('./tests/env');

module.exports = {
  testDir: './bench',
  testMatch: '**/*.bench.ts',
  outputDir: './test-results/bench',
  timeout: 30 * 60 * 1000,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: chromiumFlags
    }
  }
};
