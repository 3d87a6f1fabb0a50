"""Secrets redaction end to end (issue 7, "Secrets"): a real ipykernel behind
the built proxy; cells that print a (fake) AWS key, assign a token literal,
raise with a key in the message and show a base64 image that happens to
contain one. With redaction on (the default) the raw secrets are nowhere in
the database file or its WAL (full-text index included), while the image's
bytes are stored untouched; with JUPYTER_LINEAGE_REDACT=off they are stored.
"""

from __future__ import annotations

import pytest

from kernels import LINEAGE, run_cell, start_kernel, stdout_of
from recording_db import DB_FILE, query, stored_outputs, wait_executions

# Fake credentials, unique to this test: AKIA + 16, and a token literal.
KEY_ID = "AKIAJLTESTREDACT0001"
ERR_KEY = "AKIAJLTESTREDACT0002"
TOKEN = "jl-e2e-tok-5f3a9c1d7b"
# Base64 image data is binary: never redacted, even when it looks like a key.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" + "AKIAJLTESTIMAGE0001" + "AAAAASUVORK5CYII="

CELLS = [
    f"key_id = '{KEY_ID}'\nprint('aws key:', key_id)",
    f'api_token = "{TOKEN}"\nlen(api_token)',
    f"raise ValueError('bad key {ERR_KEY}')",
    f"from IPython.display import display\ndisplay({{'image/png': '{PNG_B64}'}}, raw=True)",
]
SECRETS = [KEY_ID.encode(), ERR_KEY.encode(), TOKEN.encode()]


def run_cells(tmp_path, db) -> None:
    handle = start_kernel(LINEAGE, cwd=tmp_path)
    try:
        kc = handle.kc
        reply, msgs = run_cell(kc, CELLS[0])
        assert reply["content"]["status"] == "ok"
        # The user still sees the real value: only the record is redacted.
        assert stdout_of(msgs) == f"aws key: {KEY_ID}\n"
        assert run_cell(kc, CELLS[1])[0]["content"]["status"] == "ok"
        assert run_cell(kc, CELLS[2])[0]["content"]["status"] == "error"
        assert run_cell(kc, CELLS[3])[0]["content"]["status"] == "ok"
        wait_executions(db, 4)
    finally:
        handle.close()


def files_bytes(db) -> bytes:
    """The database with its WAL and shared-memory files, as stored on disk."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.iterdir())
                    if p.name.startswith(DB_FILE))


@pytest.mark.timeout(90)
def test_secrets_never_reach_the_disk(lineage_prefix, lineage_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTER_LINEAGE_REDACT", raising=False)
    db = lineage_dir / DB_FILE
    run_cells(tmp_path, db)

    rows = query(db, "SELECT * FROM executions ORDER BY id")
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok"]
    # The code keeps its shape, so an export still shows where the key was.
    assert rows[0]["code"] == "key_id = '[REDACTED:aws_access_key_id]'\nprint('aws key:', key_id)"
    assert rows[1]["code"] == 'api_token = "[REDACTED:secret]"\nlen(api_token)'
    assert stored_outputs(db, rows[0]["id"]) == [
        {"output_type": "stream", "name": "stdout",
         "text": "aws key: [REDACTED:aws_access_key_id]\n"}]
    assert rows[2]["error_value"] == "bad key [REDACTED:aws_access_key_id]"
    [err] = stored_outputs(db, rows[2]["id"])
    assert err["evalue"] == "bad key [REDACTED:aws_access_key_id]"
    assert not any(ERR_KEY in line for line in err["traceback"])
    [image] = stored_outputs(db, rows[3]["id"])
    assert image["data"]["image/png"] == PNG_B64

    disk = files_bytes(db)
    for secret in SECRETS:
        assert secret not in disk, secret
    assert b"[REDACTED:aws_access_key_id]" in disk


@pytest.mark.timeout(90)
def test_redaction_off_stores_what_ran(lineage_prefix, lineage_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_LINEAGE_REDACT", "off")
    db = lineage_dir / DB_FILE
    run_cells(tmp_path, db)

    rows = query(db, "SELECT * FROM executions ORDER BY id")
    assert rows[0]["code"] == CELLS[0]
    assert rows[1]["code"] == CELLS[1]
    assert stored_outputs(db, rows[0]["id"])[0]["text"] == f"aws key: {KEY_ID}\n"
    disk = files_bytes(db)
    for secret in SECRETS:
        assert secret in disk, secret
