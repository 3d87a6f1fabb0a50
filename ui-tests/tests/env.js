// The environment of the JupyterLab server the UI tests and the bench start:
// the repository's .venv first on PATH, and Jupyter's per-user folders in a
// throwaway place so the tests never read or write ~/.jupyter.
const fs = require('fs');
const os = require('os');
const path = require('path');

const repo = path.resolve(__dirname, '..', '..');
const venv = path.join(repo, '.venv');

const chromiumFlags = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
];

function env(port, extra = {}) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-ui-home-'));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-ui-root-'));
  return {
    ...process.env,
    PATH: `${path.join(venv, 'bin')}:${process.env.PATH}`,
    // Kernelspecs, the labextension and overrides.json live in the venv.
    JUPYTER_PATH: path.join(venv, 'share', 'jupyter'),
    JUPYTER_CONFIG_DIR: path.join(home, 'config'),
    JUPYTER_DATA_DIR: path.join(home, 'data'),
    JUPYTER_RUNTIME_DIR: path.join(home, 'runtime'),
    JUPYTERLAB_SETTINGS_DIR: path.join(home, 'user-settings'),
    JUPYTERLAB_WORKSPACES_DIR: path.join(home, 'workspaces'),
    JUPYTERLAB_GALATA_ROOT_DIR: root,
    LINEAGE_UI_PORT: String(port),
    ...extra
  };
}

module.exports = { env, chromiumFlags, repo, venv };
