"""JupyterLab server for the jupyter-lineage UI tests (tests only: no token,
no XSRF). Started by playwright's webServer with the repository's .venv."""
import os
import tempfile

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821

c.ServerApp.allow_root = True  # noqa: F821  (CI runs as root)
c.ServerApp.port = int(os.environ.get("LINEAGE_UI_PORT", "8899"))  # noqa: F821
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
# A fresh notebook folder per run, so the lineage database starts empty.
root = os.environ.get("JUPYTERLAB_GALATA_ROOT_DIR") or tempfile.mkdtemp(
    prefix="lineage-ui-"
)
c.ServerApp.root_dir = root  # noqa: F821
# Kernels must not outlive the server.
c.MappingKernelManager.cull_idle_timeout = 0  # noqa: F821
