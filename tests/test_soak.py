"""The soak test (tests/soak.py) for 60 s, as part of `make test`; `make soak`
runs it for minutes. Also a focused check of one thing the soak compares:
JSON outputs are stored exactly as the client received them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import LINEAGE, run_cell, start_kernel
from recording_db import stored_outputs, wait_executions, DB_FILE

HERE = Path(__file__).resolve().parent


@pytest.mark.timeout(150)
def test_soak_60s(lineage_bin, tmp_path):
    report_file = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "soak.py"), "--seconds", "60", "--seed", "20261128",
         "--workdir", str(tmp_path / "soak"), "--json", str(report_file)],
        capture_output=True, text=True, timeout=140,
    )
    print(proc.stdout[-6000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    assert report_file.exists(), f"soak.py wrote no report (exit {proc.returncode})"
    report = json.loads(report_file.read_text())
    assert report["failures"] == [], "\n".join(report["failures"])
    assert proc.returncode == 0
    assert report["cells_replied"] >= 200, report
    assert report["restarts"] >= 2 and report["exits"] >= 1, report
    assert report["processes_left"] == 0


@pytest.mark.timeout(60)
def test_json_floats_are_stored_exactly(lineage_prefix, lineage_dir, tmp_path):
    """application/json with floats whose shortest repr needs all 17
    digits: the stored value must be the very float the client got."""
    handle = start_kernel(LINEAGE, cwd=tmp_path)
    try:
        floats = [0.44371064985826325, 0.04969271404770115, 0.1 + 0.2, 2.2250738585072014e-308,
                  1.7976931348623157e308, 5e-324, 0.30000000000000004, 123456789.12345679]
        code = ("from IPython.display import display\n"
                f"display({{'application/json': {{'v': {floats!r}}}, 'text/plain': 'v'}}, raw=True)")
        reply, msgs = run_cell(handle.kc, code)
        assert reply["content"]["status"] == "ok"
        [got] = [m["content"]["data"]["application/json"] for m in msgs
                 if m["msg_type"] == "display_data"]
        assert got["v"] == floats
        db = lineage_dir / DB_FILE
        [row] = wait_executions(db, 1)
        [stored] = stored_outputs(db, row["id"])
        wrong = [(a, b) for a, b in zip(floats, stored["data"]["application/json"]["v"]) if a != b]
        assert not wrong, f"stored floats differ from the client's: {wrong}"
    finally:
        handle.close()
