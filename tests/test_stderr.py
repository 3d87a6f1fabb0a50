"""What a kernel writes to its stderr. Tools treat a kernel's stderr as a
sign of trouble (nbclient's parallel tests assert it is empty, papermill
copies it into its log), so a healthy lineage kernel must write there no more
than the plain kernel does: nothing."""

from __future__ import annotations

from pathlib import Path

from jupyter_client.manager import KernelManager
from kernels import (
    TIMEOUT,
    collect_iopub,
    is_gone,
    kill_all,
    process_tree,
    run_cell,
    shell_reply,
)


def test_a_healthy_session_writes_nothing_to_stderr(kernel_name, tmp_path, monkeypatch):
    """At the default log level, a kernel that is started, runs a cell with
    output, a cell that fails and a cell that reads input, and is shut down
    writes nothing to its stderr (direct and proxied). IPC, because ipykernel
    itself warns on stderr about unencrypted TCP."""
    monkeypatch.delenv("JUPYTER_LINEAGE_LOG", raising=False)
    err_path = tmp_path / "kernel-stderr.txt"
    # An absolute socket path: the kernel runs in tmp_path, the client here.
    km = KernelManager(kernel_name=kernel_name, transport="ipc", ip=str(tmp_path / "ipc"))
    procs = []
    with err_path.open("wb") as err:
        km.start_kernel(cwd=str(tmp_path), stderr=err)
    try:
        procs = process_tree(km.provisioner.process.pid)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        procs = process_tree(km.provisioner.process.pid)

        reply, msgs = run_cell(kc, "print('out')")
        assert reply["content"]["status"] == "ok"
        assert any(m["msg_type"] == "stream" for m in msgs)
        reply, _ = run_cell(kc, "1 / 0")
        assert reply["content"]["ename"] == "ZeroDivisionError"
        msg_id = kc.execute("answer = input('? ')", allow_stdin=True)
        assert kc.get_stdin_msg(timeout=TIMEOUT)["msg_type"] == "input_request"
        kc.input("42")
        assert shell_reply(kc, msg_id)["content"]["status"] == "ok"
        collect_iopub(kc, msg_id)

        kc.stop_channels()
        km.shutdown_kernel(now=False)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        km.cleanup_resources()
        kill_all([p for p in procs if not is_gone(p)])
    assert Path(err_path).read_text(errors="replace") == ""
