"""Helpers for tests/test_recording.py: reading the project's lineage
database the way a user would (Python's sqlite3, read-only), starting a
kernel with its stderr captured, and asking the proxy's comm for health.

The schema is kernel/src/store/schema.rs; nothing here writes to the store.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Callable

from jupyter_client.manager import KernelManager

from kernels import TIMEOUT, KernelHandle

DB_FILE = "lineage.sqlite"


# --------------------------------------------------------------------------
# Reading the database
# --------------------------------------------------------------------------


def connect_ro(db: Path) -> sqlite3.Connection:
    """A read-only connection (never creates the file)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def query(db: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = connect_ro(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def count_executions(db: Path, where: str = "1", params: tuple = ()) -> int:
    """How many executions are stored (0 while the database does not exist)."""
    if not db.exists():
        return 0
    try:
        return query(db, f"SELECT count(*) FROM executions WHERE {where}", params)[0][0]
    except sqlite3.OperationalError:  # not migrated yet, or momentarily busy
        return 0


def wait_until(what: str, check: Callable[[], bool], timeout: float = TIMEOUT,
               period: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(period)


def wait_executions(db: Path, n: int, timeout: float = TIMEOUT, where: str = "1",
                    params: tuple = ()) -> list[sqlite3.Row]:
    """Wait until at least n executions (matching `where`) are stored;
    return them in id order."""
    wait_until(f"{n} executions in {db}",
               lambda: count_executions(db, where, params) >= n, timeout)
    return query(db, f"SELECT * FROM executions WHERE {where} ORDER BY id", params)


def blob_value(data: bytes, is_json: int):
    text = bytes(data).decode("utf-8")
    return json.loads(text) if is_json else text


def stored_outputs(db: Path, execution_id: int) -> list[dict]:
    """The stored outputs of one execution, as nbformat output dicts."""
    conn = connect_ro(db)
    try:
        outs = conn.execute(
            "SELECT * FROM outputs WHERE execution_id = ? ORDER BY position", (execution_id,)
        ).fetchall()
        result = []
        for o in outs:
            rows = conn.execute(
                "SELECT d.mime, d.is_json, d.truncated, b.data FROM output_data d "
                "JOIN blobs b ON b.sha256 = d.sha256 WHERE d.output_id = ?",
                (o["id"],),
            ).fetchall()
            data = {r["mime"]: blob_value(r["data"], r["is_json"]) for r in rows}
            assert not any(r["truncated"] for r in rows), f"truncated output {dict(o)}"
            kind = o["output_type"]
            if kind == "stream":
                assert set(data) == {"text/plain"}, data
                result.append({"output_type": "stream", "name": o["name"],
                               "text": data["text/plain"]})
            elif kind == "error":
                err = json.loads(o["error"])
                result.append({"output_type": "error", **err})
            else:
                out = {"output_type": kind, "data": data,
                       "metadata": json.loads(o["metadata"]) if o["metadata"] else {}}
                if kind == "execute_result":
                    out["execution_count"] = o["execution_count"]
                result.append(out)
        return result
    finally:
        conn.close()


def checkpoint(db: Path, timeout: float = 15) -> None:
    """Fold the WAL into the database file and truncate it. A normal SQLite
    operation any reader may do; it never breaks the recorder's connection
    (a busy checkpoint is simply retried)."""
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(str(db), timeout=5, isolation_level=None)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"could not checkpoint {db}")
        time.sleep(0.1)


def db_bytes(db: Path) -> int:
    """Size on disk of the database with its WAL."""
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# --------------------------------------------------------------------------
# nbformat outputs as the notebook shows them
# --------------------------------------------------------------------------


def plain(obj):
    """NotebookNode (and nested) to plain dicts/lists."""
    return json.loads(json.dumps(obj))


def coalesce_streams(outputs: list[dict]) -> list[dict]:
    """Consecutive stream outputs of one name become one, as JupyterLab's
    output area (and the recorder) show them."""
    merged: list[dict] = []
    for out in plain(outputs):
        if (out["output_type"] == "stream" and merged
                and merged[-1]["output_type"] == "stream"
                and merged[-1]["name"] == out["name"]):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


# --------------------------------------------------------------------------
# Kernels with captured stderr, and the lineage comm
# --------------------------------------------------------------------------


def client_outputs(msgs: list[dict]) -> list[dict]:
    """The nbformat outputs a notebook shows for these iopub messages
    (`clear_output` applied, consecutive streams coalesced)."""
    outs: list[dict] = []
    for m in msgs:
        kind, c = m["msg_type"], m["content"]
        if kind == "stream":
            outs.append({"output_type": "stream", "name": c["name"], "text": c["text"]})
        elif kind in ("display_data", "execute_result"):
            out = {"output_type": kind, "data": c["data"], "metadata": c.get("metadata", {})}
            if kind == "execute_result":
                out["execution_count"] = c["execution_count"]
            outs.append(out)
        elif kind == "error":
            outs.append({"output_type": "error", "ename": c["ename"], "evalue": c["evalue"],
                         "traceback": c["traceback"]})
        elif kind == "clear_output":
            outs.clear()
    return coalesce_streams(outs)


def start_logged(kernel_name: str, cwd: Path, log: Path, env: dict | None = None) -> KernelHandle:
    """Like kernels.start_kernel, with the launched process's stderr (the
    proxy's log) written to `log`. jupyter_client hands `stderr` to Popen,
    and keeps it for restarts."""
    km = KernelManager(kernel_name=kernel_name)
    stream = open(log, "w")  # noqa: SIM115 - lives as long as the kernel
    kw = {"cwd": str(cwd), "stderr": stream}
    if env is not None:
        kw["env"] = env
    km.start_kernel(**kw)
    handle = KernelHandle(km=km, kc=km.client(), kernel_name=kernel_name)
    handle.remember_processes()
    handle.kc.start_channels()
    try:
        handle.kc.wait_for_ready(timeout=TIMEOUT)
    except BaseException:
        handle.close()
        raise
    handle.remember_processes()
    return handle


def iopub_until_idle(kc, msg_id: str, timeout: float = TIMEOUT) -> list[dict]:
    msgs: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


def lineage_health(kc) -> dict:
    """The proxy's `health` answer over the jupyter.lineage comm
    (docs/protocol.md)."""
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": "jupyter.lineage",
                                       "data": {}})
    kc.shell_channel.send(msg)
    iopub_until_idle(kc, msg["header"]["msg_id"])
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
        "request": "health", "id": 1, "protocol_version": 1}})
    kc.shell_channel.send(msg)
    msgs = iopub_until_idle(kc, msg["header"]["msg_id"])
    replies = [m["content"]["data"] for m in msgs
               if m["msg_type"] == "comm_msg" and m["content"]["data"].get("reply") == "health"]
    assert len(replies) == 1, msgs
    assert replies[0]["ok"], replies[0]
    return replies[0]["result"]
