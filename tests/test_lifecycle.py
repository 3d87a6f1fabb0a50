"""Issue 2, points 4 and 5: interrupt, restart, shutdown and the death of
either process, checked by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from kernels import (
    DIRECT,
    LINEAGE,
    PROVISIONED,
    TIMEOUT,
    collect_iopub,
    is_gone,
    kill_all,
    run_cell,
    shell_reply,
    start_kernel,
    wait_gone,
)


@pytest.fixture(params=[DIRECT, LINEAGE, PROVISIONED], ids=["direct", "lineage", "provisioner"])
def kernel_name(request: pytest.FixtureRequest, jupyter_home) -> str:
    """Every lifecycle test also runs with python3 started through
    lineage-provisioner: it must behave as the lineage kernelspec does."""
    if request.param == LINEAGE:
        request.getfixturevalue("lineage_prefix")
    if request.param == PROVISIONED:
        request.getfixturevalue("lineage_bin")
    return request.param


PROXIED = pytest.mark.parametrize("proxied_name", [LINEAGE, PROVISIONED], ids=["lineage", "provisioner"])


def wait_busy(kc, msg_id: str) -> None:
    """Wait until the kernel has started executing msg_id."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            return
    raise TimeoutError("execution never started")


@pytest.mark.parametrize("interrupt_mode", ["signal", "message"])
def test_interrupt_keeps_state_and_restart_clears_it(kernel_name, tmp_path, interrupt_mode):
    """`signal` mode: jupyter_client sends SIGINT to the launched process
    group (the proxy's); `message` mode: interrupt_request on control."""
    handle = start_kernel(kernel_name, cwd=tmp_path)
    try:
        km, kc = handle.km, handle.kc
        km.kernel_spec.interrupt_mode = interrupt_mode  # what interrupt_kernel() reads
        reply, _ = run_cell(kc, "x = 42\nimport time")
        assert reply["content"]["status"] == "ok"

        msg_id = kc.execute("time.sleep(60)")
        wait_busy(kc, msg_id)
        time.sleep(0.3)  # let the sleep begin
        started = time.monotonic()
        km.interrupt_kernel()
        reply = shell_reply(kc, msg_id, timeout=10)
        elapsed = time.monotonic() - started
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert elapsed < 2.0, f"interrupt took {elapsed:.2f} s"
        collect_iopub(kc, msg_id)

        reply, msgs = run_cell(kc, "print(x)")
        assert reply["content"]["status"] == "ok"
        assert "42" in "".join(m["content"].get("text", "") for m in msgs)

        old_pid = handle.pid
        km.restart_kernel(now=False)
        handle.remember_processes()
        assert handle.pid != old_pid
        kc.wait_for_ready(timeout=TIMEOUT)
        handle.remember_processes()
        reply, _ = run_cell(kc, "x")
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "NameError"
    finally:
        handle.close()


def test_shutdown_is_clean(kernel):
    """shutdown_request: both processes exit by themselves (exit status 0, no
    SIGTERM/SIGKILL from jupyter_client) and nothing is left behind."""
    popen = kernel.km.provisioner.process
    tree = kernel.remember_processes()
    assert len(tree) >= (2 if kernel.proxied else 1)
    started = time.monotonic()
    kernel.kc.stop_channels()
    kernel.km.shutdown_kernel(now=False)
    elapsed = time.monotonic() - started
    assert popen.wait(timeout=5) == 0, f"exit status {popen.returncode}"
    assert not wait_gone(tree, timeout=5)
    # jupyter_client waits up to shutdown_wait_time (5 s) before it escalates.
    assert elapsed < 4.5, f"shutdown took {elapsed:.1f} s: the kernel did not exit on request"


@PROXIED
def test_sigkill_of_proxy_leaves_no_kernel(lineage_prefix, tmp_path, proxied_name):
    """The proxy dies hard; the real kernel must not outlive it (orphans keep
    GPU memory and ports). Checked by the kernel's pid."""
    handle = start_kernel(proxied_name, cwd=tmp_path)
    try:
        real = handle.real_kernel()
        assert real.pid != handle.pid
        os.kill(handle.pid, signal.SIGKILL)
        handle.km.provisioner.process.wait(timeout=5)
        alive = wait_gone([real], timeout=5)
        assert not alive, f"real kernel {real.pid} outlived the proxy: {real.status()}"
    finally:
        handle.close()


def test_real_kernel_exit_ends_proxy(kernel):
    """`os._exit(3)` in a cell: the kernel dies, and so does what jupyter_client
    launched, so its restarter notices."""
    tree = kernel.remember_processes()
    kernel.kc.execute("import os; os._exit(3)")
    deadline = time.monotonic() + 10
    while kernel.km.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not kernel.km.is_alive(), "launched process still alive 10 s after the kernel exited"
    assert not wait_gone(tree, timeout=5)


@PROXIED
def test_sigterm_of_proxy_stops_kernel(lineage_prefix, tmp_path, proxied_name):
    """SIGTERM (what jupyter_client sends when a shutdown request is ignored)
    ends both processes."""
    handle = start_kernel(proxied_name, cwd=tmp_path)
    try:
        tree = handle.remember_processes()
        os.kill(handle.pid, signal.SIGTERM)
        handle.km.provisioner.process.wait(timeout=10)
        assert not wait_gone(tree, timeout=5), [p.pid for p in tree if p.is_running()]
    finally:
        handle.close()


def test_environment_and_cwd_pass_through(kernel, tmp_path):
    """The real kernel runs where the client asked, with its environment, and
    (proxied) JPY_PARENT_PID names the proxy."""
    reply, msgs = run_cell(kernel.kc, (
        "import os\n"
        "print(os.getcwd())\n"
        "print(os.environ.get('JUPYTER_LINEAGE_DIR'))\n"
        "print(os.environ.get('JPY_PARENT_PID'))"
    ))
    assert reply["content"]["status"] == "ok"
    cwd, lineage_dir, parent = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream").split("\n")[:3]
    assert os.path.samefile(cwd, tmp_path)
    assert lineage_dir == os.environ["JUPYTER_LINEAGE_DIR"]
    if kernel.proxied:
        assert parent == str(kernel.pid)
        assert psutil.Process(kernel.real_kernel().pid).ppid() == kernel.pid


SERVER = """
import json, sys, time
import psutil
from jupyter_client.manager import KernelManager
km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
proc = psutil.Process(km.provisioner.process.pid)
print(json.dumps([p.pid for p in [proc, *proc.children(recursive=True)]]), flush=True)
time.sleep(600)
"""


def test_kernel_exits_when_its_server_dies(kernel_name, tmp_path):
    """A Jupyter server that crashes (SIGKILL) must not leave kernels behind:
    ipykernel watches JPY_PARENT_PID and exits; through the proxy, the proxy
    and the real kernel must go too."""
    env = None
    if kernel_name == PROVISIONED:
        from provisioning import subprocess_env

        env = subprocess_env()
    server = subprocess.Popen([sys.executable, "-c", SERVER, DIRECT if env else kernel_name], cwd=tmp_path,
                              stdout=subprocess.PIPE, text=True, env=env)
    procs: list[psutil.Process] = []
    try:
        line = server.stdout.readline()
        assert line, "the fake server did not start its kernel"
        procs = [psutil.Process(pid) for pid in json.loads(line)]
        assert len(procs) >= (1 if kernel_name == DIRECT else 2)
        server.kill()
        server.wait(timeout=5)
        alive = wait_gone(procs, timeout=10)
        assert not alive, f"still running 10 s after their server died: {[p.cmdline()[:3] for p in alive]}"
    finally:
        server.kill()
        server.wait(timeout=5)
        kill_all([p for p in procs if not is_gone(p)])
