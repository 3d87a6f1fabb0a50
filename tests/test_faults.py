"""Fault injection (issue 7, "Faults"): the lineage database deleted,
replaced by a directory, on a full filesystem or made read-only while cells
run; the real kernel SIGSTOPped; an iopub subscriber that never reads.

Each fault, through the built proxy and a real ipykernel:
  * the notebook keeps working: cells keep returning their correct output;
  * the user is told: the proxy's log (its stderr) and the comm's `health`
    reply (`recording`, `pending`, `last_error`) say what happened;
  * recording resumes when the fault clears: executions run during the
    fault land in the database (exactly once, with their outputs) and
    nothing that could be kept is lost (`dropped_records` stays 0).

Mounting a tmpfs needs root (CI runs the tests as root); those tests skip,
saying so, as another user. Mounts and processes are undone in finalizers.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import zmq

from kernels import DIRECT, LINEAGE, TIMEOUT, run_cell, shell_reply, start_kernel, stdout_of
from recording_db import (
    DB_FILE,
    client_outputs,
    lineage_health,
    query,
    start_logged,
    stored_outputs,
    wait_until,
)

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


class Notebook:
    """A proxied kernel with its log captured, and the cells it ran."""

    def __init__(self, handle, log: Path, db: Path):
        self.handle = handle
        self.kc = handle.kc
        self.log = log
        self.db = db
        self.ran: dict[str, list[dict]] = {}  # msg_id -> outputs the client got

    def cells(self, tag: str, n: int, payload: int = 0) -> list[str]:
        """Run n cells that must succeed with exactly the expected output;
        `payload` adds that many bytes of random (incompressible, never
        deduplicated) text to each output."""
        ids = []
        for i in range(n):
            code = f"print('{tag} {i}')\n{i} * 7"
            if payload:
                code = (f"import os, base64\nprint('{tag} {i}')\n"
                        f"print(base64.b64encode(os.urandom({payload * 3 // 4})).decode())\n{i} * 7")
            reply, msgs = run_cell(self.kc, code)
            assert reply["content"]["status"] == "ok", reply["content"]
            out = stdout_of(msgs)
            assert out.startswith(f"{tag} {i}\n"), out[:200]
            if payload:
                k = payload * 3 // 4
                assert len(out) == len(f"{tag} {i}\n") + 4 * -(-k // 3) + 1, len(out)
            else:
                assert out == f"{tag} {i}\n", out
            results = [m["content"]["data"]["text/plain"] for m in msgs
                       if m["msg_type"] == "execute_result"]
            assert results == [str(i * 7)], results
            msg_id = reply["parent_header"]["msg_id"]
            self.ran[msg_id] = client_outputs(msgs)
            ids.append(msg_id)
        return ids

    def health(self) -> dict:
        return lineage_health(self.kc)

    def wait_health(self, what: str, check, timeout: float = 20) -> dict:
        seen: list[dict] = []

        def probe() -> bool:
            seen.append(self.health())
            return bool(check(seen[-1]))

        try:
            wait_until(what, probe, timeout=timeout, period=0.25)
        except AssertionError as e:
            raise AssertionError(f"{e}; last health: {seen[-1] if seen else None}\n"
                                 f"log:\n{self.log_text()}") from None
        return seen[-1]

    def wait_recorded(self, msg_ids: list[str], timeout: float = 30) -> None:
        """Every msg_id is stored exactly once, with the outputs its client got."""
        def present() -> bool:
            if not self.db.is_file():
                return False
            try:
                rows = query(self.db, f"SELECT msg_id FROM executions WHERE msg_id IN "
                                      f"({','.join('?' * len(msg_ids))})", tuple(msg_ids))
            except sqlite3.Error:
                return False
            return {r[0] for r in rows} == set(msg_ids)

        try:
            wait_until(f"{len(msg_ids)} executions in {self.db}", present, timeout=timeout, period=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}\nhealth: {self.health()}\nlog:\n{self.log_text()}") from None
        for msg_id in msg_ids:
            rows = query(self.db, "SELECT id, status FROM executions WHERE msg_id = ?", (msg_id,))
            assert len(rows) == 1, f"{msg_id} stored {len(rows)} times"
            assert rows[0]["status"] == "ok", dict(rows[0])
            assert stored_outputs(self.db, rows[0]["id"]) == self.ran[msg_id], msg_id

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, *needles: str, timeout: float = 10) -> str:
        wait_until(f"{needles} in the proxy log",
                   lambda: all(n in self.log_text() for n in needles), timeout=timeout)
        return self.log_text()


@pytest.fixture
def notebook(lineage_prefix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Start a proxied kernel whose lineage folder is `folder`."""
    started: list = []

    def start(folder: Path) -> Notebook:
        monkeypatch.setenv("JUPYTER_LINEAGE_DIR", str(folder))
        monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "faults.ipynb"))
        log = tmp_path / f"proxy-{len(started)}.log"
        handle = start_logged(LINEAGE, tmp_path, log)
        started.append(handle)
        return Notebook(handle, log, folder / DB_FILE)

    yield start
    for handle in started:
        handle.close()


class Mounts:
    """tmpfs mounts made by a test, undone (innermost first) at teardown."""

    def __init__(self):
        self.points: list[Path] = []

    def tmpfs(self, path: Path, size: str, ro: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0700" + (",ro" if ro else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); "
                        "this fault test needs root with CAP_SYS_ADMIN")
        self.points.append(path)
        return path

    def remount(self, path: Path, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                       capture_output=True)

    def undo(self) -> None:
        for path in reversed(self.points):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self.points.clear()


@pytest.fixture
def mounts():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs these tests as root)")
    m = Mounts()
    yield m
    m.undo()


def fill(path: Path) -> int:
    """Write zeros to `path` until the filesystem is full; bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
        for size in (4096, 512, 1):  # the last pages
            while True:
                try:
                    written += f.write(b"\0" * size)
                except OSError:
                    break
    return written


# --------------------------------------------------------------------------
# The database deleted, or replaced by a directory
# --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_database_deleted_mid_session(notebook, tmp_path):
    nb = notebook(tmp_path / "lineage")
    before = nb.cells("before", 3)
    nb.wait_recorded(before)
    assert nb.health()["recording"] is True

    os.remove(nb.db)  # as `rm lineage.sqlite` does: its -wal/-shm stay
    during = nb.cells("after-delete", 5)
    nb.wait_recorded(during)
    nb.wait_log("was removed or replaced: reopening")

    health = nb.health()
    assert health["recording"] is True and health["last_error"] is None, health
    assert health["pending"] == 0 and health["dropped_records"] == 0, health
    assert nb.db.stat().st_mode & 0o777 == 0o600
    assert query(nb.db, "PRAGMA integrity_check")[0][0] == "ok"
    # Only what was written after the delete is in the new file.
    assert {r[0] for r in query(nb.db, "SELECT msg_id FROM executions")} == set(during)
    later = nb.cells("later", 2)
    nb.wait_recorded(later)


@pytest.mark.timeout(60)
def test_history_service_reads_the_recreated_database(notebook, tmp_path):
    """After a delete + recreate, the comm's history shows the new file,
    not the deleted one it may still hold open."""
    import uuid

    from recording_db import iopub_until_idle

    nb = notebook(tmp_path / "lineage")
    kc = nb.kc
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": "jupyter.lineage",
                                       "data": {}})
    kc.shell_channel.send(msg)
    iopub_until_idle(kc, msg["header"]["msg_id"])

    def history() -> set[str]:
        m = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
            "request": "history", "id": 1, "limit": 1000, "scope": "project"}})
        kc.shell_channel.send(m)
        msgs = iopub_until_idle(kc, m["header"]["msg_id"])
        replies = [x["content"]["data"] for x in msgs if x["msg_type"] == "comm_msg"
                   and x["content"]["data"].get("reply") == "history"]
        assert len(replies) == 1, msgs
        assert replies[0]["ok"], replies[0]
        return {i["msg_id"] for i in replies[0]["result"]["items"]}

    before = nb.cells("before", 2)
    nb.wait_recorded(before)
    assert history() == set(before)  # the service has opened the database
    os.remove(nb.db)
    after = nb.cells("after", 2)
    nb.wait_recorded(after)
    wait_until("the history service to show the recreated database",
               lambda: history() == set(after), timeout=10, period=0.5)


@pytest.mark.timeout(60)
def test_database_replaced_by_a_directory(notebook, tmp_path):
    nb = notebook(tmp_path / "lineage")
    before = nb.cells("before", 2)
    nb.wait_recorded(before)

    os.remove(nb.db)
    nb.db.mkdir()
    during = nb.cells("during", 5)
    health = nb.wait_health("recording to pause", lambda h: h["recording"] is False)
    assert health["last_error"], health
    assert health["pending"] >= 1, health
    assert health["dropped_records"] == 0, health
    text = nb.wait_log("recording paused")
    assert str(nb.db) in text
    more = nb.cells("still-during", 2)  # still working while paused
    assert nb.health()["recording"] is False

    nb.db.rmdir()  # the fault clears
    nb.wait_recorded(during + more, timeout=20)
    nb.wait_log("recording resumed")
    health = nb.wait_health("pending to drain", lambda h: h["pending"] == 0)
    assert health["recording"] is True and health["last_error"] is None, health
    assert health["dropped_records"] == 0, health
    assert nb.db.stat().st_mode & 0o777 == 0o600
    after = nb.cells("after", 2)
    nb.wait_recorded(after)


# --------------------------------------------------------------------------
# A full filesystem; the lineage folder made read-only
# --------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_full_filesystem(notebook, mounts, tmp_path):
    disk = mounts.tmpfs(tmp_path / "small-disk", "4m")
    nb = notebook(disk / "lineage")
    before = nb.cells("before", 2)
    nb.wait_recorded(before)

    filler = disk / "filler"
    fill(filler)
    during = nb.cells("full", 6, payload=100_000)
    health = nb.wait_health("recording to pause on the full disk",
                            lambda h: h["recording"] is False)
    assert "full" in (health["last_error"] or "").lower(), health
    assert health["pending"] >= 1, health
    assert health["dropped_records"] == 0, health
    nb.wait_log("recording paused", "full")
    more = nb.cells("still-full", 3)

    filler.unlink()  # the fault clears
    nb.wait_recorded(during + more, timeout=30)
    nb.wait_log("recording resumed")
    health = nb.wait_health("pending to drain", lambda h: h["pending"] == 0)
    assert health["recording"] is True and health["last_error"] is None, health
    assert health["dropped_records"] == 0, health
    assert query(nb.db, "PRAGMA integrity_check")[0][0] == "ok"
    nb.wait_recorded(before)  # nothing written before the fault was lost
    after = nb.cells("after", 2)
    nb.wait_recorded(after)


@pytest.mark.timeout(90)
def test_lineage_folder_made_read_only(notebook, mounts, tmp_path):
    """A filesystem cannot be remounted read-only while a file on it is open
    for writing (EBUSY), so the folder becomes read-only the way a share
    does when it is swapped under a running process: a read-only tmpfs
    holding a copy of the folder is mounted over it. Later it is remounted
    read-write, as a user fixing the share would."""
    folder = tmp_path / "project" / "lineage"
    nb = notebook(folder)
    before = nb.cells("before", 3)
    nb.wait_recorded(before)
    nb.wait_health("nothing pending", lambda h: h["pending"] == 0)

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    src = sqlite3.connect(str(nb.db))
    dst = sqlite3.connect(str(snapshot / DB_FILE))
    src.backup(dst)
    dst.close()
    src.close()
    mounts.tmpfs(folder, "32m")
    shutil.copy2(snapshot / DB_FILE, folder / DB_FILE)
    (folder / DB_FILE).chmod(0o600)
    mounts.remount(folder, "ro")
    with pytest.raises(OSError):
        (folder / "probe").write_text("x")

    during = nb.cells("read-only", 5)
    health = nb.wait_health("recording to pause on the read-only folder",
                            lambda h: h["recording"] is False)
    assert health["last_error"], health
    assert health["pending"] >= 1 and health["dropped_records"] == 0, health
    text = nb.wait_log("recording paused")
    line = [ln for ln in text.splitlines() if "recording paused" in ln][-1]
    assert "read-only" in line.lower() or "readonly" in line.lower(), line
    more = nb.cells("still-read-only", 2)

    mounts.remount(folder, "rw")  # the fault clears
    nb.wait_recorded(during + more, timeout=30)
    nb.wait_log("recording resumed")
    nb.wait_recorded(before)  # the earlier executions are still there
    health = nb.wait_health("pending to drain", lambda h: h["pending"] == 0)
    assert health["recording"] is True and health["last_error"] is None, health
    assert health["dropped_records"] == 0, health
    nb.handle.close()  # before the finalizer unmounts the folder


# --------------------------------------------------------------------------
# SIGSTOP of the real kernel: as with a stopped plain kernel
# --------------------------------------------------------------------------


def stop_and_continue(handle, stop_for: float, report: dict, barrier: threading.Barrier) -> None:
    kc = handle.kc
    real = handle.real_kernel()
    reply, msgs = run_cell(kc, "print('before the stop')")
    assert stdout_of(msgs) == "before the stop\n"
    wait_until("a heartbeat", kc.hb_channel.is_beating, timeout=10)
    barrier.wait(timeout=30)
    real.send_signal(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        msg_id = kc.execute("print('queued during the stop')\n6 * 7")
        beats = []
        got_reply_while_stopped = False
        while time.monotonic() - stopped_at < stop_for:
            beats.append(kc.hb_channel.is_beating())
            try:
                kc.get_shell_msg(timeout=0.5)
                got_reply_while_stopped = True
            except queue.Empty:
                pass
        report["beating_late_in_stop"] = any(beats[len(beats) // 2:])
        report["reply_while_stopped"] = got_reply_while_stopped
        report["proxy_alive_while_stopped"] = handle.km.is_alive()
        report["real_kernel_status"] = real.status()
    finally:
        real.send_signal(signal.SIGCONT)
    resumed_at = time.monotonic()
    reply = shell_reply(kc, msg_id, timeout=30)
    report["reply_after_cont_s"] = round(time.monotonic() - resumed_at, 2)
    report["reply_status"] = reply["content"]["status"]
    # stdout since the cell was queued: the output of the queued cell.
    from kernels import collect_iopub
    msgs = collect_iopub(kc, msg_id)
    report["output"] = stdout_of(msgs)
    report["result"] = [m["content"]["data"]["text/plain"] for m in msgs
                        if m["msg_type"] == "execute_result"]
    try:
        wait_until("the heartbeat to come back", kc.hb_channel.is_beating, timeout=15)
        report["beating_after"] = True
    except AssertionError:
        report["beating_after"] = False
    reply, msgs = run_cell(kc, "print('after the stop')")
    report["next_cell"] = stdout_of(msgs)
    report["msg_id"] = msg_id


@pytest.mark.timeout(90)
def test_sigstop_of_the_real_kernel_behaves_as_a_plain_stopped_kernel(lineage_prefix, tmp_path,
                                                                      lineage_dir):
    handles = {name: start_kernel(name, cwd=tmp_path) for name in (DIRECT, LINEAGE)}
    reports: dict[str, dict] = {DIRECT: {}, LINEAGE: {}}
    errors: list = []
    barrier = threading.Barrier(2)

    def work(name):
        try:
            stop_and_continue(handles[name], 10, reports[name], barrier)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((name, e))
            barrier.abort()

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in handles]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=75)
        assert not errors, errors
        direct, proxied = reports[DIRECT], reports[LINEAGE]
        print(f"\ndirect:  {direct}\nproxied: {proxied}")
        # What a plain stopped kernel does…
        assert direct["real_kernel_status"] == psutil.STATUS_STOPPED
        assert direct["beating_late_in_stop"] is False
        assert direct["reply_while_stopped"] is False
        assert direct["reply_status"] == "ok"
        assert direct["output"] == "queued during the stop\n" and direct["result"] == ["42"]
        # …the proxied one does too.
        for key in ("real_kernel_status", "beating_late_in_stop", "reply_while_stopped",
                    "reply_status", "output", "result", "beating_after", "next_cell"):
            assert proxied[key] == direct[key], (key, direct, proxied)
        assert proxied["proxy_alive_while_stopped"] is True
        # The cell queued during the stop is recorded once.
        db = lineage_dir / DB_FILE
        wait_until("the queued cell to be recorded",
                   lambda: db.is_file() and len(query(db, "SELECT id FROM executions WHERE msg_id = ?",
                                                      (proxied["msg_id"],))) == 1, timeout=15)
        health = lineage_health(handles[LINEAGE].kc)
        assert health["recording"] is True and health["dropped_records"] == 0, health
    finally:
        for h in handles.values():
            for p in h.procs:  # never leave a stopped process behind
                try:
                    p.send_signal(signal.SIGCONT)
                except psutil.Error:
                    pass
            h.close()


# --------------------------------------------------------------------------
# A subscriber that never reads
# --------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_iopub_subscriber_that_never_reads_does_not_stall_others(notebook, tmp_path):
    nb = notebook(tmp_path / "lineage")
    info = nb.handle.km.get_connection_info()
    ctx = zmq.Context()
    stuck = ctx.socket(zmq.SUB)
    try:
        stuck.setsockopt(zmq.RCVHWM, 1)
        stuck.setsockopt(zmq.RCVBUF, 4096)
        stuck.setsockopt(zmq.LINGER, 0)
        stuck.setsockopt(zmq.SUBSCRIBE, b"")
        if info["transport"] == "ipc":
            stuck.connect(f"ipc://{info['ip']}-{info['iopub_port']}")
        else:
            stuck.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        time.sleep(0.5)  # subscribed; it never reads from here on
        n = 20_000
        started = time.monotonic()
        msg_id = nb.kc.execute(f"for i in range({n}):\n    print(i, flush=True)")
        # The reading client reads iopub while the cell runs, as every real
        # client does (a client that stops reading for thousands of messages
        # loses some, through the proxy as with libzmq's high-water marks).
        msgs: list[dict] = []
        idle = False
        while not idle:
            try:
                msg = nb.kc.get_iopub_msg(timeout=10)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") == msg_id:
                msgs.append(msg)
                idle = msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
        reply = shell_reply(nb.kc, msg_id, timeout=60)
        assert reply["content"]["status"] == "ok"
        replied = time.monotonic() - started
        took = time.monotonic() - started
        text = stdout_of(msgs)
        lines = text.splitlines()
        streams = sum(m["msg_type"] == "stream" for m in msgs)
        print(f"\n{n} prints: reply after {replied:.1f} s; the reading client got {len(lines)} "
              f"lines in {streams} stream messages in {took:.1f} s, idle: {idle}")
        assert idle and text == "".join(f"{i}\n" for i in range(n)), (
            f"the reading client got {len(lines)} of {n} lines (last: {lines[-1:]}), "
            f"idle seen: {idle}, while another subscriber did not read; "
            f"proxy log tail:\n{nb.log_text()[-2000:]}")
        # …and the notebook goes on.
        reply, msgs = run_cell(nb.kc, "print('next')")
        assert stdout_of(msgs) == "next\n"
        nb.ran[msg_id] = [{"output_type": "stream", "name": "stdout", "text": text}]
        nb.wait_recorded([msg_id])
    finally:
        stuck.close(linger=0)
        ctx.term()
