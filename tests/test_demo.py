"""The newcomer's path through `make demo`, without starting JupyterLab:
its install step (`make demo-install`) leaves `jupyter lineage` working from
the environment's bin folder, prints the exact line that puts it on PATH,
wraps python3 with the binary in that folder, and gives the demo a copy of
the notebook: the tracked examples/demo.ipynb is never touched. The demo
notebook runs top to bottom without waiting for typed input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from kernels import TIMEOUT, VENV_BIN, tool_env

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo.ipynb"


def test_demo_install_puts_the_cli_on_the_environments_path(tmp_path, lineage_bin):
    """After the demo's install step, `jupyter lineage` runs from the
    environment's bin folder and the printed PATH line is the one to use."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=TIMEOUT)
    # The test's own environment already has the requirements: mark them
    # installed so make does not reinstall them into the new one.
    (venv / ".requirements.stamp").touch()
    tracked = DEMO.read_bytes()

    proc = subprocess.run(["make", "--no-print-directory", "demo-install", f"VENV={venv}"],
                          cwd=REPO, env=tool_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'export PATH="{venv}/bin:$PATH"' in proc.stdout, proc.stdout
    assert "JUPYTER_CONFIG_DIR=" not in proc.stdout, "long environment lines are not echoed"

    cli = venv / "bin" / "jupyter-lineage"
    assert cli.is_file() and os.access(cli, os.X_OK)
    # `jupyter lineage …` as the README writes it, with the printed PATH
    # (and `jupyter` itself from the test environment).
    env = tool_env(PATH=f"{venv}/bin{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                   JUPYTER_PATH=str(venv / "share" / "jupyter"),
                   JUPYTER_LINEAGE_DIR=str(tmp_path / "lineage"))
    version = subprocess.run(["jupyter", "lineage", "--version"], env=env,
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("jupyter-lineage ")
    log = subprocess.run(["jupyter", "lineage", "log"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert log.returncode == 1 and "no lineage database" in log.stderr, log.stderr
    doctor = subprocess.run(["jupyter", "lineage", "doctor", "--json"], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert doctor.returncode == 0, doctor.stderr
    specs = {k["name"]: k for k in json.loads(doctor.stdout)["kernelspecs"]}
    assert specs["python3-lineage"]["argv"][0] == str(cli)

    # The demo runs a copy; the tracked notebook is as it was.
    copy = venv / "share" / "jupyter-lineage-demo" / "demo.ipynb"
    assert copy.read_bytes() == tracked
    assert DEMO.read_bytes() == tracked


def test_demo_notebook_runs_top_to_bottom_without_typing(jupyter_home):
    """Run All on the demo finishes: no cell waits for input()."""
    nb = nbformat.read(DEMO, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=False,
                            resources={"metadata": {"path": str(DEMO.parent)}})
    client.execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "hello, demo" in printed
