#!/usr/bin/env python3
"""Soak test of the lineage proxy (issue 7, "Soak test").

A real ipykernel behind the built proxy, three clients at once (three
BlockingKernelClients on one KernelManager, each its own session), running
cells with random output mixes (streams, rich displays, 1-5 MB payloads,
errors, results, sleeps) while a controller interrupts at random points,
restarts the kernel about a dozen times per ten minutes and makes it
`os._exit` a few times (then restarts it). Afterwards:

  * every execution a client saw a reply for is in the database exactly
    once (by msg_id), with the status of its reply and, where the client saw
    the execution through to its idle, exactly the outputs it received
    (streams coalesced as the recorder and the notebook show them);
  * the RSS of the proxy alive at the end is within 10% of its own RSS after
    a warm-up phase (one of each payload kind from every client) that
    follows the last restart; every proxy's RSS is reported;
  * no kernel or proxy process is left behind (checked by pid).

Usage: .venv/bin/python tests/soak.py --seconds 600 [--seed N] [--json FILE]
Exit status 0 when every check holds, 1 otherwise (the failures are printed).
tests/test_soak.py runs it for 60 s; `make soak` for minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import psutil  # noqa: E402
from jupyter_client.blocking.client import BlockingKernelClient  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from kernels import DIRECT, LINEAGE, VENV_BIN, is_gone, lineage_binary, process_tree, tool_env  # noqa: E402
from recording_db import DB_FILE, client_outputs, lineage_health, query, stored_outputs  # noqa: E402

MB = 1_000_000
RSS_TOLERANCE = 0.10


def log(*args) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}]", *args, flush=True)


# --------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------

LARGE_SIZES = [1 * MB, 2 * MB, 3 * MB, 4 * MB, 5 * MB]
KINDS = ["stream", "rich", "result", "error", "sleep", "large"]
WEIGHTS = [30, 20, 20, 10, 15, 5]


def cell(kind: str, rng: random.Random, tag: str, size: int | None = None) -> str:
    """The source of a cell of this kind. Large payloads come from a few
    seeds, so that re-runs repeat some (as re-running a plot does) and the
    database stays a reasonable size over a long run."""
    head = f"# soak {tag}\n"
    if kind == "stream":
        lines = []
        for i in range(rng.randint(1, 40)):
            stream = rng.choice(["sys.stdout", "sys.stdout", "sys.stderr"])
            flush = rng.random() < 0.3
            lines.append(f"print({tag!r}, {i}, {'x' * rng.randint(0, 200)!r}, file={stream}"
                         f"{', flush=True' if flush else ''})")
        return head + "import sys\n" + "\n".join(lines)
    if kind == "rich":
        n = rng.randint(1, 4)
        parts = []
        for i in range(n):
            choice = rng.randrange(3)
            if choice == 0:
                parts.append(f"display(HTML('<b>{tag} {i}</b>'))")
            elif choice == 1:
                parts.append(f"display({{'text/plain': '{tag} {i}', 'application/json': "
                             f"{{'tag': {tag!r}, 'i': {i}, 'v': {[rng.random() for _ in range(5)]}}}}}, raw=True)")
            else:
                k = rng.randint(100, 20000)
                parts.append(f"display({{'image/png': base64.b64encode(random.Random({k}).randbytes({k})).decode(), "
                             f"'text/plain': '<img {k}>'}}, raw=True, metadata={{'image/png': {{'width': {k % 97}}}}})")
            if rng.random() < 0.3:
                parts.append(f"print('between', {i})")
        return head + "import base64, random\nfrom IPython.display import display, HTML\n" + "\n".join(parts)
    if kind == "result":
        expr = rng.choice([f"{{'tag': {tag!r}, 'n': {rng.randint(0, 10**9)}}}",
                           f"[{rng.random()}] * {rng.randint(1, 50)}",
                           f"'{tag}' * {rng.randint(1, 100)}"])
        return head + (f"print('computing')\n{expr}" if rng.random() < 0.5 else expr)
    if kind == "error":
        err = rng.choice(["1/0", f"raise ValueError('soak {tag}')", "undefined_name_xyz",
                          f"[].pop()"])
        return head + f"print('about to fail {tag}')\n{err}"
    if kind == "sleep":
        t = round(rng.uniform(0.1, 1.2), 2)
        return head + f"import time\nprint('sleeping {tag}', flush=True)\ntime.sleep({t})\nprint('woke {tag}')"
    if kind == "large":
        size = size or rng.choice(LARGE_SIZES)
        seed = rng.randrange(6)
        raw = size * 3 // 4
        if rng.random() < 0.5:
            return head + (f"import base64, random\n"
                           f"display({{'image/png': base64.b64encode(random.Random({seed}).randbytes({raw})).decode(),"
                           f" 'text/plain': '<large {size}>'}}, raw=True)")
        return head + (f"import base64, random\n"
                       f"print(base64.b64encode(random.Random({seed}).randbytes({raw})).decode())")
    raise ValueError(kind)


def digest(outputs: list[dict], round_floats: bool = False) -> str:
    """A hash of outputs; with round_floats, floats to 12 significant digits
    (to tell a float stored a few ULPs off from any other difference)."""
    def rounded(v):
        if isinstance(v, float):
            return float(f"{v:.12g}")
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, list):
            return [rounded(x) for x in v]
        return v

    return hashlib.sha256(json.dumps(rounded(outputs) if round_floats else outputs,
                                     sort_keys=True).encode()).hexdigest()


def summary(outputs: list[dict]) -> list:
    """A short description of outputs, for failure messages."""
    res = []
    for o in outputs:
        if o["output_type"] == "stream":
            res.append(("stream", o["name"], len(o["text"])))
        elif o["output_type"] == "error":
            res.append(("error", o["ename"]))
        else:
            res.append((o["output_type"], {k: len(json.dumps(v)) for k, v in o["data"].items()}))
    return res


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


@dataclass
class Result:
    worker: int
    kind: str
    msg_id: str
    gen_sent: int
    gen_done: int
    status: str | None  # reply status, None when no reply came
    ename: str | None = None
    idle: bool = False
    digest: str | None = None
    digest_rounded: str | None = None
    summary: list | None = None
    seconds: float = 0.0
    reply_lost: bool = False  # idle came, the reply never did


@dataclass
class State:
    km: KernelManager
    rng: random.Random
    gen: int = 0
    restarting: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event = field(default_factory=threading.Event)
    results: list[Result] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seen_procs: list[psutil.Process] = field(default_factory=list)
    interrupts_at: list[float] = field(default_factory=list)


class Worker(threading.Thread):
    def __init__(self, index: int, state: State, seed: int):
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index = index
        self.state = state
        self.rng = random.Random(seed)
        self.inject: queue.Queue[tuple[str, int | None]] = queue.Queue()
        self.idle = threading.Event()  # not running a cell
        self.ready_gen = -1
        self.count = 0
        self.kc = BlockingKernelClient()
        self.kc.load_connection_info(state.km.get_connection_info())
        self.kc.start_channels()

    def run(self) -> None:
        try:
            while not self.state.stop.is_set():
                if self.state.hold.is_set() and self.inject.empty():
                    self.idle.set()
                    time.sleep(0.05)
                    continue
                self.idle.clear()
                if not self.ensure_ready():
                    continue
                try:
                    kind, size = self.inject.get_nowait()
                except queue.Empty:
                    kind, size = self.rng.choices(KINDS, WEIGHTS)[0], None
                self.run_cell(kind, size)
        except BaseException:  # noqa: BLE001 - reported at the end
            self.state.errors.append(f"worker {self.index} crashed:\n{traceback.format_exc()}")
        finally:
            self.idle.set()

    def ensure_ready(self) -> bool:
        """After a (re)start: a kernel_info round trip whose busy/idle came
        back on iopub, so that this client's iopub is subscribed again."""
        with self.state.lock:
            gen, restarting = self.state.gen, self.state.restarting
        if restarting:
            time.sleep(0.05)
            return False
        if self.ready_gen == gen:
            return True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.state.stop.is_set():
            if self.state.gen != gen or self.state.restarting:
                return False
            msg_id = self.kc.kernel_info()
            got_reply = got_iopub = False
            until = time.monotonic() + 1.0
            while time.monotonic() < until and not (got_reply and got_iopub):
                try:
                    m = self.kc.get_iopub_msg(timeout=0.05)
                    if m["parent_header"].get("msg_id") == msg_id:
                        got_iopub = True
                except queue.Empty:
                    pass
                try:
                    while True:
                        m = self.kc.get_shell_msg(timeout=0)
                        if m["parent_header"].get("msg_id") == msg_id:
                            got_reply = True
                except queue.Empty:
                    pass
            if got_reply and got_iopub:
                self.ready_gen = gen
                return True
        if not self.state.stop.is_set():
            self.state.errors.append(f"worker {self.index}: kernel not ready within 60 s (gen {gen})")
            self.state.stop.set()
        return False

    def run_cell(self, kind: str, size: int | None) -> None:
        self.count += 1
        tag = f"w{self.index}c{self.count}"
        code = "import os\nprint('exiting', flush=True)\nos._exit(7)" if kind == "exit" \
            else cell(kind, self.rng, tag, size)
        with self.state.lock:
            if self.state.restarting or self.state.gen != self.ready_gen:
                return
            gen = self.state.gen
            msg_id = self.kc.execute(code)
        started = time.monotonic()
        reply = None
        msgs: list[dict] = []
        idle = False
        gen_changed_at = None
        idle_at = None
        lost = False
        deadline = started + 90
        while not (reply and idle):
            try:
                m = self.kc.get_iopub_msg(timeout=0.02)
                if m["parent_header"].get("msg_id") == msg_id:
                    msgs.append(m)
                    if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                        idle = True
                        idle_at = time.monotonic()
            except queue.Empty:
                pass
            try:
                while True:
                    m = self.kc.get_shell_msg(timeout=0)
                    if m["parent_header"].get("msg_id") == msg_id:
                        reply = m
            except queue.Empty:
                pass
            now = time.monotonic()
            if idle and not reply and now - idle_at > 5:
                # ipykernel drops the reply when SIGINT lands in its message
                # handler after the cell ("KeyboardInterrupt caught in
                # kernel"): a plain kernel does the same. Anything else is a
                # lost reply. Python runs a signal handler only when its main
                # thread wakes, so a SIGINT sent while the kernel sat idle
                # lands with the next request: look back 2 s, not just to
                # this cell's start.
                interrupted = any(started - 2.0 <= t <= idle_at + 0.1 for t in self.state.interrupts_at)
                if not interrupted:
                    self.state.errors.append(
                        f"worker {self.index}: {kind} cell {msg_id} went idle but its "
                        f"execute_reply never came (no interrupt was sent meanwhile)")
                lost = True
                break
            if self.state.gen != gen or self.state.restarting:
                gen_changed_at = gen_changed_at or now
                if now - gen_changed_at > 5:
                    break
            if kind == "exit" and now - started > 2 and self.state.gen != gen:
                break
            if now > deadline:
                self.state.errors.append(f"worker {self.index}: no reply/idle for {kind} cell "
                                         f"{msg_id} within 90 s (gen {gen}); got {[x['msg_type'] for x in msgs]}")
                break
        gen_done = self.state.gen
        res = Result(self.index, kind, msg_id, gen, gen_done,
                     reply["content"]["status"] if reply else None,
                     reply["content"].get("ename") if reply else None,
                     idle, seconds=round(time.monotonic() - started, 3), reply_lost=lost)
        if reply and idle and gen_done == gen and not self.state.restarting:
            outs = client_outputs(msgs)
            res.digest, res.summary = digest(outs), summary(outs)
            res.digest_rounded = digest(outs, round_floats=True)
        self.state.results.append(res)

    def close(self) -> None:
        try:
            self.kc.stop_channels()
        except Exception:  # noqa: BLE001
            pass


def proxy_pid(km: KernelManager) -> int:
    return km.provisioner.process.pid  # type: ignore[union-attr]


def remember(state: State) -> None:
    known = {(p.pid, p.create_time()) for p in state.seen_procs if not is_gone(p)}
    for p in process_tree(proxy_pid(state.km)):
        try:
            if (p.pid, p.create_time()) not in known:
                state.seen_procs.append(p)
        except psutil.NoSuchProcess:
            pass


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def monitor_health(km: KernelManager) -> dict:
    """The comm's health, through a short-lived fourth client (a client that
    stays connected without reading iopub would be a slow subscriber)."""
    kc = BlockingKernelClient()
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels(hb=False)
    try:
        kc.wait_for_ready(timeout=60)
        return lineage_health(kc)
    finally:
        kc.stop_channels()


def quiesce(state: State, workers: list[Worker], timeout: float = 120) -> dict:
    """Hold the workers, wait for their cells and the recorder to finish."""
    state.hold.set()
    deadline = time.monotonic() + timeout
    while not all(w.idle.is_set() or not w.is_alive() for w in workers):
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not go idle")
        time.sleep(0.05)
    while True:
        health = monitor_health(state.km)
        if health["pending"] == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"records still pending: {health}")
        time.sleep(0.2)
    # The proxy gives freed memory back within a second of going quiet.
    time.sleep(1.5)
    return monitor_health(state.km)


def restart(state: State, why: str) -> float:
    started = time.monotonic()
    with state.lock:
        state.restarting = True
        state.gen += 1
    try:
        remember(state)
        km = state.km
        if km.is_alive():
            km.restart_kernel(now=False)
        else:
            km.restart_kernel(now=True)
        remember(state)
    finally:
        with state.lock:
            state.restarting = False
    took = time.monotonic() - started
    log(f"{why}: kernel restarted in {took:.1f} s (generation {state.gen}, proxy pid {proxy_pid(state.km)})")
    return took


def run(seconds: float, seed: int, workdir: Path) -> dict:
    rng = random.Random(seed)
    failures: list[str] = []
    report: dict = {"seconds": seconds, "seed": seed, "workdir": str(workdir)}

    # Private Jupyter paths and the lineage kernelspec, as tests/conftest.py does.
    env = {
        "JUPYTER_PATH": str(workdir / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(workdir / "etc" / "jupyter"),
        "JUPYTER_DATA_DIR": str(workdir / "data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "IPYTHONDIR": str(workdir / "ipython"),
        "JUPYTER_LINEAGE_DIR": str(workdir / "lineage"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "JPY_SESSION_NAME": str(workdir / "soak.ipynb"),
        "JUPYTER_LINEAGE_LOG": os.environ.get("JUPYTER_LINEAGE_LOG", "info"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    os.environ.update(env)
    for key in ("JUPYTER_RUNTIME_DIR", "JUPYTER_LINEAGE_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    binary = lineage_binary()
    subprocess.run([str(binary), "install", "--wrap", DIRECT, "--prefix", str(workdir)],
                   env=tool_env(), check=True, capture_output=True, timeout=60)
    db = workdir / "lineage" / DB_FILE
    proxy_log = workdir / "proxy.log"

    km = KernelManager(kernel_name=LINEAGE)
    log_stream = open(proxy_log, "w")  # noqa: SIM115 - lives as long as the kernel
    km.start_kernel(cwd=str(workdir), stderr=log_stream)
    state = State(km=km, rng=rng)
    remember(state)
    workers: list[Worker] = []
    interrupts = 0
    restarts = exits = 0
    proxies: list[dict] = []
    t0 = time.monotonic()
    try:
        workers = [Worker(i, state, rng.randrange(2**32)) for i in range(3)]
        workers[0].kc.wait_for_ready(timeout=60)
        remember(state)
        for w in workers:
            w.start()

        n_restarts = max(2, round(12 * seconds / 600))
        n_exits = max(1, round(3 * seconds / 600))
        chaos_end = t0 + 0.5 * seconds
        events = ["restart"] * n_restarts + ["exit"] * n_exits
        rng.shuffle(events)
        times = sorted(t0 + rng.uniform(0.05, 0.95) * (chaos_end - t0) for _ in events)
        schedule = list(zip(times, events))
        proxy_started = {"pid": proxy_pid(km), "rss_start": rss(proxy_pid(km)), "rss_max": 0}
        next_interrupt = t0 + rng.uniform(0.3, 3)

        def sample_proxy():
            try:
                proxy_started["rss_max"] = max(proxy_started["rss_max"], rss(proxy_started["pid"]))
            except psutil.Error:
                pass

        def new_proxy():
            nonlocal proxy_started
            proxies.append(proxy_started)
            proxy_started = {"pid": proxy_pid(km), "rss_start": rss(proxy_pid(km)), "rss_max": 0}

        def interrupt_now():
            nonlocal interrupts, next_interrupt
            if time.monotonic() >= next_interrupt:
                with state.lock:
                    if not state.restarting and km.is_alive():
                        km.interrupt_kernel()
                        state.interrupts_at.append(time.monotonic())
                        interrupts += 1
                next_interrupt = time.monotonic() + rng.uniform(0.3, 3)

        # Phase 1: chaos — cells, interrupts, restarts and exits.
        log(f"chaos phase: {len(schedule)} events ({n_restarts} restarts, {n_exits} exits) "
            f"over {chaos_end - t0:.0f} s")
        while schedule and not state.stop.is_set():
            when, what = schedule[0]
            interrupt_now()
            sample_proxy()
            if time.monotonic() < when:
                time.sleep(0.05)
                continue
            schedule.pop(0)
            if what == "restart":
                restart(state, f"restart {restarts + 1}")
                restarts += 1
            else:
                worker = rng.choice(workers)
                worker.inject.put(("exit", None))
                seen = len(state.results)
                deadline = time.monotonic() + 30
                while km.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
                    # ipykernel aborts requests that arrive while it drops
                    # the queue behind a failed cell (stop_on_error): the
                    # exit cell can come back "aborted" without running.
                    # The proxy recorded it so; send it again.
                    if any(r.kind == "exit" and r.status == "aborted" for r in state.results[seen:]):
                        seen = len(state.results)
                        log("os._exit cell aborted by the kernel (stop_on_error); sending it again")
                        rng.choice(workers).inject.put(("exit", None))
                for w in workers:
                    # An exit cell not yet taken must not kill the next kernel.
                    keep = []
                    while not w.inject.empty():
                        item = w.inject.get_nowait()
                        if item[0] != "exit":
                            keep.append(item)
                    for item in keep:
                        w.inject.put(item)
                if km.is_alive():
                    failures.append("a cell ran os._exit(7) but the proxy did not exit within 30 s")
                code = km.provisioner.process.poll() if km.provisioner else None  # type: ignore[union-attr]
                log(f"os._exit: the proxy exited with {code}")
                if code != 7:
                    failures.append(f"after os._exit(7) in the kernel the proxy exited with {code}")
                restart(state, f"exit {exits + 1}")
                exits += 1
            sample_proxy()
            new_proxy()
        while time.monotonic() < chaos_end and not state.stop.is_set():
            interrupt_now()
            sample_proxy()
            time.sleep(0.05)

        # Phase 2: warm-up of the last proxy — one of each payload kind from
        # every client (the largest payload included), then measure.
        log("warm-up phase")
        for w in workers:
            for kind in KINDS:
                w.inject.put((kind, 5 * MB if kind == "large" else None))
        # …then random cells for 15 % of the run (at least 15 s), so that
        # caches that fill with the database are warm too.
        warm_end = time.monotonic() + max(15.0, 0.15 * seconds)
        deadline = time.monotonic() + 120
        while ((time.monotonic() < warm_end or any(not w.inject.empty() for w in workers))
               and time.monotonic() < deadline and not state.stop.is_set()):
            interrupt_now()
            time.sleep(0.05)
        health_warm = quiesce(state, workers)
        pid = proxy_pid(km)
        rss_warm = rss(pid)
        log(f"warm-up done: proxy {pid} RSS {rss_warm / 2**20:.1f} MiB, health {health_warm}")
        state.hold.clear()

        # Phase 3: steady — cells and interrupts until the time is up.
        steady_from = time.monotonic()
        checkpoints = [(0.0, rss_warm)]  # quiescent RSS through the steady phase
        next_checkpoint = steady_from + 120
        while time.monotonic() < t0 + seconds and not state.stop.is_set():
            interrupt_now()
            sample_proxy()
            time.sleep(0.05)
            if time.monotonic() > next_checkpoint and t0 + seconds - time.monotonic() > 60:
                quiesce(state, workers)
                checkpoints.append((round(time.monotonic() - steady_from), rss(pid)))
                log(f"checkpoint: proxy RSS {checkpoints[-1][1] / 2**20:.1f} MiB")
                state.hold.clear()
                next_checkpoint = time.monotonic() + 120
        health_end = quiesce(state, workers)
        rss_end = rss(pid)
        sample_proxy()
        proxies.append(proxy_started)
        log(f"end: proxy {pid} RSS {rss_end / 2**20:.1f} MiB, health {health_end}")
        if proxy_pid(km) != pid:
            failures.append(f"the proxy changed from {pid} to {proxy_pid(km)} after warm-up")
        growth = (rss_end - rss_warm) / rss_warm
        checkpoints.append((round(time.monotonic() - steady_from), rss_end))
        report.update(rss_warm=rss_warm, rss_end=rss_end, rss_growth=round(growth, 4),
                      rss_checkpoints_mib=[(t, round(r / 2**20, 1)) for t, r in checkpoints],
                      steady_seconds=round(time.monotonic() - steady_from, 1),
                      health_end=health_end)
        if growth > RSS_TOLERANCE:
            failures.append(f"proxy RSS grew {growth:.1%} after warm-up "
                            f"({rss_warm / 2**20:.1f} -> {rss_end / 2**20:.1f} MiB)")
        for key in ("dropped_records", "tap_dropped"):
            if health_end.get(key):
                failures.append(f"health reports {key} = {health_end[key]}: {health_end}")
        if not health_end.get("recording") or health_end.get("last_error"):
            failures.append(f"recording unhealthy at the end: {health_end}")
    finally:
        state.stop.set()
        for w in workers:
            w.join(timeout=30)
        remember_safe(state)
        for w in workers:
            w.close()
        try:
            if km.has_kernel:
                km.shutdown_kernel(now=False)
        except Exception as e:  # noqa: BLE001
            failures.append(f"shutdown failed: {e!r}")
        try:
            km.cleanup_resources()
        except Exception:  # noqa: BLE001
            pass
        log_stream.close()
        left = [p for p in state.seen_procs if not is_gone(p)]
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for p in left if not is_gone(p)]
        if left:
            failures.append(f"processes left behind: {[(p.pid, safe_cmdline(p)) for p in left]}")
            for p in left:
                try:
                    p.kill()
                except psutil.Error:
                    pass
        report["processes_seen"] = len(state.seen_procs)
        report["processes_left"] = len(left)
    failures.extend(state.errors)

    # Verification against the database.
    results = state.results
    replied = [r for r in results if r.status is not None]
    compared = mismatched = float_drift = 0
    rows = query(db, "SELECT msg_id, count(*) AS n FROM executions GROUP BY msg_id")
    counts = {r["msg_id"]: r["n"] for r in rows}
    dupes = {k: v for k, v in counts.items() if v > 1}
    if dupes:
        failures.append(f"{len(dupes)} msg_ids stored more than once: {list(dupes.items())[:10]}")
    missing = [r for r in replied if counts.get(r.msg_id, 0) == 0]
    if missing:
        failures.append(f"{len(missing)} of {len(replied)} replied executions are not in the "
                        f"database: {[(r.msg_id, r.kind, r.status, r.gen_sent) for r in missing[:10]]}")
    expected_status = {"ok": {"ok"}, "aborted": {"aborted"}}
    for r in replied:
        if counts.get(r.msg_id) != 1:
            continue
        row = query(db, "SELECT id, status FROM executions WHERE msg_id = ?", (r.msg_id,))[0]
        want = expected_status.get(r.status) or ({"interrupted"} if r.ename == "KeyboardInterrupt"
                                                 else {"error"})
        if row["status"] not in want:
            failures.append(f"{r.msg_id} ({r.kind}): reply {r.status}/{r.ename}, stored {row['status']}")
        if r.digest is None:
            continue
        compared += 1
        stored = stored_outputs(db, row["id"])
        if digest(stored) != r.digest:
            mismatched += 1
            if digest(stored, round_floats=True) == r.digest_rounded:
                float_drift += 1  # reported once, below
                continue
            if mismatched - float_drift <= 10:
                failures.append(f"{r.msg_id} ({r.kind}, {r.status}): stored outputs differ from the "
                                f"client's: client {r.summary}, stored {summary(stored)}")
    if float_drift:
        failures.append(f"{float_drift} executions have JSON floats stored a few ULPs off the "
                        f"client's (otherwise equal outputs); tests/test_soak.py::"
                        f"test_json_floats_are_stored_exactly shows one")
    if mismatched - float_drift > 10:
        failures.append(f"... {mismatched - float_drift} executions in all with outputs that differ")
    text = proxy_log.read_text(errors="replace")
    # The proxy's own lines (ipykernel's stderr goes to the same file).
    own = [ln for ln in text.splitlines() if not ln.startswith("[IPKernelApp]")]
    for bad in ("panicked", " ERROR "):
        lines = [ln for ln in own if bad in ln][:5]
        if lines:
            failures.append(f"{bad.strip()!r} in the proxy log: {lines}")
    report["proxy_warnings"] = sorted({ln.split("Z", 1)[-1].strip()[:160] for ln in own
                                       if " WARN " in ln})[:20]
    by_kind: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for r in results:
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
        by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
    report.update(
        cells_sent=len(results), cells_replied=len(replied),
        replies_lost_to_interrupts=sum(r.reply_lost for r in results), outputs_compared=compared,
        outputs_mismatched=mismatched, outputs_float_drift_only=float_drift, by_kind=by_kind, by_reply_status=by_status,
        interrupts=interrupts, restarts=restarts, exits=exits, executions_in_db=sum(counts.values()),
        db_bytes=db.stat().st_size + (Path(f"{db}-wal").stat().st_size if Path(f"{db}-wal").exists() else 0),
        proxies=[{"pid": p["pid"], "rss_start_mib": round(p["rss_start"] / 2**20, 1),
                  "rss_max_mib": round(p["rss_max"] / 2**20, 1)} for p in proxies],
        wall_seconds=round(time.monotonic() - t0, 1), failures=failures,
    )
    return report


def remember_safe(state: State) -> None:
    try:
        remember(state)
    except Exception:  # noqa: BLE001 - the kernel may be gone
        pass


def safe_cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:120]
    except psutil.Error:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the Jupyter paths, the database and the proxy log go "
                         "(default: a temporary folder, removed unless the run fails)")
    ap.add_argument("--json", type=Path, default=None, help="write the report here")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"seed {seed}, {args.seconds:.0f} s, workdir {workdir}")
    try:
        report = run(args.seconds, seed, workdir)
    except BaseException:
        log(f"the soak run itself failed (workdir kept: {workdir}):\n{traceback.format_exc()}")
        raise
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text, flush=True)
    if report["failures"]:
        log(f"FAILED ({len(report['failures'])} problems); workdir kept: {workdir}")
        for f in report["failures"]:
            print(" -", f)
        return 1
    log(f"passed: {report['cells_replied']} executions checked, {report['restarts']} restarts, "
        f"{report['exits']} exits, {report['interrupts']} interrupts, proxy RSS "
        f"{report['rss_warm'] / 2**20:.1f} -> {report['rss_end'] / 2**20:.1f} MiB")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
