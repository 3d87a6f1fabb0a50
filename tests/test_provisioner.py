"""`lineage-provisioner`: every kernel recorded under its own name.

With the provisioner as jupyter_client's default (JUPYTER_DEFAULT_PROVISIONER_NAME,
or what `jupyter lineage enable` writes), real clients start plain kernelspecs
(`python3`, `bash`) and the runs are recorded, while the notebook keeps saying
`python3`. `jupyter lineage unwrap` moves notebooks saved on a `*-lineage`
kernel back to the kernel it wraps.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from kernels import DIRECT, LINEAGE, VENV_BIN, process_tree, tool_env
from provisioning import PROVISIONER, provisioner_default, subprocess_env
from recording_db import DB_FILE, count_executions, query, wait_executions
from test_notebook import CELLS, normalised

BASH_CELLS = ["echo hello from bash", "x=41; echo $((x + 1))", "echo to stderr >&2", "false"]


def notebook(kernelspec: str, display_name: str, language: str, cells: list[str]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": kernelspec, "display_name": display_name, "language": language}
    return nb


def run(nb: nbformat.NotebookNode, cwd: Path) -> tuple[nbformat.NotebookNode, list[list[str]]]:
    """Executes a copy of `nb` with nbclient, on the kernelspec its metadata
    names (no kernel_name: what `jupyter execute` and papermill do). Returns
    the executed notebook and the command lines of the launched process tree."""
    nb = copy.deepcopy(nb)
    client = NotebookClient(
        nb, timeout=60, startup_timeout=60, allow_errors=True, record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    trees: list[list[str]] = []
    with client.setup_kernel():
        tree = process_tree(client.km.provisioner.process.pid)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        for proc in tree:
            try:
                trees.append(proc.cmdline())
            except psutil.NoSuchProcess:
                pass
    client.set_widgets_metadata()
    return nb, trees


def proxies(cmdlines: list[list[str]]) -> int:
    """How many lineage proxies ran (a process whose command is the binary's
    `kernel` subcommand)."""
    return sum(1 for c in cmdlines if c and Path(c[0]).name == "jupyter-lineage" and "kernel" in c[1:2])


def wait_settled(db: Path, n: int) -> int:
    """Waits for n executions, then a little longer so that a second recorder
    (the failure this guards against) would have written its copy too."""
    wait_executions(db, n)
    time.sleep(1.0)
    return count_executions(db)


@pytest.fixture(scope="module")
def bash_prefix(jupyter_home, tmp_path_factory) -> Path:
    """bash_kernel's kernelspec, installed into a private prefix that only
    this module puts on JUPYTER_PATH."""
    pytest.importorskip("bash_kernel")
    prefix = tmp_path_factory.mktemp("bash-prefix")
    subprocess.run([sys.executable, "-m", "bash_kernel.install", "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=60, env=tool_env())
    assert (prefix / "share" / "jupyter" / "kernels" / "bash" / "kernel.json").is_file()
    return prefix


@pytest.fixture
def with_bash(bash_prefix, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        [str(bash_prefix / "share" / "jupyter"), os.environ["JUPYTER_PATH"]]))


@pytest.fixture(scope="module")
def python_direct(jupyter_home, tmp_path_factory) -> nbformat.NotebookNode:
    nb = notebook(DIRECT, "Python 3 (ipykernel)", "python", CELLS)
    executed, trees = run(nb, tmp_path_factory.mktemp("direct"))
    assert proxies(trees) == 0
    return executed


@pytest.mark.timeout(180)
def test_python3_notebook_is_recorded_and_keeps_its_kernelspec(python_direct, lineage_dir, tmp_path):
    """With JUPYTER_DEFAULT_PROVISIONER_NAME=lineage-provisioner, nbclient runs
    a `python3` notebook behind the proxy: every cell is recorded under
    kernelspec `python3`, the executed notebook still names `python3`, and its
    outputs equal those of the direct run."""
    nb = notebook(DIRECT, "Python 3 (ipykernel)", "python", CELLS)
    with provisioner_default():
        executed, trees = run(nb, tmp_path)
    assert proxies(trees) == 1, trees
    assert executed.metadata.kernelspec == nb.metadata.kernelspec
    want, got = normalised(python_direct), normalised(executed)
    for i, (w, g) in enumerate(zip(want["cells"], got["cells"])):
        assert g == w, f"cell {i} differs:\n{CELLS[i]}"
    assert got == want

    db = lineage_dir / DB_FILE
    assert wait_settled(db, len(CELLS)) == len(CELLS)
    rows = query(db, "SELECT code FROM executions ORDER BY id")
    assert [r["code"] for r in rows] == CELLS
    sessions = query(db, "SELECT kernelspec FROM sessions")
    assert [s["kernelspec"] for s in sessions] == [DIRECT]


@pytest.mark.timeout(180)
def test_bash_notebook_is_recorded(with_bash, lineage_dir, tmp_path):
    """The same for another language: a `bash` (bash_kernel) notebook runs
    behind the proxy with the same outputs as directly, and is recorded."""
    nb = notebook("bash", "Bash", "bash", BASH_CELLS)
    direct, trees = run(nb, tmp_path)
    assert proxies(trees) == 0
    assert count_executions(lineage_dir / DB_FILE) == 0
    with provisioner_default():
        executed, trees = run(nb, tmp_path)
    assert proxies(trees) == 1, trees
    assert executed.metadata.kernelspec.name == "bash"
    assert [c.outputs for c in executed.cells] == [c.outputs for c in direct.cells]
    assert "hello from bash" in executed.cells[0].outputs[0].text
    assert "42" in executed.cells[1].outputs[0].text

    db = lineage_dir / DB_FILE
    assert wait_settled(db, len(BASH_CELLS)) == len(BASH_CELLS)
    rows = query(db, "SELECT code FROM executions ORDER BY id")
    assert [r["code"] for r in rows] == BASH_CELLS
    assert [s["kernelspec"] for s in query(db, "SELECT kernelspec FROM sessions")] == ["bash"]


@pytest.mark.timeout(180)
def test_lineage_kernelspec_is_not_wrapped_twice(lineage_prefix, lineage_dir, tmp_path):
    """A notebook saved on `python3-lineage`, run with the provisioner on: one
    proxy, and every cell recorded once."""
    cells = ["a = 1", "print(a + 1)"]
    nb = notebook(LINEAGE, "Python 3 (ipykernel) · lineage", "python", cells)
    with provisioner_default():
        executed, trees = run(nb, tmp_path)
    assert proxies(trees) == 1, trees
    assert executed.cells[1].outputs[0].text == "2\n"
    db = lineage_dir / DB_FILE
    assert wait_settled(db, len(cells)) == len(cells)
    assert len(query(db, "SELECT id FROM sessions")) == 1


SCRIPT = """
import json, sys
from jupyter_client.manager import KernelManager
km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
reply = kc.execute_interactive("print('from a script')", timeout=60)
print(json.dumps({"status": reply["content"]["status"],
                  "provisioner": type(km.provisioner).__name__}), flush=True)
kc.stop_channels()
km.shutdown_kernel()
"""


def run_script(kernel_name: str, cwd: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, kernel_name], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(120)
def test_binary_that_cannot_run_falls_back_to_a_plain_launch(lineage_dir, tmp_path):
    """When the binary cannot run, the kernel still starts (not recorded) and
    the provisioner says why, once."""
    env = subprocess_env(JUPYTER_LINEAGE_BIN=str(tmp_path / "no-such-binary"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, DIRECT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "ok"
    assert proc.stderr.count("without recording") == 1, proc.stderr
    assert count_executions(lineage_dir / DB_FILE) == 0


def test_provisioner_name_is_registered():
    """The wheel declares the entry point jupyter_client looks up."""
    import tomllib

    from kernels import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    group = project["entry-points"]["jupyter_client.kernel_provisioners"]
    assert group == {PROVISIONER: "jupyter_lineage.provisioner:LineageProvisioner"}
    assert VENV_BIN.is_dir()


def lineage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    from kernels import lineage_binary

    proc = subprocess.run([str(lineage_binary()), *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.timeout(240)
def test_enable_prefix_records_a_plain_kernel_manager_and_disable_undoes_it(jupyter_home, lineage_dir, tmp_path):
    """`jupyter lineage enable --prefix P` (P on JUPYTER_PATH): a script that
    starts `KernelManager("python3")`, loading no Jupyter config, records its
    cells; `doctor` says where it was switched on; after `disable --prefix P`
    the same script records nothing and P holds nothing of ours."""
    prefix = tmp_path / "prefix"
    env = subprocess_env(
        provisioner_on=False,
        JUPYTER_PATH=os.pathsep.join([str(prefix / "share" / "jupyter"), os.environ["JUPYTER_PATH"]]),
    )
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    db = lineage_dir / DB_FILE

    lineage("enable", "--prefix", str(prefix), env=env)
    spec = json.loads((prefix / "share/jupyter/kernels/python3/kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == PROVISIONER
    config = prefix / "etc/jupyter/jupyter_config.json"
    assert json.loads(config.read_text())["KernelProvisionerFactory"]["default_provisioner_name"] == PROVISIONER
    doctor = json.loads(lineage("doctor", "--json", env=env).stdout)
    assert [k["name"] for k in doctor["recording_mode"]["kernelspecs"]] == [DIRECT]

    out = run_script(DIRECT, tmp_path, env)
    assert out == {"status": "ok", "provisioner": "LineageProvisioner"}
    wait_executions(db, 1)
    assert query(db, "SELECT code FROM executions")[0]["code"] == "print('from a script')"
    assert [s["kernelspec"] for s in query(db, "SELECT kernelspec FROM sessions")] == [DIRECT]

    lineage("disable", "--prefix", str(prefix), env=env)
    assert not config.exists()
    assert list((prefix / "share/jupyter/kernels").iterdir()) == []
    doctor = json.loads(lineage("doctor", "--json", env=env).stdout)
    assert doctor["recording_mode"]["kernelspecs"] == []
    out = run_script(DIRECT, tmp_path, env)
    assert out == {"status": "ok", "provisioner": "LocalProvisioner"}
    time.sleep(1.0)
    assert count_executions(db) == 1


def test_unwrap_changes_only_the_kernelspec(tmp_path):
    """`jupyter lineage unwrap` on a notebook saved on python3-lineage (the
    demo): it names python3 afterwards, and every other byte is unchanged;
    a notebook on a plain kernel is left alone."""
    from kernels import REPO

    original = (REPO / "examples" / "demo.ipynb").read_bytes()
    nb = tmp_path / "demo.ipynb"
    nb.write_bytes(original)
    plain = tmp_path / "plain.ipynb"
    plain_nb = notebook(DIRECT, "Python 3 (ipykernel)", "python", ["1"])
    nbformat.write(plain_nb, plain)
    plain_bytes = plain.read_bytes()

    proc = lineage("unwrap", str(nb), str(plain), env=tool_env())
    assert "python3-lineage → python3" in proc.stdout, proc.stdout
    after = nb.read_bytes()
    assert json.loads(after)["metadata"]["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    want = original.replace(b'"name": "python3-lineage"', b'"name": "python3"').replace(
        '"display_name": "Python 3 (ipykernel) · lineage"'.encode(), b'"display_name": "Python 3 (ipykernel)"')
    assert after != original and b"**Python 3 (ipykernel) \xc2\xb7 lineage**" in after  # the text cell untouched
    assert after == want
    assert plain.read_bytes() == plain_bytes
