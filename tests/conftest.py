"""Shared fixtures for the end-to-end tests.

The tests drive the built binary (target/release/jupyter-lineage) through real
Jupyter clients against a real ipykernel. Every test that takes `kernel_name`
runs twice: once against plain `python3` (the baseline) and once against the
`python3-lineage` kernelspec that `jupyter-lineage install` wrote into a
temporary prefix. Nothing is written to $HOME or to the repository: Jupyter's
paths, IPython's profile and the lineage store all point into tmp dirs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kernels import DIRECT, LINEAGE, VENV_BIN, lineage_binary, start_kernel, tool_env


# --------------------------------------------------------------------------
# Session set-up: private Jupyter paths and the installed lineage kernelspec
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def jupyter_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point Jupyter, IPython and the lineage store at a private tmp tree for
    the whole session (the kernels inherit os.environ when they start)."""
    root = tmp_path_factory.mktemp("jupyter-home")
    env = {
        "JUPYTER_PATH": str(root / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(root / "etc" / "jupyter"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "JUPYTER_LINEAGE_DIR": str(root / "lineage-session"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.setdefault("JUPYTER_LINEAGE_LOG", os.environ.get("JUPYTER_LINEAGE_LOG", "info"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    for key in ("JUPYTER_RUNTIME_DIR", "JUPYTER_LINEAGE_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def lineage_bin() -> Path:
    """Path to the built binary; fails (does not skip) when it is missing."""
    path = lineage_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"{path} is missing or not executable: run `cargo build --release` "
            "(or `make e2e`, which builds it) first",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def lineage_prefix(jupyter_home: Path, lineage_bin: Path) -> Path:
    """A prefix holding the `python3-lineage` kernelspec, written by the binary
    itself (`install --wrap python3 --prefix TMP`). JUPYTER_PATH already points
    at TMP/share/jupyter, so KernelSpecManager finds it."""
    prefix = jupyter_home
    proc = subprocess.run(
        [str(lineage_bin), "install", "--wrap", DIRECT, "--prefix", str(prefix)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`jupyter-lineage install --wrap python3 --prefix {prefix}` failed "
            f"({proc.returncode}):\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    spec = prefix / "share" / "jupyter" / "kernels" / LINEAGE / "kernel.json"
    if not spec.is_file():
        pytest.fail(f"install exited 0 but wrote no {spec}:\n{proc.stdout}{proc.stderr}", pytrace=False)
    return prefix


@pytest.fixture(params=[DIRECT, LINEAGE], ids=["direct", "lineage"])
def kernel_name(request: pytest.FixtureRequest, jupyter_home: Path) -> str:
    """Run a test against plain python3 and against the lineage proxy."""
    if request.param == LINEAGE:
        request.getfixturevalue("lineage_prefix")
    return request.param


@pytest.fixture(autouse=True)
def lineage_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's recordings go to its own tmp dir, never into the repo."""
    path = tmp_path / "lineage"
    path.mkdir()
    monkeypatch.setenv("JUPYTER_LINEAGE_DIR", str(path))
    return path


@pytest.fixture
def kernel(kernel_name: str, tmp_path: Path):
    """A started kernel (direct or proxied) with a ready client."""
    handle = start_kernel(kernel_name, cwd=tmp_path)
    yield handle
    handle.close()
