"""The history CLI end to end: cells
run through the real proxy and a real ipykernel with jupyter_client, then
`jupyter-lineage log | show | diff | export | stats | prune | doctor` read
the recorded database the way a user at a shell would. `--json` output is
parsed; exit codes are the ones scripts rely on (0 ok, 1 not found, 2 bad
arguments).

The cells are run once per module (it takes a few seconds); every test reads
that database, and the one that prunes works on a copy.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nbformat
import pytest

from kernels import LINEAGE, TIMEOUT, shell_reply, collect_iopub, start_kernel, tool_env
from recording_db import DB_FILE, wait_executions


def tiny_png() -> str:
    """A valid 2×2 PNG, base64 as Jupyter carries images."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


# (cell id, code). A deterministic notebook with cells re-run out of order:
# the last output (print(y)) is 11 only if the second run of `y = x + 1`
# happened after `x = 10` — which a top-to-bottom run of the cells would
# not reproduce (it prints 2).
CELLS = [
    ("cell-a", "x = 1"),
    ("cell-b", "y = x + 1"),
    ("cell-c", "x = 10"),
    ("cell-e", "print('before the error')\n1/0"),
    ("cell-s", "# lineage: skip\nsecret = 'hunter2'"),
    ("cell-f", "print('alpha')\nprint(y * 2)"),
    ("cell-f", "print('beta')\nprint(y * 3)"),
    ("cell-g", "from IPython.display import display\n"
               f"display({{'image/png': '{tiny_png()}', 'text/plain': '<tiny image>'}}, raw=True)"),
    ("cell-h", "1/0"),
    ("cell-h", "undefined_name + 1"),
    ("cell-b", "y = x + 1"),
    ("cell-d", "print(y)"),
]
ERROR_INDEX, SKIP_INDEX, F1_INDEX, F2_INDEX, IMAGE_INDEX = 3, 4, 5, 6, 7
H1_INDEX, H2_INDEX = 8, 9  # the same cell failing twice, differently
ERRORS = [ERROR_INDEX, H1_INDEX, H2_INDEX]


def execute(kc, code: str, cell_id: str) -> tuple[dict, list[dict]]:
    """An execute_request carrying the cell id in metadata, as JupyterLab sends it."""
    msg = kc.session.msg("execute_request",
                         {"code": code, "silent": False, "store_history": True,
                          "user_expressions": {}, "allow_stdin": False, "stop_on_error": False},
                         metadata={"cellId": cell_id})
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    return shell_reply(kc, msg_id), collect_iopub(kc, msg_id)


@pytest.fixture(scope="module")
def recorded(lineage_prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Runs CELLS through the python3-lineage kernel into a fresh lineage
    dir; returns the db path and the execution ids in run order."""
    root = tmp_path_factory.mktemp("cli")
    lineage_dir = root / "lineage"
    lineage_dir.mkdir()
    saved = os.environ.get("JUPYTER_LINEAGE_DIR")
    os.environ["JUPYTER_LINEAGE_DIR"] = str(lineage_dir)  # the kernel inherits it
    try:
        handle = start_kernel(LINEAGE, cwd=root)
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_LINEAGE_DIR", None)
        else:
            os.environ["JUPYTER_LINEAGE_DIR"] = saved
    try:
        replies = [execute(handle.kc, code, cell)[0] for cell, code in CELLS]
    finally:
        handle.close()
    assert replies[ERROR_INDEX]["content"]["status"] == "error"
    db = lineage_dir / DB_FILE
    rows = wait_executions(db, len(CELLS), where="silent = 0")
    ids = [r["id"] for r in rows]
    return {"db": db, "dir": lineage_dir, "ids": ids, "root": root}


def cli(*args: str, env: dict | None = None, cwd: Path | None = None,
        stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """Runs the binary with a pipe for stdout (so: no colour)."""
    from kernels import lineage_binary
    return subprocess.run([str(lineage_binary()), *args], capture_output=True, text=True,
                          env=env or tool_env(), cwd=cwd, stdin=stdin, timeout=TIMEOUT)


def ok(*args: str, **kw) -> str:
    proc = cli(*args, **kw)
    assert proc.returncode == 0, f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def ok_json(*args: str, **kw):
    return json.loads(ok(*args, "--json", **kw))


def test_log_table_newest_first(recorded):
    out = ok("log", "--db", str(recorded["db"]))
    assert "\x1b" not in out, "no colour when piped"
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["ID", "WHEN", "NOTEBOOK", "CELL"]
    assert header[-1] == "CODE"
    rows = lines[1:]
    assert len(rows) == len(CELLS)
    ids = [int(r.split()[0]) for r in rows]
    assert ids == sorted(recorded["ids"], reverse=True)
    assert rows[0].rstrip().endswith("print(y)")
    assert "cell-d" in rows[0] and " ok " in rows[0]
    error_row = next(r for r in rows if int(r.split()[0]) == recorded["ids"][ERROR_INDEX])
    assert " error " in error_row
    skip_row = next(r for r in rows if int(r.split()[0]) == recorded["ids"][SKIP_INDEX])
    assert " skipped " in skip_row and "hunter2" not in out
    # --limit keeps the newest.
    limited = ok("log", "--db", str(recorded["db"]), "--limit", "2").splitlines()
    assert [int(r.split()[0]) for r in limited[1:]] == ids[:2]


def test_log_json_pages_and_filters(recorded):
    db = str(recorded["db"])
    ids = recorded["ids"]
    doc = ok_json("log", "--db", db)
    assert [i["id"] for i in doc["items"]] == ids[::-1]
    assert doc["next_cursor"] is None
    first = doc["items"][0]
    assert first["cell_id"] == "cell-d" and first["status"] == "ok"
    assert first["code_preview"] == "print(y)"
    assert first["wall_ms"] > 0 and first["peak_rss"] > 0

    # Paging by cursor walks every execution exactly once.
    seen, cursor = [], None
    while True:
        extra = ["--before", str(cursor)] if cursor else []
        page = ok_json("log", "--db", db, "--limit", "3", *extra)
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert [i["id"] for i in ok_json("log", "--db", db, "--all")["items"]] == ids[::-1]

    assert [i["id"] for i in ok_json("log", "--db", db, "--status", "error")["items"]] \
        == [ids[i] for i in reversed(ERRORS)]
    assert [i["id"] for i in ok_json("log", "--db", db, "--cell", "cell-f")["items"]] \
        == [ids[F2_INDEX], ids[F1_INDEX]]
    assert [i["id"] for i in ok_json("log", "--db", db, "--search", "beta")["items"]] \
        == [ids[F2_INDEX]]
    # Full-text search covers outputs too (the error cell printed this).
    assert [i["id"] for i in ok_json("log", "--db", db, "--search", "before the")["items"]] \
        == [ids[ERROR_INDEX]]
    # As people type: the start of a word is enough.
    assert [i["id"] for i in ok_json("log", "--db", db, "--search", "bef")["items"]] \
        == [ids[ERROR_INDEX]]
    found = ok_json("log", "--db", db, "--search", "ZeroDiv")
    assert [i["id"] for i in found["items"]] == [ids[H1_INDEX], ids[ERROR_INDEX]]
    assert found["search_terms"] == ["ZeroDiv"]
    assert len(ok_json("log", "--db", db, "--since", "1h")["items"]) == len(ids)
    assert ok_json("log", "--db", db, "--until", "2000-01-01")["items"] == []


def test_show_code_outputs_resources(recorded):
    db, ids = str(recorded["db"]), recorded["ids"]
    out = ok("show", "--db", db, str(ids[-1]))
    assert f"execution {ids[-1]}" in out
    assert "print(y)" in out
    assert "\n11\n" in out
    for section in ("code", "outputs", "resources", "session"):
        assert f"── {section}" in out
    assert "peak RSS" in out and "python3" in out
    assert " MiB" in out and " MB" not in out, "sizes in binary units"

    err = ok("show", "--db", db, str(ids[ERROR_INDEX]))
    assert "ZeroDivisionError" in err
    assert "\x1b" not in err, "traceback colour is stripped when piped"

    img = ok("show", "--db", db, str(ids[IMAGE_INDEX]))
    assert "<tiny image>" in img
    assert "[image/png " in img and " B]" in img

    skipped = ok("show", "--db", db, str(ids[SKIP_INDEX]))
    assert "not recorded" in skipped and "hunter2" not in skipped

    doc = ok_json("show", "--db", db, str(ids[-1]))
    assert doc["id"] == ids[-1] and doc["code"] == "print(y)"
    assert doc["outputs"][0]["output"] == {"output_type": "stream", "name": "stdout", "text": "11\n"}
    assert doc["session"]["kernelspec"] == "python3"


def test_diff_of_an_edited_cell(recorded):
    db, ids = str(recorded["db"]), recorded["ids"]
    out = ok("diff", "--db", db, str(ids[F1_INDEX]), str(ids[F2_INDEX]))
    assert "\x1b" not in out
    lines = out.splitlines()
    assert "-print('alpha')" in lines and "+print('beta')" in lines
    assert "-alpha" in lines and "+beta" in lines  # the stream output, as text
    assert "-4" in lines and "+6" in lines
    assert any(line.startswith("wall") for line in lines)

    doc = ok_json("diff", "--db", db, str(ids[F1_INDEX]), str(ids[F2_INDEX]))
    assert doc["code"]["changed"] is True
    assert doc["code"]["added_lines"] == 2 and doc["code"]["removed_lines"] == 2
    assert doc["outputs"][0]["status"] == "changed"
    assert doc["outputs"][0]["mimes"][0]["mime"] == "text/plain"
    assert "wall_ms" in doc["resources"]

    same = ok_json("diff", "--db", db, str(ids[1]), str(ids[-2]))  # y = x + 1, twice
    assert same["code"]["changed"] is False


def test_diff_of_two_error_runs_is_plain_text(recorded):
    """Comparing two runs that raised shows both tracebacks as text: no
    ANSI colour codes, no "No newline at end of file" notes."""
    db, ids = str(recorded["db"]), recorded["ids"]
    out = ok("diff", "--db", db, str(ids[H1_INDEX]), str(ids[H2_INDEX]))
    assert "\x1b" not in out and "[0;31m" not in out and "[31m" not in out
    assert "No newline" not in out
    lines = out.splitlines()
    assert "-ZeroDivisionError: division by zero" in lines
    assert "+NameError: name 'undefined_name' is not defined" in lines
    doc = ok_json("diff", "--db", db, str(ids[H1_INDEX]), str(ids[H2_INDEX]))
    assert "\x1b" not in json.dumps(doc["outputs"])


def test_diff_pairs_outputs_by_kind_and_content(recorded):
    """A print added before an unchanged output reads as an added stream,
    not as the old output changed into a stream."""
    db, ids = str(recorded["db"]), recorded["ids"]
    # cell-f's two runs: a stream each ("alpha 4" / "beta 6"), paired.
    doc = ok_json("diff", "--db", db, str(ids[F1_INDEX]), str(ids[F2_INDEX]))
    assert [(o["status"], o["position_a"], o["position_b"]) for o in doc["outputs"]] \
        == [("changed", 0, 0)]
    # The error cell (a stream, then an error) against the first cell-h run
    # (an error only): the stream was removed, the errors are compared
    # with each other (their tracebacks name different cells).
    doc = ok_json("diff", "--db", db, str(ids[ERROR_INDEX]), str(ids[H1_INDEX]))
    seen = [(o["status"], o["position_a"], o["position_b"]) for o in doc["outputs"]]
    assert seen == [("removed", 0, None), ("changed", 1, 0)], seen


def test_export_py_reproduces_the_last_output(recorded, tmp_path):
    """The exported script, run with python, prints what the recorded last
    output shows, although the cells ran out of order."""
    db, ids = str(recorded["db"]), recorded["ids"]
    script = tmp_path / "repro.py"
    ok("export", "--db", db, "--format", "py", "--upto", str(ids[-1]), "-o", str(script))
    text = script.read_text()
    assert f"# %% [execution {ids[0]}, cell cell-a]" in text
    assert text.count("y = x + 1") == 2
    assert "skipped" in text and "hunter2" not in text
    recorded_last = ok_json("show", "--db", db, str(ids[-1]))["outputs"][0]["output"]["text"]
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=TIMEOUT, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith(recorded_last), run.stdout
    assert recorded_last == "11\n"
    # Cells that raised are comments by default, and the header says so.
    assert "before the error" not in run.stdout and run.stderr == ""
    assert "3 execution(s) that raised or were interrupted are kept as comments" in text
    assert "# 1/0\n" in text

    # --include-failed runs them: the error cell ran up to its error, and
    # the script went on.
    full = tmp_path / "full.py"
    ok("export", "--db", db, "--format", "py", "--include-failed", "-o", str(full))
    run = subprocess.run([sys.executable, str(full)], capture_output=True, text=True,
                         timeout=TIMEOUT, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith(recorded_last), run.stdout
    assert "before the error" in run.stdout and "ZeroDivisionError" in run.stderr
    assert "NameError" in run.stderr

    # The default is the latest session up to its last execution: the same script.
    assert ok("export", "--db", db) == text
    # Up to an earlier execution: what that one printed comes last.
    early = ok("export", "--db", db, "--upto", str(ids[F1_INDEX]))
    run = subprocess.run([sys.executable, "-c", early], capture_output=True, text=True,
                         timeout=TIMEOUT)
    f1 = ok_json("show", "--db", db, str(ids[F1_INDEX]))["outputs"][0]["output"]["text"]
    assert run.stdout.endswith(f1) and f1 == "alpha\n4\n"


def test_export_ipynb_and_jsonl(recorded, tmp_path):
    db, ids = str(recorded["db"]), recorded["ids"]
    path = tmp_path / "out.ipynb"
    ok("export", "--db", db, "--format", "ipynb", "-o", str(path))
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert len(nb.cells) == len(CELLS)
    assert len({c.id for c in nb.cells}) == len(CELLS)
    assert nb.cells[SKIP_INDEX].cell_type == "markdown"
    last = nb.cells[-1]
    assert last.source == "print(y)"
    assert last.outputs == [{"output_type": "stream", "name": "stdout", "text": "11\n"}]
    assert last.metadata["jupyter_lineage"]["cell_id"] == "cell-d"
    assert "image/png" in nb.cells[IMAGE_INDEX].outputs[0]["data"]
    assert nb.metadata.kernelspec.name == "python3"

    lines = ok("export", "--db", db, "--format", "jsonl").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids


def test_stats_json(recorded):
    doc = ok_json("stats", "--db", str(recorded["db"]))
    assert doc["executions"] == len(CELLS)
    assert doc["by_status"]["error"] == len(ERRORS) and doc["by_status"]["skipped"] == 1
    assert doc["sessions"] == 1 and doc["db_bytes"] > 0
    assert doc["oldest_ms"] <= doc["newest_ms"]
    text = ok("stats", "--db", str(recorded["db"]))
    assert "executions" in text and "oldest" in text


def test_doctor_json(recorded, lineage_prefix):
    env = tool_env(JUPYTER_LINEAGE_DIR=str(recorded["dir"]))
    doc = ok_json("doctor", env=env)
    d = doc["database"]
    assert d["path"] == str(recorded["db"]) and d["exists"] is True
    assert d["schema_version"] == d["schema_supported"]
    assert d["journal_mode"] == "wal" and d["mode"] == "0600"
    assert "JUPYTER_LINEAGE_DIR" in d["found_by"]
    specs = {k["name"]: k for k in doc["kernelspecs"]}
    assert specs[LINEAGE]["wraps"] == "python3" and specs[LINEAGE]["wrapped_installed"]
    assert isinstance(doc["nvml"]["available"], bool)
    if not doc["nvml"]["available"]:
        assert doc["nvml"]["detail"].startswith("not available: ")
    assert doc["env"]["JUPYTER_LINEAGE_DIR"] == str(recorded["dir"])
    text = ok("doctor", env=env)
    assert "NVML" in text
    # The database's size is measured as stats measures it.
    stats = ok_json("stats", "--db", str(recorded["db"]))
    assert (d["bytes"], d["wal_bytes"]) == (stats["db_bytes"], stats["wal_bytes"])
    # A kernelspec name longer than the label column keeps a gap.
    assert f"{LINEAGE}  wraps python3" in text


def test_doctor_prints_the_whole_configuration(recorded):
    """doctor lists every setting, defaults included, and says when
    redaction or recording is off."""
    env = tool_env(JUPYTER_LINEAGE_DIR=str(recorded["dir"]), JUPYTER_LINEAGE_REDACT="off")
    env.pop("JUPYTER_LINEAGE", None)
    doc = ok_json("doctor", env=env)
    settings = {s["var"]: s for s in doc["config"]}
    for var in ("JUPYTER_LINEAGE", "JUPYTER_LINEAGE_DIR", "JUPYTER_LINEAGE_LOG",
                "JUPYTER_LINEAGE_SAMPLE_MS", "JUPYTER_LINEAGE_MAX_OUTPUT",
                "JUPYTER_LINEAGE_REDACT"):
        assert var in settings, var
    assert settings["JUPYTER_LINEAGE_REDACT"]["value"] == "off"
    assert settings["JUPYTER_LINEAGE"] == {"var": "JUPYTER_LINEAGE", "value": "on", "raw": None}
    assert settings["JUPYTER_LINEAGE_SAMPLE_MS"]["value"] == "100 ms"
    text = ok("doctor", env=env)
    redact = next(line for line in text.splitlines() if "JUPYTER_LINEAGE_REDACT" in line)
    assert redact.split() == ["JUPYTER_LINEAGE_REDACT", "off"]
    assert "JUPYTER_LINEAGE_SAMPLE_MS" in text and "(default)" in text


def test_database_found_like_the_kernel_finds_it(recorded, tmp_path):
    env = tool_env(JUPYTER_LINEAGE_DIR=str(recorded["dir"]))
    assert len(ok_json("log", env=env, cwd=tmp_path)["items"]) == len(CELLS)
    # --db also takes the folder.
    assert len(ok_json("log", "--db", str(recorded["dir"]))["items"]) == len(CELLS)


def test_prune(recorded, tmp_path):
    copy = tmp_path / "copy" / DB_FILE
    copy.parent.mkdir()
    shutil.copy(recorded["db"], copy)
    os.chmod(copy, 0o600)
    db = str(copy)
    # Without a terminal to confirm on, and without --yes: refused, nothing gone.
    proc = cli("prune", "--db", db, "--older-than", "0s")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    dry = ok("prune", "--db", db, "--older-than", "0s", "--dry-run")
    assert f"{len(CELLS)} execution(s) would go" in dry
    assert ok_json("stats", "--db", db)["executions"] == len(CELLS)
    # A cutoff in the past keeps everything.
    ok("prune", "--db", db, "--older-than", "1d", "--yes")
    assert ok_json("stats", "--db", db)["executions"] == len(CELLS)
    doc = ok_json("prune", "--db", db, "--older-than", "0s", "--yes")
    assert doc["report"]["executions_removed"] == len(CELLS)
    after = ok_json("stats", "--db", db)
    assert after["executions"] == 0 and after["blobs"] == 0
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    # Neither limit given: a usage error.
    assert cli("prune", "--db", db, "--yes").returncode == 2


def test_not_found_and_bad_arguments(recorded, tmp_path):
    db = str(recorded["db"])
    for args in (["show", "999999"], ["diff", str(recorded["ids"][0]), "999999"],
                 ["export", "--upto", "999999"], ["export", "--session", "999999"]):
        proc = cli(*args, "--db", db)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "999999" in proc.stderr and db in proc.stderr
        assert proc.stdout == ""
    proc = cli("log", "--db", db, "--notebook", "nope.ipynb")
    assert proc.returncode == 1 and "nope.ipynb" in proc.stderr

    # No database: exit 1, naming the path that was searched.
    empty = tmp_path / "empty-lineage"
    empty.mkdir()
    proc = cli("log", env=tool_env(JUPYTER_LINEAGE_DIR=str(empty)), cwd=tmp_path)
    assert proc.returncode == 1
    assert str(empty / DB_FILE) in proc.stderr and "no lineage database" in proc.stderr
    assert not (empty / DB_FILE).exists(), "reading never creates a database"
    proc = cli("show", "1", "--db", str(tmp_path / "missing.sqlite"))
    assert proc.returncode == 1 and "missing.sqlite" in proc.stderr

    for args in (["log", "--since", "last tuesday"], ["log", "--status", "great"],
                 ["prune", "--max-size", "lots", "--yes"], ["show", "abc"],
                 ["export", "--format", "docx"]):
        proc = cli(*args, "--db", db)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr


def test_colour_only_on_a_terminal_and_never_with_no_color(recorded):
    import pty
    from kernels import lineage_binary

    def in_pty(*args: str, **extra: str) -> bytes:
        master, slave = pty.openpty()
        env = tool_env(**extra)
        if "NO_COLOR" not in extra:
            env.pop("NO_COLOR", None)
        proc = subprocess.Popen([str(lineage_binary()), *args], stdout=slave, stderr=slave,
                                stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=TIMEOUT) == 0
        os.close(master)
        return b"".join(chunks)

    db, ids = str(recorded["db"]), recorded["ids"]
    assert b"\x1b[" in in_pty("log", "--db", db)
    assert b"\x1b[32m+print('beta')" in in_pty("diff", "--db", db, str(ids[F1_INDEX]),
                                                  str(ids[F2_INDEX]))
    assert b"\x1b" not in in_pty("log", "--db", db, NO_COLOR="1")
