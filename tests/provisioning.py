"""Helpers for running kernels through `lineage-provisioner` in the tests.

jupyter_client finds provisioners by entry point. The tests do not install the
wheel into the venv; instead a private folder holds a `*.dist-info` whose
`entry_points.txt` is the one pyproject.toml declares, and that folder plus
the source of the Python package (python/) go on sys.path (this process) and
PYTHONPATH (processes it starts). JUPYTER_LINEAGE_BIN points the package at
the binary under test.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Iterator

from kernels import REPO, lineage_binary

PROVISIONER = "lineage-provisioner"
ENV_VAR = "JUPYTER_DEFAULT_PROVISIONER_NAME"
PACKAGE_SRC = REPO / "python"


@functools.cache
def entry_point_site() -> Path:
    """A folder whose dist-info registers the entry points pyproject.toml
    declares (so the test checks the declared name and object path)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    site = Path(tempfile.mkdtemp(prefix="lineage-entry-points-"))
    # Readable by every user: the hub test's users import from here too.
    site.chmod(0o755)
    atexit.register(shutil.rmtree, site, True)
    dist = site / "jupyter_lineage_source-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: jupyter-lineage-source\nVersion: 0\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def python_path() -> str:
    """PYTHONPATH for a process that must find the provisioner."""
    parts = [str(PACKAGE_SRC), str(entry_point_site())]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def subprocess_env(provisioner_on: bool = True, **extra: str) -> dict[str, str]:
    """Environment for a child Python process (a script, a server) that
    starts kernels: the provisioner findable, and on when asked."""
    env = dict(os.environ)
    env["PYTHONPATH"] = python_path()
    env["JUPYTER_LINEAGE_BIN"] = str(lineage_binary())
    if provisioner_on:
        env[ENV_VAR] = PROVISIONER
    else:
        env.pop(ENV_VAR, None)
    env.update(extra)
    return env


def make_findable() -> None:
    """This process finds the provisioner (idempotent)."""
    for path in (str(PACKAGE_SRC), str(entry_point_site())):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("JUPYTER_LINEAGE_BIN", str(lineage_binary()))


def _reset_factory() -> None:
    """jupyter_client's provisioner factory is a process-wide singleton that
    reads JUPYTER_DEFAULT_PROVISIONER_NAME once, when first used."""
    from jupyter_client.provisioning import KernelProvisionerFactory

    KernelProvisionerFactory.clear_instance()


@contextlib.contextmanager
def provisioner_default() -> Iterator[None]:
    """Within the block, kernels started in this process default to
    `lineage-provisioner` through JUPYTER_DEFAULT_PROVISIONER_NAME."""
    make_findable()
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = PROVISIONER
    _reset_factory()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved
        _reset_factory()
