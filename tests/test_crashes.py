"""Every crash of the real kernel is attributed to the request it was running.

A real ipykernel behind the built proxy is made to die three ways: exiting in
the first statement of a cell, a segfault in the first statement (both before
the kernel's `busy` can leave its socket), and SIGKILL from outside while a
cell sleeps (the OOM killer's signal). The cell that was running is stored
as `died` with the exit code or signal; a request queued behind it is stored
as `aborted`.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from kernels import LINEAGE, TIMEOUT, start_kernel
from recording_db import DB_FILE, wait_executions


@pytest.fixture
def kernel(lineage_prefix: Path, tmp_path: Path):
    handle = start_kernel(LINEAGE, cwd=tmp_path)
    yield handle
    handle.close()


def crash_with_one_queued(kernel, code: str, kill_after_start: bool = False) -> None:
    """Sends `code` and a second request behind it, lets the kernel die of
    `code` (or SIGKILLs it once `code` has started), and waits for the proxy
    to exit with it."""
    kc = kernel.kc
    proxy = kernel.km.provisioner.process
    real = kernel.real_kernel()
    first = kc.execute(code)
    kc.execute("print('queued')")
    if kill_after_start:
        while True:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == first and msg["msg_type"] == "stream":
                break
        real.send_signal(signal.SIGKILL)
    proxy.wait(timeout=TIMEOUT)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "code, exit_code, exit_signal",
    [
        ("import os; os._exit(3)", 3, None),
        ("import ctypes; ctypes.string_at(0)", None, signal.SIGSEGV),
    ],
    ids=["os_exit_3", "segfault"],
)
def test_first_statement_crash_is_died_and_the_queued_request_aborted(
    kernel, lineage_dir, code, exit_code, exit_signal
):
    """A cell whose first statement kills the kernel is stored as died with
    the exit code or signal; the request queued behind it as aborted."""
    crash_with_one_queued(kernel, code)
    rows = wait_executions(lineage_dir / DB_FILE, 2)
    died, queued = rows[0], rows[1]
    assert died["code"] == code
    assert died["status"] == "died", dict(died)
    assert (died["exit_code"], died["exit_signal"]) == (exit_code, exit_signal), dict(died)
    assert queued["status"] == "aborted", dict(queued)
    assert queued["exit_code"] is None and queued["exit_signal"] is None, dict(queued)


@pytest.mark.timeout(60)
def test_sigkill_mid_cell_is_died_with_signal_9_and_the_queued_request_aborted(
    kernel, lineage_dir
):
    """SIGKILL of the real kernel while a cell sleeps stores that cell as died
    with signal 9, and the request queued behind it as aborted."""
    code = "import time\nprint('sleeping', flush=True)\ntime.sleep(30)"
    crash_with_one_queued(kernel, code, kill_after_start=True)
    rows = wait_executions(lineage_dir / DB_FILE, 2)
    died, queued = rows[0], rows[1]
    assert died["status"] == "died", dict(died)
    assert (died["exit_code"], died["exit_signal"]) == (None, signal.SIGKILL), dict(died)
    assert queued["status"] == "aborted", dict(queued)
