"""`jupyter-lineage install / list / uninstall` write and find kernelspecs the
way `jupyter kernelspec` does. Each test uses its own prefix."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from kernels import tool_env


def run(lineage_bin: Path, *args: str, prefix: Path) -> subprocess.CompletedProcess:
    env = tool_env(JUPYTER_PATH=str(prefix / "share" / "jupyter"))
    return subprocess.run([str(lineage_bin), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def prefix(tmp_path: Path, jupyter_home) -> Path:
    return tmp_path / "prefix"


def kernels_dir(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "kernels"


def test_install_wraps_python3(lineage_bin, prefix):
    proc = run(lineage_bin, "install", "--wrap", "python3", "--prefix", str(prefix), prefix=prefix)
    assert proc.returncode == 0, proc.stderr
    spec_dir = kernels_dir(prefix) / "python3-lineage"
    spec = json.loads((spec_dir / "kernel.json").read_text())
    argv = spec["argv"]
    assert argv[0] == str(lineage_bin.resolve()) or Path(argv[0]).resolve() == lineage_bin.resolve()
    assert argv[1:6] == ["kernel", "-f", "{connection_file}", "--kernelspec", "python3"]
    assert argv[6] == "--"
    wrapped = argv[7:]
    assert os.path.isabs(wrapped[0]) and os.access(wrapped[0], os.X_OK), wrapped
    assert wrapped[1:] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["language"] == "python"
    assert spec.get("interrupt_mode", "signal") == "signal"
    assert "lineage" in spec["display_name"].lower()
    assert "python3" in json.dumps(spec.get("metadata", {})), "metadata should say what it wraps"
    # the wrapped spec's logos come along
    assert (spec_dir / "logo-64x64.png").is_file()
    # and jupyter_client finds it through JUPYTER_PATH
    ksm = KernelSpecManager(kernel_dirs=[str(kernels_dir(prefix))])
    assert "python3-lineage" in ksm.find_kernel_specs()


def test_install_name_and_display_name(lineage_bin, prefix):
    proc = run(lineage_bin, "install", "--wrap", "python3", "--prefix", str(prefix),
               "--name", "mine", "--display-name", "My Python", prefix=prefix)
    assert proc.returncode == 0, proc.stderr
    spec = json.loads((kernels_dir(prefix) / "mine" / "kernel.json").read_text())
    assert spec["display_name"] == "My Python"


def test_list_and_uninstall(lineage_bin, prefix):
    assert run(lineage_bin, "install", "--wrap", "python3", "--prefix", str(prefix), prefix=prefix).returncode == 0
    listed = run(lineage_bin, "list", "--json", prefix=prefix)
    assert listed.returncode == 0, listed.stderr
    json.loads(listed.stdout)  # machine-readable
    # (Compare paths: another python3-lineage may be installed elsewhere,
    # e.g. in the venv by `make demo`.)
    spec_dir = str(kernels_dir(prefix) / "python3-lineage")
    assert spec_dir in listed.stdout
    human = run(lineage_bin, "list", prefix=prefix)
    assert human.returncode == 0 and spec_dir in human.stdout

    proc = run(lineage_bin, "uninstall", "python3-lineage", "--prefix", str(prefix), prefix=prefix)
    assert proc.returncode == 0, proc.stderr
    assert not (kernels_dir(prefix) / "python3-lineage").exists()
    assert spec_dir not in run(lineage_bin, "list", "--json", prefix=prefix).stdout


def test_missing_kernelspec_names_the_paths_searched(lineage_bin, prefix):
    proc = run(lineage_bin, "install", "--wrap", "no-such-kernel", "--prefix", str(prefix), prefix=prefix)
    assert proc.returncode != 0
    assert "no-such-kernel" in proc.stderr
    assert str(prefix / "share" / "jupyter") in proc.stderr, proc.stderr
    assert not (kernels_dir(prefix) / "no-such-kernel-lineage").exists()


def test_malformed_kernelspec_is_a_clear_error(lineage_bin, prefix):
    broken = kernels_dir(prefix) / "broken"
    broken.mkdir(parents=True)
    (broken / "kernel.json").write_text("{ this is not json")
    proc = run(lineage_bin, "install", "--wrap", "broken", "--prefix", str(prefix), prefix=prefix)
    assert proc.returncode != 0
    assert str(broken) in proc.stderr, proc.stderr
