#!/usr/bin/env python3
"""Kernel start through the wheel's python3-lineage kernelspec vs plain
python3, side by side, plus the wheel's size (`make bench-wheel`).

bench_proxy.py times starts through the kernelspec that `jupyter-lineage
install` writes (the binary by absolute path). A pip user gets the wheel's
kernelspec instead, whose argv is `python -m jupyter_lineage kernel … --
python -m ipykernel_launcher …`: one more Python start (the shim) before the
binary execs. This measures that path, in a venv made with Debian's python
holding ipykernel, jupyter_client and the wheel (reused between runs; the
wheel is reinstalled each time). Starts alternate between the two kernelspecs
so drift hits both alike. Not a pass/fail test: read the table.

    .venv/bin/python bench/bench_wheel.py [--starts 15] [--wheel dist/….whl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "build" / "bench-wheel-venv"
REQUIREMENTS = ["ipykernel>=6", "jupyter_client>=8"]
GOAL_RATIO = 1.1
BIN_SPEC = "python3-lineage-bin"
WHEEL_LIMIT = 15_000_000

# Runs inside the bench venv: alternate starts, print JSON timings.
INNER = r'''
import json, sys, time
from jupyter_client.manager import KernelManager

def start(name):
    t0 = time.perf_counter()
    km = KernelManager(kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    took = time.perf_counter() - t0
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    return took

n = int(sys.argv[1])
names = sys.argv[2:]
out = {name: [] for name in names}
for name in names:  # warm the page cache for both
    start(name)
for i in range(n):
    order = names[i % len(names):] + names[:i % len(names)]
    for name in order:
        out[name].append(start(name))
print(json.dumps(out))
'''


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_venv(wheel: Path) -> Path:
    py = VENV / "bin" / "python"
    stamp = VENV / ".bench.stamp"
    if not (stamp.is_file() and stamp.read_text() == json.dumps(REQUIREMENTS)):
        run(["/usr/bin/python3", "-m", "venv", "--clear", str(VENV)])
        run([str(py), "-m", "pip", "install", "--quiet", *REQUIREMENTS])
        stamp.write_text(json.dumps(REQUIREMENTS))
    run([str(py), "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)])
    return py


def shim_overhead(py: Path, home: Path, n: int = 20) -> tuple[float, float]:
    """Median wall time of `python -m jupyter_lineage --version` vs the binary."""
    import time

    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    binary = VENV / "bin" / "jupyter-lineage"

    def med(cmd: list[str]) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return med([str(py), "-m", "jupyter_lineage", "--version"]), med([str(binary), "--version"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=15, help="kernel starts per kernelspec")
    ap.add_argument("--wheel", type=Path, help="default: the one in dist/")
    args = ap.parse_args()
    wheel = args.wheel or next(iter(sorted((REPO / "dist").glob("jupyter_lineage-*.whl"))), None)
    if wheel is None:
        sys.exit("no wheel in dist/: run `make wheel` first")
    py = ensure_venv(wheel)
    with tempfile.TemporaryDirectory(prefix="bench-wheel-") as tmp:
        home = Path(tmp)
        (home / "lineage").mkdir()
        env = {
            "HOME": str(home),
            # The venv is not on PATH: as on a hub, only argv[0] and the shim
            # point at the right interpreter.
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_LINEAGE_DIR": str(home / "lineage"),
            "JUPYTER_LINEAGE_LOG": "warn",
        }
        # The same proxy without the shim: the kernelspec `jupyter-lineage
        # install` writes (binary by absolute path), for telling the shim's
        # share from the proxy's.
        prefix = home / "prefix"
        run([str(VENV / "bin" / "jupyter-lineage"), "install", "--wrap", "python3", "--name", BIN_SPEC,
             "--prefix", str(prefix)], env={**env, "PATH": f"{VENV / 'bin'}:{env['PATH']}"}, capture_output=True)
        env["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
        proc = run([str(py), "-c", INNER, str(args.starts), "python3", "python3-lineage", BIN_SPEC],
                   env=env, cwd=tmp, capture_output=True)
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        shim, binary = shim_overhead(py, home)

    direct, lineage = times["python3"], times["python3-lineage"]
    md, ml = statistics.median(direct), statistics.median(lineage)
    size = wheel.stat().st_size
    print(f"wheel: {wheel.name}")
    print(f"  size {size / 1e6:.2f} MB (goal <= {WHEEL_LIMIT / 1e6:.0f} MB): {'ok' if size <= WHEEL_LIMIT else 'OVER'}")
    print(f"kernel start to ready, {args.starts} starts each, alternated (venv not on PATH):")
    print(f"  {'kernelspec':<34} {'median':>9} {'min':>9} {'max':>9}")
    rows = (("python3 (plain ipykernel)", direct), ("python3-lineage (wheel, via shim)", lineage),
            ("python3-lineage-bin (no shim)", times[BIN_SPEC]))
    for name, xs in rows:
        print(f"  {name:<34} {statistics.median(xs) * 1e3:8.0f}ms {min(xs) * 1e3:8.0f}ms {max(xs) * 1e3:8.0f}ms")
    ratio = ml / md
    print(f"  ratio lineage/direct {ratio:.3f} (goal <= {GOAL_RATIO}): {'ok' if ratio <= GOAL_RATIO else 'OVER'}")
    print(f"  ratio lineage-bin/direct {statistics.median(times[BIN_SPEC]) / md:.3f} (the proxy alone)")
    print(f"shim: `python -m jupyter_lineage --version` {shim * 1e3:.1f} ms vs "
          f"`jupyter-lineage --version` {binary * 1e3:.1f} ms (+{(shim - binary) * 1e3:.1f} ms per kernel start)")


if __name__ == "__main__":
    main()
