"""A graceful shutdown: the client gets the kernel's last words, and the
proxy leaves only once the record of the session is complete."""

from __future__ import annotations

import time

from kernels import TIMEOUT, is_gone, run_cell, start_kernel, wait_gone
from recording_db import DB_FILE, query


def test_shutdown_reply_and_last_iopub_reach_the_client_and_the_record_is_complete(
    kernel_name, tmp_path, lineage_dir
):
    """A shutdown_request sent by hand is answered (shutdown_reply on control,
    then the kernel's final status on iopub), the launched process exits by
    itself, and by the time it has exited the cell that ran and the session's
    end (exit code 0) are in the database, with no wait after the exit."""
    handle = start_kernel(kernel_name, cwd=tmp_path)
    try:
        kc = handle.kc
        reply, _ = run_cell(kc, "print('last cell')")
        assert reply["content"]["status"] == "ok"
        tree = handle.remember_processes()

        request = kc.session.msg("shutdown_request", {"restart": False})
        kc.control_channel.send(request)
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = kc.control_channel.get_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                break
        assert msg["msg_type"] == "shutdown_reply"
        assert msg["content"]["status"] == "ok" and msg["content"]["restart"] is False
        states = []
        while "idle" not in states:
            m = kc.get_iopub_msg(timeout=TIMEOUT)
            if m["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                states.append(m["content"].get("execution_state"))
        assert states[-1] == "idle"

        assert handle.km.provisioner.process.wait(timeout=TIMEOUT) == 0
        assert not wait_gone(tree, timeout=5)
        if handle.proxied:
            db = lineage_dir / DB_FILE
            cells = query(db, "SELECT code FROM executions")
            assert [c["code"] for c in cells] == ["print('last cell')"]
            sessions = query(db, "SELECT exit_code, ended_ms FROM sessions")
            assert len(sessions) == 1
            assert sessions[0]["exit_code"] == 0 and sessions[0]["ended_ms"] is not None
    finally:
        handle.close()
        assert all(is_gone(p) for p in handle.procs)
