#!/usr/bin/env python3
"""Direct python3 vs python3-lineage, side by side, in one run (`make bench`).

Both kernels run at the same time and the measurements alternate between them
in small blocks, so drift on a noisy machine hits both alike. Prints medians,
p99 and the ratio lineage/direct, the goals next to them, and the
proxy's memory at the end. Not a pass/fail test: read the table.

    .venv/bin/python bench/bench_proxy.py [--n 500] [--prints 20000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import psutil
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parent.parent
DIRECT, LINEAGE = "python3", "python3-lineage"
TIMEOUT = 120


# ---------------------------------------------------------------- set-up


def private_jupyter(root: Path, lineage_bin: Path) -> None:
    """Jupyter paths, IPython profile and lineage store in a tmp dir; the
    lineage kernelspec installed there by the binary itself."""
    venv_bin = Path(sys.executable).parent
    os.environ.update({
        "JUPYTER_PATH": str(root / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(root / "etc"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "JUPYTER_LINEAGE_DIR": str(root / "lineage"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    os.environ.setdefault("JUPYTER_LINEAGE_LOG", "warn")
    (root / "runtime").mkdir(parents=True)
    (root / "lineage").mkdir()
    proc = subprocess.run(
        [str(lineage_bin), "install", "--wrap", DIRECT, "--prefix", str(root)],
        capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0 or not (root / "share/jupyter/kernels" / LINEAGE / "kernel.json").is_file():
        sys.exit(f"`{lineage_bin} install --wrap python3 --prefix {root}` failed:\n{proc.stdout}{proc.stderr}")


class Kernel:
    """One running kernel with a ready client."""

    def __init__(self, name: str, cwd: Path) -> None:
        self.name = name
        started = time.perf_counter()
        self.km = KernelManager(kernel_name=name)
        self.km.start_kernel(cwd=str(cwd))
        self.kc: BlockingKernelClient = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=TIMEOUT)
        self.start_seconds = time.perf_counter() - started
        self.proc = psutil.Process(self.km.provisioner.process.pid)
        self.tree = [self.proc, *self.proc.children(recursive=True)]
        self.rss_at_start = self.proc.memory_info().rss

    def wait_reply(self, msg_id: str) -> dict:
        while True:
            msg = self.kc.get_shell_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def wait_idle(self, msg_id: str, on_msg: Callable[[dict], None] | None = None) -> None:
        while True:
            msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if on_msg:
                on_msg(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return

    def close(self) -> None:
        try:
            self.kc.stop_channels()
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=False)
        finally:
            for proc in self.tree:
                try:
                    if proc.is_running():
                        proc.kill()
                except psutil.NoSuchProcess:
                    pass


# ---------------------------------------------------------------- measurements


def execute_round_trip(k: Kernel) -> tuple[float, float]:
    """(to execute_reply, to status idle) for `pass`, in seconds."""
    t0 = time.perf_counter()
    msg_id = k.kc.execute("pass", store_history=False)
    k.wait_reply(msg_id)
    t1 = time.perf_counter()
    k.wait_idle(msg_id)
    return t1 - t0, time.perf_counter() - t0


def kernel_info_round_trip(k: Kernel) -> float:
    t0 = time.perf_counter()
    msg_id = k.kc.kernel_info()
    k.wait_reply(msg_id)
    elapsed = time.perf_counter() - t0
    k.wait_idle(msg_id)
    return elapsed


def flushed_prints(k: Kernel, count: int) -> tuple[float, int]:
    """Stream messages per second, from the request until idle."""
    received = 0

    def on_msg(msg: dict) -> None:
        nonlocal received
        if msg["msg_type"] == "stream":
            received += 1

    t0 = time.perf_counter()
    msg_id = k.kc.execute(f"for i in range({count}): print(i, flush=True)", store_history=False)
    k.wait_idle(msg_id, on_msg)
    elapsed = time.perf_counter() - t0
    k.wait_reply(msg_id)
    return received / elapsed, received


def big_display(k: Kernel, megabytes: int) -> float:
    """Seconds from the request until the display_data (10 MB) has arrived."""
    code = (f"display({{'text/plain': 'x' * {megabytes * 1_000_000}}}, raw=True)")
    got = []
    t0 = time.perf_counter()
    msg_id = k.kc.execute(code, store_history=False)

    def on_msg(msg: dict) -> None:
        if msg["msg_type"] == "display_data":
            got.append(time.perf_counter() - t0)
            assert len(msg["content"]["data"]["text/plain"]) == megabytes * 1_000_000

    k.wait_idle(msg_id, on_msg)
    k.wait_reply(msg_id)
    assert got, "no display_data"
    return got[0]


def shutdown_and_restart(cwd: Path, count: int, settle: float) -> dict[str, dict[str, list[float]]]:
    """Graceful shutdown (`shutdown_kernel(now=False)`, what nbclient and
    papermill end with) and restart (`restart_kernel(now=False)` until the
    client is ready again, what JupyterLab's restart does), in seconds, on
    fresh kernels alternated between the kernelspecs. Each kernel has run a
    cell and been up `settle` seconds first, as a used kernel has.
    jupyter_client polls for the process's exit every 0.1 s, so both come in
    steps of about 0.1 s, as a user sees them."""
    out = {name: {"shutdown": [], "restart": []} for name in (DIRECT, LINEAGE)}
    for i in range(count):
        for name in ([DIRECT, LINEAGE] if i % 2 == 0 else [LINEAGE, DIRECT]):
            k = Kernel(name, cwd)
            try:
                execute_round_trip(k)
                time.sleep(settle)
                t0 = time.perf_counter()
                k.km.restart_kernel(now=False)
                k.kc.wait_for_ready(timeout=TIMEOUT)
                out[name]["restart"].append(time.perf_counter() - t0)
                k.proc = psutil.Process(k.km.provisioner.process.pid)
                k.tree = [k.proc, *k.proc.children(recursive=True)]
                execute_round_trip(k)
                time.sleep(settle)
                t0 = time.perf_counter()
                k.km.shutdown_kernel(now=False)
                out[name]["shutdown"].append(time.perf_counter() - t0)
            finally:
                k.close()
    return out


def alternate(kernels: dict[str, Kernel], total: int, block: int, fn) -> dict[str, list]:
    """Run fn(kernel) `total` times per kernel, alternating in blocks and
    swapping which goes first each block."""
    out: dict[str, list] = {name: [] for name in kernels}
    names = list(kernels)
    for b in range(0, total, block):
        order = names if (b // block) % 2 == 0 else names[::-1]
        for name in order:
            for _ in range(min(block, total - b)):
                out[name].append(fn(kernels[name]))
    return out


def ipykernel_of(k: Kernel) -> psutil.Process:
    """The real kernel: the launched process (direct) or the proxy's child."""
    for proc in k.tree:
        if k.name == LINEAGE and proc.pid == k.proc.pid:
            continue  # the proxy's own argv names ipykernel_launcher too
        if "ipykernel_launcher" in proc.cmdline():
            return proc
    return k.tree[-1]


# ---------------------------------------------------------------- reporting


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


class Table:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.data: list[dict] = []

    def latency(self, label: str, direct: list[float], lineage: list[float], goal: bool = True,
                ratio_goal: float | None = None) -> None:
        dm, lm = statistics.median(direct) * 1e3, statistics.median(lineage) * 1e3
        dp, lp = p99(direct) * 1e3, p99(lineage) * 1e3
        added = lm - dm
        verdict = ""
        if goal:
            ok = added <= 0.1 and lp <= 1.05 * dp
            verdict = f"{'met' if ok else 'NOT met'} (+{added:.3f} ms; p99 x{lp / dp:.2f})"
        elif ratio_goal:
            ok = lm <= ratio_goal * dm
            verdict = f"{'met' if ok else 'NOT met'} (<= x{ratio_goal})"
        self.rows.append([label, f"{len(direct)}", f"{dm:.3f} ms", f"{lm:.3f} ms", f"x{lm / dm:.2f}",
                          f"{dp:.3f} ms", f"{lp:.3f} ms", f"x{lp / dp:.2f}", verdict])
        self.data.append({"metric": label, "n": len(direct), "unit": "ms",
                          "direct_median": dm, "lineage_median": lm, "direct_p99": dp, "lineage_p99": lp})

    def throughput(self, label: str, direct: list[float], lineage: list[float], unit: str) -> None:
        dm, lm = statistics.median(direct), statistics.median(lineage)
        ok = lm >= 1.0 * dm
        self.rows.append([label, f"{len(direct)}", f"{dm:,.0f} {unit}", f"{lm:,.0f} {unit}", f"x{lm / dm:.2f}",
                          "", "", "", f"{'met' if ok else 'NOT met'} (>= x1.0)"])
        self.data.append({"metric": label, "n": len(direct), "unit": unit,
                          "direct_median": dm, "lineage_median": lm})

    def print(self) -> None:
        head = ["metric", "n", "direct median", "lineage median", "ratio",
                "direct p99", "lineage p99", "ratio", "goal"]
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(len(head))]
        line = "  ".join("-" * w for w in widths)
        print(line)
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        print(line)
        for row in self.rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="round trips per kernel (default 500)")
    ap.add_argument("--block", type=int, default=50, help="round trips per block before switching")
    ap.add_argument("--prints", type=int, default=20000, help="flushed prints per run (default 20000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the print and display runs")
    ap.add_argument("--display-mb", type=int, default=10)
    ap.add_argument("--starts", type=int, default=5, help="kernel starts per kernelspec")
    ap.add_argument("--shutdowns", type=int, default=5,
                    help="graceful shutdowns and restarts per kernelspec (default 5)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds a kernel is up before it is shut down or restarted")
    ap.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--bin", type=Path, default=REPO / "target" / "release" / "jupyter-lineage")
    args = ap.parse_args()
    if args.quick:
        args.n, args.block, args.prints, args.reps, args.starts, args.shutdowns = 60, 20, 2000, 1, 1, 1

    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not built: run `cargo build --release` (or `make bench`)")

    with tempfile.TemporaryDirectory(prefix="lineage-bench-") as tmp:
        root = Path(tmp)
        private_jupyter(root, args.bin)
        cwd = root / "work"
        cwd.mkdir()
        table = Table()
        print(f"jupyter-lineage bench: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
              f"binary {args.bin}", flush=True)

        # Kernel start time through each kernelspec (fresh kernels, alternated).
        starts: dict[str, list[float]] = {DIRECT: [], LINEAGE: []}
        for i in range(args.starts):
            for name in ([DIRECT, LINEAGE] if i % 2 == 0 else [LINEAGE, DIRECT]):
                k = Kernel(name, cwd)
                starts[name].append(k.start_seconds)
                k.close()
        print("measured: kernel start", flush=True)
        lifecycle = shutdown_and_restart(cwd, args.shutdowns, args.settle)
        print("measured: shutdown and restart", flush=True)

        kernels = {DIRECT: Kernel(DIRECT, cwd), LINEAGE: Kernel(LINEAGE, cwd)}
        try:
            for k in kernels.values():  # warm up both paths
                for _ in range(20):
                    execute_round_trip(k)
                    kernel_info_round_trip(k)

            ex = alternate(kernels, args.n, args.block, execute_round_trip)
            table.latency("execute `pass` -> reply", [r for r, _ in ex[DIRECT]], [r for r, _ in ex[LINEAGE]])
            table.latency("execute `pass` -> idle", [i for _, i in ex[DIRECT]], [i for _, i in ex[LINEAGE]])
            print("measured: execute", flush=True)
            ki = alternate(kernels, args.n, args.block, kernel_info_round_trip)
            table.latency("kernel_info -> reply", ki[DIRECT], ki[LINEAGE])
            print("measured: kernel_info", flush=True)
            pr = alternate(kernels, args.reps, 1, lambda k: flushed_prints(k, args.prints))
            table.throughput(f"{args.prints:,} flushed prints", [r for r, _ in pr[DIRECT]],
                             [r for r, _ in pr[LINEAGE]], "msg/s")
            counts = {name: sorted({c for _, c in runs}) for name, runs in pr.items()}
            print(f"measured: prints (stream messages received: {counts})", flush=True)
            bd = alternate(kernels, args.reps, 1, lambda k: big_display(k, args.display_mb))
            table.latency(f"{args.display_mb} MB display", bd[DIRECT], bd[LINEAGE], goal=False,
                          ratio_goal=1.05)
            print("measured: big display", flush=True)
            table.latency("kernel start (to ready)", starts[DIRECT], starts[LINEAGE], goal=False)
            for what in ("shutdown", "restart"):
                label = "graceful shutdown" if what == "shutdown" else "restart (to ready)"
                table.latency(label, lifecycle[DIRECT][what], lifecycle[LINEAGE][what], goal=False,
                              ratio_goal=1.1)

            proxy = kernels[LINEAGE].proc
            proxy_rss_start = kernels[LINEAGE].rss_at_start
            rss_busy = proxy.memory_info().rss
            # The recorder is still writing the last displays; once quiet it
            # hands freed memory back (within a second).
            time.sleep(2.0)
            rss = proxy.memory_info().rss
            peak = None
            try:
                for line in Path(f"/proc/{proxy.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
            except OSError:
                pass
            kernel_rss = {name: ipykernel_of(k).memory_info().rss for name, k in kernels.items()}
        finally:
            for k in kernels.values():
                k.close()

    print()
    table.print()
    mb = 1024 * 1024
    peak_text = f", peak {peak / mb:.1f} MB" if peak else ""
    print(f"proxy RSS after start: {proxy_rss_start / mb:.1f} MB; right after the last display: "
          f"{rss_busy / mb:.1f} MB; 2 s later: {rss / mb:.1f} MB{peak_text} "
          f"(goal <= 20 MB: {'met' if rss <= 20 * mb else 'NOT met'}); "
          f"ipykernel RSS: direct {kernel_rss[DIRECT] / mb:.0f} MB, "
          f"behind the proxy {kernel_rss[LINEAGE] / mb:.0f} MB")
    print("ratio = lineage / direct; goals: added median <= 0.1 ms, p99 <= x1.05, "
          "throughput >= x1.0, 10 MB display <= x1.05, shutdown and restart <= x1.1, proxy RSS <= 20 MB")
    if args.json:
        args.json.write_text(json.dumps({"rows": table.data, "proxy_rss_start": proxy_rss_start, "proxy_rss": rss, "proxy_rss_busy": rss_busy, "proxy_peak_rss": peak}, indent=2))


if __name__ == "__main__":
    main()
