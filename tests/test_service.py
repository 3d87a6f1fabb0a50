"""The `jupyter.lineage` comm, answered by the proxy (docs/protocol.md),
through the real proxy and a real ipykernel with jupyter_client."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from jupyter_client.session import Session

from kernels import LINEAGE, TIMEOUT, shell_reply, start_kernel

TARGET = "jupyter.lineage"

# `recorded` events arrive whenever the store has written, often while a test
# waits for another message: every collector keeps them here.
EVENTS: dict[str, list[dict]] = {}


def keep_event(msg: dict) -> None:
    content = msg["content"]
    if msg["msg_type"] == "comm_msg" and content.get("data", {}).get("event") == "recorded":
        EVENTS.setdefault(content["comm_id"], []).append(content["data"])


def collect_iopub(kc, msg_id: str, timeout: float = TIMEOUT) -> list[dict]:
    """iopub messages whose parent is msg_id, up to its idle; keeps events."""
    msgs: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        keep_event(msg)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


class Comm:
    """A minimal client of the lineage comm over a BlockingKernelClient."""

    def __init__(self, kc):
        self.kc = kc
        self.comm_id = uuid.uuid4().hex
        self.events = EVENTS.setdefault(self.comm_id, [])
        self.next_id = 0

    def open(self) -> dict:
        msg = self.kc.session.msg(
            "comm_open", {"comm_id": self.comm_id, "target_name": TARGET, "data": {}}
        )
        self.kc.shell_channel.send(msg)
        msgs = collect_iopub(self.kc, msg["header"]["msg_id"])
        states = [m["content"]["execution_state"] for m in msgs if m["msg_type"] == "status"]
        assert states == ["busy", "idle"], states
        hellos = [m["content"]["data"] for m in msgs if m["msg_type"] == "comm_msg"]
        assert len(hellos) == 1, msgs
        return hellos[0]

    def send(self, data: dict, session: Session | None = None) -> str:
        msg = self.kc.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data})
        if session is None:
            self.kc.shell_channel.send(msg)
        else:
            session.send(self.kc.shell_channel.socket, msg)
        return msg["header"]["msg_id"]

    def request(self, name: str, **params) -> dict:
        self.next_id += 1
        data = {"request": name, "id": self.next_id, "protocol_version": 1, **params}
        msg_id = self.send(data)
        msgs = collect_iopub(self.kc, msg_id)
        for m in msgs:
            assert m["header"]["session"] == msgs[0]["header"]["session"]
        replies = [m["content"]["data"] for m in msgs if m["msg_type"] == "comm_msg"]
        if len(replies) == 1 and "part" not in replies[0]:
            reply = replies[0]
        else:
            parts = sorted(replies, key=lambda r: r["part"])
            assert [p["part"] for p in parts] == list(range(parts[0]["parts"]))
            reply = json.loads("".join(p["text"] for p in parts))
        assert reply["id"] == self.next_id
        assert reply["reply"] == name
        return reply

    def wait_recorded(self, count: int, timeout: float = TIMEOUT) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            keep_event(self.kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic())))
        return self.events


def execute(kc, code: str, cell_id: str) -> tuple[dict, list[dict]]:
    """A JupyterLab-style execute_request: the cell id in the metadata."""
    msg = kc.session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {},
         "allow_stdin": False, "stop_on_error": True},
        metadata={"cellId": cell_id, "deletedCells": [], "recordTiming": False},
    )
    kc.shell_channel.send(msg)
    reply = shell_reply(kc, msg["header"]["msg_id"])
    return reply, collect_iopub(kc, msg["header"]["msg_id"])


@pytest.fixture
def lineage(lineage_prefix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    notebook = tmp_path / "analysis.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    handle = start_kernel(LINEAGE, cwd=tmp_path)
    yield handle, notebook
    handle.close()


def test_comm_history_execution_and_diff(lineage):
    handle, notebook = lineage
    kc = handle.kc
    comm = Comm(kc)
    hello = comm.open()
    assert hello["event"] == "hello"
    assert hello["protocol_version"] == 1
    assert hello["notebook_path"] == str(notebook)
    assert hello["recording"] is True

    cells = [
        ("c1", "x = 6 * 7\nprint('x is', x)"),
        ("c2", "from IPython.display import display, HTML\ndisplay(HTML('<b>bold</b>'))\nx"),
        ("c3", "1/0"),
    ]
    received = {}
    for cell_id, code in cells:
        reply, msgs = execute(kc, code, cell_id)
        received[cell_id] = (reply, msgs)
    events = comm.wait_recorded(len(cells))
    assert [e["execution"]["cell_id"] for e in events] == ["c1", "c2", "c3"]
    assert [e["execution"]["status"] for e in events] == ["ok", "ok", "error"]
    # A `recorded` event carries the execution as a `history` row, field for field.
    rows = {i["id"]: i for i in comm.request("history", limit=10)["result"]["items"]}
    assert [e["execution"] for e in events] == [rows[e["execution"]["id"]] for e in events]

    # Paging: two pages of two, newest first, no overlap.
    page1 = comm.request("history", limit=2)
    assert page1["ok"], page1
    items1 = page1["result"]["items"]
    assert [i["cell_id"] for i in items1] == ["c3", "c2"]
    page2 = comm.request("history", limit=2, before=page1["result"]["next_cursor"])
    items2 = page2["result"]["items"]
    assert [i["cell_id"] for i in items2] == ["c1"]
    assert page2["result"]["next_cursor"] is None
    assert all(i["notebook_path"] == str(notebook) for i in items1 + items2)

    # One execution in full: its outputs equal what the client received.
    c2_id = next(i["id"] for i in items1 if i["cell_id"] == "c2")
    detail = comm.request("execution", execution_id=c2_id)["result"]
    got = [m["content"] for m in received["c2"][1] if m["msg_type"] in ("display_data", "execute_result")]
    stored = [o["output"] for o in detail["outputs"]]
    assert [o["output_type"] for o in stored] == ["display_data", "execute_result"]
    for client_out, stored_out in zip(got, stored):
        assert stored_out["data"] == client_out["data"]
    assert detail["code"] == cells[1][1]

    c1_detail = comm.request("execution", execution_id=items2[0]["id"])["result"]
    assert c1_detail["outputs"][0]["output"]["text"] == "x is 42\n"

    # Errors are searchable and filterable.
    errors = comm.request("history", status="error")["result"]["items"]
    assert [e["cell_id"] for e in errors] == ["c3"]
    found = comm.request("history", search="HTML")["result"]["items"]
    assert [e["cell_id"] for e in found] == ["c2"]

    # Edit and re-run c1: the diff shows the edited line.
    execute(kc, "x = 6 * 8\nprint('x is', x)", "c1")
    comm.wait_recorded(len(cells) + 1)
    runs = comm.request("history", cell_id="c1")["result"]["items"]
    assert len(runs) == 2
    diff = comm.request("diff", a=runs[1]["id"], b=runs[0]["id"])["result"]
    assert diff["code"]["changed"] is True
    assert "-x = 6 * 7" in diff["code"]["unified"]
    assert "+x = 6 * 8" in diff["code"]["unified"]
    stream = [o for o in diff["outputs"] if o["output_type_a"] == "stream"]
    assert stream and stream[0]["status"] == "changed"

    cells_summary = comm.request("cells")["result"]
    by_cell = {c["cell_id"]: c for c in cells_summary}
    assert by_cell["c1"]["runs"] == 2 and by_cell["c3"]["errors"] == 1

    health = comm.request("health")["result"]
    assert health["recording"] is True and health["written"] >= 4
    assert health["dropped_records"] == 0 and health["tap_dropped"] == 0

    # The real kernel never saw the comm.
    msg_id = kc.comm_info()
    info = shell_reply(kc, msg_id)
    assert comm.comm_id not in info["content"]["comms"]
    reply, msgs = execute(kc, "import sys\nprint(len(get_ipython().kernel.comm_manager.comms))", "c4")
    assert "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream") == "0\n"


def test_comm_requests_with_bad_signature_or_shape(lineage):
    handle, _ = lineage
    kc = handle.kc
    comm = Comm(kc)
    comm.open()

    # Signed with the wrong key: no answer at all, and nothing changes.
    wrong = Session(key=b"not-the-key", username=kc.session.username)
    msg_id = comm.send({"request": "history", "id": "forged"}, session=wrong)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except Exception:  # queue.Empty
            continue
        keep_event(msg)
        assert msg["parent_header"].get("msg_id") != msg_id, msg
        assert msg["content"].get("data", {}).get("id") != "forged", msg

    for data, code in [
        ({"request": "nope"}, "bad_request"),
        ({"request": "execution"}, "bad_request"),
        ({"request": "execution", "execution_id": 999999}, "not_found"),
        ({"request": "history", "limit": "ten"}, "bad_request"),
        ({"request": "history", "protocol_version": 2}, "unsupported_version"),
    ]:
        name = data.pop("request")
        reply = comm.request(name, **data)
        assert reply["ok"] is False, reply
        assert reply["error"]["code"] == code, reply

    # A request that is not even an object still gets an error reply.
    msg_id = comm.send("history")  # type: ignore[arg-type]
    msgs = collect_iopub(kc, msg_id)
    replies = [m["content"]["data"] for m in msgs if m["msg_type"] == "comm_msg"]
    assert replies and replies[0]["ok"] is False

    # The kernel is undisturbed.
    reply, msgs = execute(kc, "print(1 + 1)", "after")
    assert reply["content"]["status"] == "ok"
