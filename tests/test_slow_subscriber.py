"""A client that subscribes to iopub and never reads must not stall iopub for
the others: like libzmq's PUB (which ipykernel uses), the proxy drops what
does not fit in that subscriber's queue, and everyone else keeps getting
every message."""

from __future__ import annotations

import time

import pytest
import zmq

from kernels import TIMEOUT, collect_iopub, run_cell, shell_reply, stdout_of

LINES = 50_000
DISPLAYS = 3
DISPLAY_BYTES = 2_000_000


def endpoint(info: dict, channel: str) -> str:
    port = info[f"{channel}_port"]
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


def silent_subscriber(ctx: zmq.Context, info: dict, kc) -> zmq.Socket:
    """A SUB with tiny buffers that is subscribed (it has seen a message)
    and will read nothing more."""
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    sock.rcvhwm = 10
    sock.setsockopt(zmq.RCVBUF, 4096)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint(info, "iopub"))
    deadline = time.monotonic() + TIMEOUT
    while not sock.poll(100):
        assert time.monotonic() < deadline, "the silent subscriber never got a message"
        run_cell(kc, "pass")
    return sock


@pytest.mark.timeout(300)
def test_a_subscriber_that_never_reads_does_not_stall_the_others(kernel):
    kc = kernel.kc
    ctx = zmq.Context()
    try:
        silent = silent_subscriber(ctx, kernel.km.get_connection_info(), kc)
        code = (
            "from IPython.display import display\n"
            f"for i in range({LINES}):\n"
            "    print(i, flush=True)\n"
            f"for i in range({DISPLAYS}):\n"
            f"    display({{'text/plain': str(i) * {DISPLAY_BYTES}}}, raw=True)\n"
            "print('done', flush=True)\n"
        )
        msg_id = kc.execute(code)
        # Read iopub while the cell runs, as a live client does: one that
        # stops reading for 50,000 messages is itself a slow subscriber
        # (libzmq drops for it too, at its RCVHWM plus the kernel's SNDHWM).
        msgs = collect_iopub(kc, msg_id, timeout=280)
        reply = shell_reply(kc, msg_id, timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]

        expected = "".join(f"{i}\n" for i in range(LINES)) + "done\n"
        assert stdout_of(msgs) == expected
        displays = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "display_data"]
        assert displays == [str(i) * DISPLAY_BYTES for i in range(DISPLAYS)]

        # Still responsive, the silent subscriber still connected.
        started = time.monotonic()
        reply, msgs = run_cell(kc, "print(6 * 7)", timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
        assert stdout_of(msgs) == "42\n"
        assert time.monotonic() - started < 10
        assert not silent.closed
    finally:
        ctx.destroy(linger=0)
