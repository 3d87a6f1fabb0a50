"""Helpers shared by the end-to-end tests: starting kernels through a
kernelspec, tracking every process they spawn by pid, and reading replies."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parent.parent
DIRECT = "python3"
LINEAGE = "python3-lineage"
# Plain python3 started through lineage-provisioner (tests/provisioning.py):
# not a kernelspec name, start_kernel knows it.
PROVISIONED = "python3+lineage-provisioner"
VENV_BIN = Path(sys.executable).parent

# How long to wait for one reply, in seconds.
TIMEOUT = 30


def lineage_binary() -> Path:
    """The binary under test; JUPYTER_LINEAGE_BIN overrides the default."""
    override = os.environ.get("JUPYTER_LINEAGE_BIN")
    return Path(override) if override else REPO / "target" / "release" / "jupyter-lineage"


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for running the binary: the venv first on PATH, so that
    `jupyter --paths` and the `python` a kernelspec names resolve to the venv."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# Starting kernels and cleaning up every process by pid
# --------------------------------------------------------------------------


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (empty when it is gone)."""
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def is_gone(proc: psutil.Process) -> bool:
    """Gone or a zombie: a zombie whose parent died waits on a reaper that is
    not ours (PID 1 in a container need not reap)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process is gone; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not is_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not is_gone(p)]
    return alive


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            if proc.is_running():  # also guards against pid reuse (create_time)
                proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


@dataclass
class KernelHandle:
    """A started kernel: the manager, a ready client, and every pid seen."""

    km: KernelManager
    kc: BlockingKernelClient
    kernel_name: str
    procs: list[psutil.Process] = field(default_factory=list)
    extra_clients: list[BlockingKernelClient] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The pid jupyter_client launched: the proxy for python3-lineage,
        ipykernel itself for python3."""
        return self.km.provisioner.process.pid  # type: ignore[union-attr]

    @property
    def proxied(self) -> bool:
        return self.kernel_name != DIRECT

    def remember_processes(self) -> list[psutil.Process]:
        """Record the launched process and its descendants for cleanup."""
        tree = process_tree(self.pid)
        known = {(p.pid, p.create_time()) for p in self.procs if not is_gone(p)}
        for proc in tree:
            try:
                if (proc.pid, proc.create_time()) not in known:
                    self.procs.append(proc)
            except psutil.NoSuchProcess:
                pass
        return tree

    def real_kernel(self) -> psutil.Process:
        """The ipykernel process: the proxy's child, or the launched process."""
        tree = process_tree(self.pid)
        assert tree, f"kernel process {self.pid} is gone"
        if not self.proxied:
            return tree[0]
        kids = [p for p in tree[1:] if "ipykernel" in " ".join(p.cmdline())]
        assert kids, f"proxy {self.pid} has no ipykernel child: {[p.cmdline() for p in tree]}"
        return kids[0]

    def client(self) -> BlockingKernelClient:
        """Another client on the same kernel, started and ready. It gets its
        own session (km.client() would share the manager's, and with it the
        zmq identity, so a ROUTER could not tell the two apart)."""
        kc = BlockingKernelClient()
        kc.load_connection_info(self.km.get_connection_info())
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        self.extra_clients.append(kc)
        return kc

    def close(self) -> None:
        for kc in [self.kc, *self.extra_clients]:
            try:
                kc.stop_channels()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        try:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=False)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.km.cleanup_resources()
        except Exception:  # noqa: BLE001
            pass
        kill_all([p for p in self.procs if not is_gone(p)])


def start_kernel(kernel_name: str, cwd: Path | None = None, **kwargs) -> KernelHandle:
    """Start a kernel through its kernelspec and wait until it answers."""
    if kernel_name == PROVISIONED:
        from provisioning import provisioner_default

        with provisioner_default():
            km = KernelManager(kernel_name=DIRECT, **kwargs)
            km.start_kernel(cwd=str(cwd) if cwd else None)
    else:
        km = KernelManager(kernel_name=kernel_name, **kwargs)
        km.start_kernel(cwd=str(cwd) if cwd else None)
    handle = KernelHandle(km=km, kc=km.client(), kernel_name=kernel_name)
    handle.remember_processes()
    handle.kc.start_channels()
    try:
        handle.kc.wait_for_ready(timeout=TIMEOUT)
    except BaseException:  # pytest-timeout's Failed is a BaseException
        handle.close()
        raise
    # ipykernel (and the proxy's child) exist now; record them for cleanup.
    handle.remember_processes()
    return handle


# --------------------------------------------------------------------------
# Message helpers
# --------------------------------------------------------------------------


def collect_iopub(kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT) -> list[dict]:
    """iopub messages whose parent is msg_id, up to and including status idle."""
    msgs: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no idle for {msg_id}; got {[m['msg_type'] for m in msgs]}")
        msg = kc.get_iopub_msg(timeout=remaining)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


def shell_reply(kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT) -> dict:
    """The shell reply to msg_id, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def control_request(kc: BlockingKernelClient, msg_type: str, content: dict | None = None,
                    timeout: float = TIMEOUT) -> dict:
    """Send a request on control and return its reply."""
    msg = kc.session.msg(msg_type, content or {})
    kc.control_channel.send(msg)
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.control_channel.get_msg(timeout=max(0.01, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply


def stdout_of(msgs: list[dict]) -> str:
    return "".join(
        m["content"]["text"] for m in msgs
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def run_cell(kc: BlockingKernelClient, code: str, timeout: float = TIMEOUT) -> tuple[dict, list[dict]]:
    """Execute code; return (execute_reply, iopub messages for it)."""
    msg_id = kc.execute(code)
    reply = shell_reply(kc, msg_id, timeout)
    return reply, collect_iopub(kc, msg_id, timeout)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
