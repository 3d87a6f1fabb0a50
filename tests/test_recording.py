"""Lineage recording end to end (issue 3, "What it must show"): a real
ipykernel behind the built proxy, driven by real jupyter_client / nbclient,
and the project's SQLite database read back with Python's sqlite3 the way a
user would read it (schema: kernel/src/store/schema.rs).

Every test gets its own JUPYTER_LINEAGE_DIR (the autouse `lineage_dir`
fixture), so the database is `lineage_dir / "lineage.sqlite"`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kernels import (LINEAGE, TIMEOUT, kill_all, process_tree, run_cell, shell_reply,
                     start_kernel, stdout_of)
from recording_db import (
    DB_FILE,
    checkpoint,
    coalesce_streams,
    count_executions,
    db_bytes,
    lineage_health,
    query,
    start_logged,
    stored_outputs,
    wait_executions,
    wait_until,
)

MiB = 1024 * 1024


@pytest.fixture
def db(lineage_dir: Path, lineage_prefix: Path) -> Path:
    """The database of this test's project (it need not exist yet)."""
    return lineage_dir / DB_FILE


@pytest.fixture
def kernel(lineage_prefix: Path, tmp_path: Path):
    handle = start_kernel(LINEAGE, cwd=tmp_path)
    yield handle
    handle.close()


def ok(kc, code: str) -> list[dict]:
    """Run a cell that must succeed; return its iopub messages."""
    reply, msgs = run_cell(kc, code)
    assert reply["content"]["status"] == "ok", reply["content"]
    return msgs


# A valid RGB PNG of pseudo-random (incompressible) pixels, built with zlib
# and struct, base64-encoded as Jupyter carries it. Cells run this same source.
PNG_CELL_HELPER = """\
import base64, struct, zlib
from IPython.display import display

def png_base64(width, height, seed=1):
    def chunk(tag, data):
        return (struct.pack('>I', len(data)) + tag + data
                + struct.pack('>I', zlib.crc32(tag + data) & 0xFFFFFFFF))
    state = seed
    rows = []
    for _ in range(height):
        row = bytearray([0])
        for _ in range(width):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            row += state.to_bytes(4, 'little')[:3]
        rows.append(bytes(row))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    png = (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', ihdr)
           + chunk(b'IDAT', zlib.compress(b''.join(rows), 1)) + chunk(b'IEND', b''))
    return base64.b64encode(png).decode()
"""


# --------------------------------------------------------------------------
# 1. A notebook run with nbclient: stored outputs equal the client's
# --------------------------------------------------------------------------


class LabStyleClient(NotebookClient):
    """nbclient, sending each cell's id in the execute_request metadata as
    JupyterLab does (`metadata.cellId`), and remembering the processes it
    started so that the test can clean them up by pid."""

    current_cell_id: str | None = None
    started: list = []

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        self.started = process_tree(self.km.provisioner.process.pid)
        msg = kc.session.msg

        def with_cell_id(msg_type, content=None, parent=None, header=None, metadata=None):
            if msg_type == "execute_request" and self.current_cell_id:
                metadata = {**(metadata or {}), "cellId": self.current_cell_id,
                            "deletedCells": [], "recordTiming": False}
            return msg(msg_type, content, parent=parent, header=header, metadata=metadata)

        kc.session.msg = with_cell_id
        return kc

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.current_cell_id = cell.get("id")
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


NOTEBOOK_CELLS = [
    # streams: stdout, then stderr, then stdout again (each flushed)
    "import sys\nprint('hello')\nprint('stdout again')\nsys.stdout.flush()\n"
    "print('to stderr', file=sys.stderr)\nsys.stderr.flush()\nprint('stdout after')",
    # rich display: HTML + PNG with metadata, and an HTML object
    PNG_CELL_HELPER
    + "from IPython.display import HTML\n"
      "display({'text/html': '<b>lineage</b>', 'image/png': png_base64(6, 4),\n"
      "         'text/plain': '<image>'}, raw=True,\n"
      "        metadata={'image/png': {'width': 6, 'height': 4}})\n"
      "display(HTML('<i>second</i>'))",
    # a display with an id, updated in the same cell
    "h = display({'text/plain': 'v1', 'text/html': '<p>v1</p>'}, raw=True, display_id='progress')\n"
    "h.update({'text/plain': 'v2', 'text/html': '<p>v2</p>'}, raw=True)",
    # …and from a later cell (updates the earlier cell's output)
    "h.update({'text/plain': 'v3', 'text/html': '<p>v3</p>'}, raw=True)\nprint('updated')",
    # clear_output(wait=True) in a loop: only the last step remains
    "from IPython.display import clear_output\nimport sys\n"
    "for i in range(4):\n    clear_output(wait=True)\n    print(f'step {i}')\n    sys.stdout.flush()\n"
    "print('done')",
    # an error
    "print('about to fail')\n1/0",
    # execute results: JSON (a dict value) and HTML
    "from IPython.display import JSON\ndisplay(JSON({'k': [1, 2, {'n': None}]}))\n{'a': 1, 'b': [1, 2]}",
    "HTML('<s>result</s>')",
]


@pytest.mark.timeout(90)
def test_notebook_outputs_cell_ids_and_path_are_stored(db, tmp_path, monkeypatch):
    nb_path = tmp_path / "project" / "analysis.ipynb"
    nb_path.parent.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nbformat.write(nb, nb_path)
    # JupyterLab's server tells the kernel its notebook this way.
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb_path))

    client = LabStyleClient(nb, kernel_name=LINEAGE, allow_errors=True, timeout=60,
                            resources={"metadata": {"path": str(nb_path.parent)}})
    try:
        client.execute()
    finally:
        kill_all(client.started)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.id for c in code_cells)
    # The error cell ran and its error is in the notebook.
    assert [o["output_type"] for o in code_cells[5].outputs][-1] == "error"

    rows = wait_executions(db, len(code_cells))
    assert len(rows) == len(code_cells), [dict(r) for r in rows]
    assert [r["cell_id"] for r in rows] == [c.id for c in code_cells]
    assert {r["notebook_path"] for r in rows} == {str(nb_path)}
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["error"] + ["ok"] * 2
    assert [r["code"] for r in rows] == [c.source for c in code_cells]
    assert [r["execution_count"] for r in rows] == [c.execution_count for c in code_cells]
    sessions = query(db, "SELECT * FROM sessions")
    assert len(sessions) == 1
    assert sessions[0]["notebook_path"] == str(nb_path)
    assert sessions[0]["kernelspec"] == "python3"
    assert {r["session_id"] for r in rows} == {sessions[0]["id"]}

    for cell, row in zip(code_cells, rows):
        expected = coalesce_streams(cell.outputs)
        stored = stored_outputs(db, row["id"])
        assert row["output_count"] == len(stored)
        assert [o["output_type"] for o in stored] == [o["output_type"] for o in expected], (
            cell.source, stored, expected)
        for got, want in zip(stored, expected):
            if want["output_type"] in ("display_data", "execute_result"):
                # MIME type by MIME type
                assert sorted(got["data"]) == sorted(want["data"]), cell.source
                for mime in want["data"]:
                    assert got["data"][mime] == want["data"][mime], (cell.source, mime)
                assert got["metadata"] == want["metadata"], cell.source
            assert got == want, cell.source

    # Spot checks of what the notebook shows, so that an nbclient change
    # cannot make both sides wrong the same way.
    by_src = {c.source: stored_outputs(db, r["id"]) for c, r in zip(code_cells, rows)}
    streams = by_src[NOTEBOOK_CELLS[0]]
    assert [(o["name"], o["text"]) for o in streams] == [
        ("stdout", "hello\nstdout again\n"), ("stderr", "to stderr\n"), ("stdout", "stdout after\n")]
    rich = by_src[NOTEBOOK_CELLS[1]]
    assert base64.b64decode(rich[0]["data"]["image/png"]).startswith(b"\x89PNG")
    assert rich[0]["metadata"] == {"image/png": {"width": 6, "height": 4}}
    assert by_src[NOTEBOOK_CELLS[2]][0]["data"]["text/plain"] == "v3"
    assert by_src[NOTEBOOK_CELLS[4]] == [{"output_type": "stream", "name": "stdout",
                                          "text": "step 3\ndone\n"}]
    assert by_src[NOTEBOOK_CELLS[6]][0]["data"]["application/json"] == {"k": [1, 2, {"n": None}]}
    err = rows[5]
    assert err["error_name"] == "ZeroDivisionError"
    assert err["error_value"] == "division by zero"


# --------------------------------------------------------------------------
# 2. Resources: memory and CPU of the kernel's process tree
# --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_peak_rss_and_cpu_time(kernel, db):
    kc = kernel.kc
    ok(kc, "import time")
    ok(kc, "b = bytearray(500 * 1024 * 1024)\n"
           "b[::4096] = b'x' * len(range(0, len(b), 4096))\n"
           "time.sleep(1)\n"
           "del b")
    ok(kc, "t = time.process_time()\nwhile time.process_time() - t < 1: pass")
    rows = wait_executions(db, 3)
    mem, cpu = rows[1], rows[2]
    assert mem["peak_rss"] is not None and mem["peak_rss"] >= 500 * MiB, dict(mem)
    assert cpu["cpu_ms"] is not None and 800 <= cpu["cpu_ms"] <= 1200, dict(cpu)
    assert 900 <= cpu["wall_ms"] and mem["wall_ms"] >= 900
    # A resource time series of each one-second cell (100 ms period).
    for row in (mem, cpu):
        samples = query(db, "SELECT * FROM samples WHERE execution_id = ? ORDER BY seq", (row["id"],))
        assert len(samples) >= 5, (dict(row), [dict(s) for s in samples])
    mem_samples = query(db, "SELECT max(rss) FROM samples WHERE execution_id = ?", (mem["id"],))
    assert mem_samples[0][0] >= 500 * MiB


# --------------------------------------------------------------------------
# 3. Error, interrupt, restart, and a kernel dying mid-cell
# --------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_error_interrupt_and_restart(kernel, db):
    kc = kernel.kc
    reply, _ = run_cell(kc, "def f():\n    return 1/0\nf()")
    assert reply["content"]["status"] == "error"

    msg_id = kc.execute("import time\ntime.sleep(30)")
    while True:  # the sleep has started once its execute_input is out
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            break
    time.sleep(0.5)
    started = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = shell_reply(kc, msg_id)
    assert time.monotonic() - started < 10
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"

    before = wait_executions(db, 2)
    assert [r["status"] for r in before] == ["error", "interrupted"]
    err = before[0]
    assert err["error_name"] == "ZeroDivisionError"
    assert err["error_value"] == "division by zero"
    tb = json.loads(err["traceback"])
    assert isinstance(tb, list) and any("f()" in line for line in tb)
    assert before[1]["error_name"] == "KeyboardInterrupt"

    kernel.km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=TIMEOUT)
    kernel.remember_processes()
    ok(kc, "print('after restart')")

    rows = wait_executions(db, 3)
    wait_until("two sessions", lambda: len(query(db, "SELECT id FROM sessions")) == 2)
    sessions = query(db, "SELECT * FROM sessions ORDER BY id")
    first, second = sessions
    assert first["uuid"] != second["uuid"]
    assert first["kernel_session"] != second["kernel_session"]
    assert [r["session_id"] for r in rows] == [first["id"], first["id"], second["id"]]
    assert rows[2]["status"] == "ok" and rows[2]["execution_count"] == 1
    wait_until("the first session to end",
               lambda: query(db, "SELECT ended_ms FROM sessions WHERE id = ?", (first["id"],))[0][0]
               is not None)
    assert rows[2]["prev_execution_id"] is None
    assert rows[1]["prev_execution_id"] == rows[0]["id"]


@pytest.mark.timeout(60)
def test_exit_mid_cell_is_stored_as_died(kernel, db):
    kc = kernel.kc
    ok(kc, "print('first')")
    proxy = kernel.km.provisioner.process
    kc.execute("import os, time\nprint('going', flush=True)\nx = bytearray(50 * 1024 * 1024)\n"
               "time.sleep(0.5)\nos._exit(3)")
    # The proxy exits with the kernel…
    code = proxy.wait(timeout=TIMEOUT)
    assert code == 3, f"the proxy exited with {code}, the kernel with 3"
    # …and the execution is stored as died, with the exit code.
    rows = wait_executions(db, 2)
    died = rows[1]
    assert died["status"] == "died", dict(died)
    assert died["exit_code"] == 3 and died["exit_signal"] is None, dict(died)
    assert died["peak_rss"] is not None and died["peak_rss"] >= 50 * MiB, dict(died)
    assert stored_outputs(db, died["id"]) == [
        {"output_type": "stream", "name": "stdout", "text": "going\n"}]
    session = query(db, "SELECT * FROM sessions")
    assert len(session) == 1
    assert session[0]["exit_code"] == 3 and session[0]["ended_ms"] is not None


# --------------------------------------------------------------------------
# 4. Two kernels of one project at once
# --------------------------------------------------------------------------


def cell_code(i: int) -> str:
    """Cells with varied small outputs."""
    if i % 5 == 0:
        return f"x = {i}\nprint('x is', x)"
    if i % 5 == 1:
        return f"x = {i}\nx * 2"
    if i % 5 == 2:
        return f"x = {i}\nimport sys; print(x, file=sys.stderr)"
    if i % 5 == 3:
        return f"x = {i}\ndisplay({{'text/plain': str(x), 'text/html': '<b>%d</b>' % x}}, raw=True)"
    return f"x = {i}"


def run_many(kc, n: int) -> list[tuple[str, dict]]:
    """Send n execute_requests as a notebook's Run All does (all queued at
    once), then collect every reply."""
    sent = [(kc.execute(cell_code(i)), i) for i in range(n)]
    replies = {}
    deadline = time.monotonic() + 120
    while len(replies) < n:
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        replies[msg["parent_header"]["msg_id"]] = msg["content"]
    return [(msg_id, replies[msg_id]) for msg_id, _ in sent]


@pytest.mark.timeout(150)
def test_two_kernels_of_one_project_at_once(db, tmp_path):
    handles = [start_kernel(LINEAGE, cwd=tmp_path) for _ in range(2)]
    try:
        results: list = [None, None]
        errors: list = []

        def work(k: int) -> None:
            try:
                results[k] = run_many(handles[k].kc, 500)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=130)
        assert not errors, errors
        sent = [msg_id for r in results for msg_id, _ in r]
        assert all(reply["status"] == "ok" for r in results for _, reply in r)

        wait_executions(db, 1000, timeout=30)
        time.sleep(0.5)  # anything extra would land now
        rows = query(db, "SELECT msg_id, status, session_id, code FROM executions")
        assert len(rows) == 1000
        assert sorted(r["msg_id"] for r in rows) == sorted(sent)
        assert {r["status"] for r in rows} == {"ok"}
        per_session = query(db, "SELECT session_id, count(*) FROM executions GROUP BY session_id")
        assert sorted(r[1] for r in per_session) == [500, 500]
        assert len(query(db, "SELECT id FROM sessions")) == 2
        # The outputs went with them: 100 prints per kernel, in order.
        printed = query(db, "SELECT count(*) FROM outputs WHERE output_type = 'stream' AND name = 'stdout'")
        assert printed[0][0] == 200
        for h in handles:
            health = lineage_health(h.kc)
            assert health["written"] == 500, health
            assert health["dropped_records"] == 0 and health["tap_dropped"] == 0, health
            assert health["recording"] is True and health["last_error"] is None, health
    finally:
        for h in handles:
            h.close()


# --------------------------------------------------------------------------
# 5. A locked database, and a read-only project directory
# --------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_locked_database_does_not_slow_cells_and_nothing_is_lost(db, tmp_path):
    log = tmp_path / "proxy.log"
    handle = start_logged(LINEAGE, tmp_path, log)
    try:
        kc = handle.kc
        ok(kc, "x = 0")
        wait_executions(db, 1)
        usual = []
        for i in range(10):
            t = time.monotonic()
            ok(kc, f"x = {i}\nprint(x)")
            usual.append(time.monotonic() - t)
        wait_executions(db, 11)

        locker = sqlite3.connect(str(db), timeout=0, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            locked_at = time.monotonic()
            # It really blocks writers: another connection cannot write.
            probe = sqlite3.connect(str(db), timeout=0, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                probe.execute("BEGIN IMMEDIATE")
            probe.close()

            during = []
            for i in range(20):
                t = time.monotonic()
                msgs = ok(kc, f"y = {i}\nprint('locked', y)")
                during.append(time.monotonic() - t)
                assert stdout_of(msgs) == f"locked {i}\n"
            # Nothing could be written while the lock holds (readers still read).
            assert count_executions(db) == 11
            health = lineage_health(kc)
            assert health["pending"] >= 1, health
            remaining = 5 - (time.monotonic() - locked_at)
            assert remaining > 0, f"20 cells took {5 - remaining:.1f} s under the lock"
            time.sleep(remaining)
            assert count_executions(db) == 11
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        # The relay never waited on the disk: far below the 5 s the lock lasted.
        assert max(during) < 1.0, (during, usual)
        print(f"\nround trip: usual median {sorted(usual)[5] * 1000:.1f} ms, "
              f"during the lock median {sorted(during)[10] * 1000:.1f} ms, max {max(during) * 1000:.1f} ms"
              f" (all: {[round(d * 1000) for d in during]}; usual: {[round(u * 1000) for u in usual]})")

        rows = wait_executions(db, 31, timeout=15)
        assert len(rows) == 31
        assert [r["code"] for r in rows[11:]] == [f"y = {i}\nprint('locked', y)" for i in range(20)]
        assert all(r["status"] == "ok" for r in rows)
        health = lineage_health(kc)
        assert health["dropped_records"] == 0 and health["pending"] == 0, health
        assert health["recording"] is True, health
    finally:
        handle.close()
    text = log.read_text()
    assert "recording paused" in text and "recording resumed" in text, text


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A directory nobody can write to, not even root (tests run as root in
    CI, and root ignores mode bits). As root: a read-only tmpfs mounted
    there (EROFS, exactly what a read-only share gives), else the immutable
    attribute (`chattr +i`, EPERM). As another user: mode 0500."""
    path = tmp_path / "readonly-project"
    path.mkdir()
    undo = None
    if os.geteuid() != 0:
        path.chmod(0o500)
        undo = ["chmod", "0700", str(path)]
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m,mode=0755", "tmpfs", str(path)],
                        capture_output=True).returncode == 0:
        undo = ["umount", str(path)]
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)],
                                                   capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(path)]
    else:
        pytest.fail("cannot make a read-only directory as root here (no mount, no chattr)")
    try:
        probe = path / ".probe"
        with pytest.raises(OSError):
            probe.mkdir()
        yield path
    finally:
        subprocess.run(undo, capture_output=True)


@pytest.mark.timeout(60)
def test_read_only_project_dir_kernel_works_and_log_says_why(lineage_prefix, read_only_dir,
                                                             tmp_path, monkeypatch):
    nb = read_only_dir / "analysis.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    # The project's own folder: <notebook dir>/.jupyter-lineage.
    monkeypatch.delenv("JUPYTER_LINEAGE_DIR")
    log = tmp_path / "proxy.log"
    handle = start_logged(LINEAGE, read_only_dir, log)
    try:
        kc = handle.kc
        msgs = ok(kc, "print(6 * 7)")
        assert stdout_of(msgs) == "42\n"
        msgs = ok(kc, "from IPython.display import HTML\nHTML('<b>fine</b>')")
        results = [m["content"]["data"] for m in msgs if m["msg_type"] == "execute_result"]
        assert results and results[0]["text/html"] == "<b>fine</b>"
        reply, _ = run_cell(kc, "1/0")
        assert reply["content"]["ename"] == "ZeroDivisionError"
        health = lineage_health(kc)
        assert health["recording"] is False and health["last_error"], health
    finally:
        handle.close()
    assert not (read_only_dir / ".jupyter-lineage").exists()
    text = log.read_text()
    lines = [line for line in text.splitlines() if "recording is off" in line]
    assert lines, text
    line = lines[0]
    assert str(read_only_dir / ".jupyter-lineage") in line, line
    assert "read-only" in line.lower() or "permission" in line.lower() or "not permitted" in line.lower(), line


# --------------------------------------------------------------------------
# 6. Identical outputs are stored once
# --------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_same_1mb_image_100_times_grows_db_under_1mb(kernel, db):
    kc = kernel.kc
    ok(kc, PNG_CELL_HELPER + "img = png_base64(600, 437)\nlen(img)")
    cell = "display({'image/png': img, 'text/plain': '<noise>'}, raw=True)"
    msgs = ok(kc, cell)
    [shown] = [m["content"]["data"]["image/png"] for m in msgs if m["msg_type"] == "display_data"]
    assert 0.95 * MiB < len(shown) < 1.1 * MiB
    wait_executions(db, 2)
    checkpoint(db)
    before = db_bytes(db)
    assert before > MiB  # the image is in there once

    for _ in range(100):
        ok(kc, cell)
    rows = wait_executions(db, 102)
    checkpoint(db)
    grown = db_bytes(db) - before
    print(f"\n100 re-runs of a {len(shown) / MiB:.2f} MiB image grew the database by {grown} bytes")
    assert grown < MiB, grown
    # All 101 executions point at the one stored payload.
    shas = query(db, "SELECT DISTINCT d.sha256 FROM output_data d JOIN outputs o ON o.id = d.output_id "
                     "WHERE d.mime = 'image/png'")
    assert len(shas) == 1
    assert stored_outputs(db, rows[-1]["id"])[0]["data"]["image/png"] == shown


# --------------------------------------------------------------------------
# 7. Private files
# --------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_database_is_private(lineage_prefix, tmp_path, monkeypatch, umask):
    folder = tmp_path / "project" / ".jupyter-lineage"  # does not exist yet
    monkeypatch.setenv("JUPYTER_LINEAGE_DIR", str(folder))
    old = os.umask(umask)
    try:
        handle = start_kernel(LINEAGE, cwd=tmp_path)
    finally:
        os.umask(old)
    try:
        ok(handle.kc, "print('secret stuff')")
        db = folder / DB_FILE
        wait_executions(db, 1)

        def modes() -> dict:
            return {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}

        assert folder.stat().st_mode & 0o777 == 0o700
        assert (folder / ".gitignore").read_text().strip() == "*"
        assert modes()[DB_FILE] == 0o600, modes()
        # The WAL and shared-memory companions hold the same data.
        for name, mode in modes().items():
            if name.startswith(DB_FILE):
                assert mode & 0o077 == 0, modes()
    finally:
        handle.close()
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / DB_FILE).stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------
# Privacy switches: `# lineage: skip` and JUPYTER_LINEAGE=off
# --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_skip_marker_records_skipped_without_code_or_outputs(kernel, db):
    kc = kernel.kc
    ok(kc, "print('visible')")
    msgs = ok(kc, "# lineage: skip\ntoken = 'hunter2-' + 'very-secret'\nprint(token)\ntoken")
    assert any(m["msg_type"] == "stream" for m in msgs)  # the user still sees it
    ok(kc, "print('after')")
    rows = wait_executions(db, 3)
    skipped = rows[1]
    assert [r["status"] for r in rows] == ["ok", "skipped", "ok"]
    assert skipped["code"] is None
    assert skipped["output_count"] == 0
    assert stored_outputs(db, skipped["id"]) == []
    assert skipped["error_name"] is None and skipped["traceback"] is None
    assert skipped["msg_id"] and skipped["execution_count"] == 2
    kernel.close()
    # Neither the code nor its output is anywhere in the files.
    for p in db.parent.iterdir():
        if p.name.startswith(DB_FILE):
            assert b"hunter2" not in p.read_bytes(), p


@pytest.mark.timeout(60)
def test_lineage_off_creates_no_database(lineage_prefix, lineage_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_LINEAGE", "off")
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    log = tmp_path / "proxy.log"
    handle = start_logged(LINEAGE, tmp_path, log)
    try:
        msgs = ok(handle.kc, "print('no lineage')")
        assert stdout_of(msgs) == "no lineage\n"
        ok(handle.kc, "1 + 1")
    finally:
        handle.close()
    assert list(lineage_dir.iterdir()) == []
    assert not (tmp_path / ".jupyter-lineage").exists()
    assert "recording is off (JUPYTER_LINEAGE=off)" in log.read_text()
