// UI test of "Record every kernel" (tests/record-every-kernel.spec.ts): a
// JupyterLab server of its own, whose Python finds the wheel's
// `lineage-provisioner` without the wheel being installed (the package's
// source and a dist-info holding pyproject.toml's entry points on
// PYTHONPATH) and runs this checkout's binary and extension. `make ui-test`
// runs it after the main config.
const fs = require('fs');
const os = require('os');
const path = require('path');
const main = require('./playwright.config');
const { env, repo } = require('./tests/env');

const port = Number(process.env.LINEAGE_UI_PROVISIONER_PORT || 8897);

/** A folder with a dist-info declaring pyproject.toml's entry points. */
function entryPointSite() {
  const site = fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-ui-entry-points-'));
  const dist = path.join(site, 'jupyter_lineage_source-0.dist-info');
  fs.mkdirSync(dist);
  fs.writeFileSync(
    path.join(dist, 'METADATA'),
    'Metadata-Version: 2.1\nName: jupyter-lineage-source\nVersion: 0\n'
  );
  const toml = fs.readFileSync(path.join(repo, 'pyproject.toml'), 'utf8');
  const out = [];
  let group = null;
  for (const line of toml.split('\n')) {
    const head = line.match(/^\[project\.entry-points\."([^"]+)"\]/);
    if (head) {
      group = head[1];
      out.push(`[${group}]`);
    } else if (line.startsWith('[')) {
      group = null;
    } else if (group) {
      const entry = line.match(/^\s*([\w.-]+)\s*=\s*"([^"]+)"/);
      if (entry) {
        out.push(`${entry[1]} = ${entry[2]}`);
      }
    }
  }
  fs.writeFileSync(path.join(dist, 'entry_points.txt'), out.join('\n') + '\n');
  return site;
}

/** A data dir holding only this checkout's built extension. */
function extensionDir() {
  const share = fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-ui-share-'));
  fs.mkdirSync(path.join(share, 'labextensions'));
  fs.symlinkSync(
    path.join(repo, 'labextension', 'jupyter_lineage_labextension'),
    path.join(share, 'labextensions', 'jupyter-lineage')
  );
  return share;
}

process.env.LINEAGE_UI_PROVISIONER = '1';

module.exports = {
  ...main,
  testMatch: '**/record-every-kernel.spec.ts',
  use: { ...main.use, baseURL: `http://127.0.0.1:${port}` },
  webServer: {
    ...main.webServer,
    url: `http://127.0.0.1:${port}/lab`,
    env: env(port, {
      PYTHONPATH: [path.join(repo, 'python'), entryPointSite()].join(path.delimiter),
      JUPYTER_LINEAGE_BIN: path.join(repo, 'target', 'release', 'jupyter-lineage'),
      // Not the venv's share/jupyter: JUPYTER_PATH comes before the user's
      // data dir, where `enable --user` writes. The venv is the server's
      // sys.prefix, so its kernelspecs are found all the same.
      JUPYTER_PATH: extensionDir(),
      // The venv is a virtualenv, so Jupyter would search its share/jupyter
      // before the user's data dir, hiding what `enable --user` writes there
      // (enable warns so); a user's own Jupyter outside a venv searches the
      // user's dir first, as this does.
      JUPYTER_PREFER_ENV_PATH: '0'
    })
  }
};
