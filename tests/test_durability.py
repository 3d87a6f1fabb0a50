"""Runs that completed are in the database before a hard kill of the proxy.

Scripted clients often end with `KernelManager.shutdown_kernel(now=True)`
(jupyter_client's `run_kernel` does), which SIGKILLs the proxy with no grace.
A cell whose `idle` the client has seen 10 ms before that kill must already
be stored.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kernels import LINEAGE, TIMEOUT, start_kernel
import sqlite3

from recording_db import DB_FILE


def run_to_idle(kc, code: str) -> None:
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            return


def stored_count(db: Path) -> int:
    """Executions in the database, read read-write as a next kernel would
    (a read-only reader cannot recover the WAL a killed writer left)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return conn.execute("SELECT count(*) FROM executions").fetchone()[0]
        except sqlite3.OperationalError:
            if time.monotonic() > deadline or not db.exists():
                return 0
            time.sleep(0.05)


def try_once(cwd: Path, db: Path, delay: float) -> int:
    """Two cells, a hard kill `delay` s after the second one's idle; how many
    of the two are stored."""
    before = stored_count(db)
    handle = start_kernel(LINEAGE, cwd=cwd)
    try:
        run_to_idle(handle.kc, "a = 1")
        run_to_idle(handle.kc, "b = a + 1")
        time.sleep(delay)
        handle.km.shutdown_kernel(now=True)
    finally:
        handle.close()
    return stored_count(db) - before


@pytest.mark.timeout(300)
def test_two_cells_survive_a_hard_kill_10ms_after_idle(lineage_prefix, lineage_dir, tmp_path):
    """Both cells are in the database, every time over 20 tries, when the
    proxy is SIGKILLed 10 ms after the second cell's idle."""
    db = lineage_dir / DB_FILE
    stored = [try_once(tmp_path, db, 0.010) for _ in range(20)]
    assert stored == [2] * 20
