"""Issue 2, point 6: messages signed with the wrong key, unsigned messages and
garbage on every channel are dropped; the kernel keeps serving its client."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socket
import time

import zmq
from jupyter_client.session import Session

from kernels import TIMEOUT, run_cell, shell_reply, stdout_of

DELIM = b"<IDS|MSG>"


def endpoint(info: dict, channel: str) -> str:
    port = info[f"{channel}_port"]
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


def signed(key: bytes, parts: list[bytes]) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest().encode()


def garbage_multiparts(rng: random.Random, key: bytes) -> list[list[bytes]]:
    """Frames that are not valid messages, in as many shapes as we can think of."""
    header = json.dumps({"msg_id": "g", "msg_type": "execute_request", "session": "g",
                         "username": "g", "date": "2026-01-01T00:00:00Z", "version": "5.3"}).encode()
    not_json = [b"{not json", b"\xff\xfe\x00", b"[]", b"null"]
    return [
        [b""],
        [DELIM],
        [DELIM, b""],
        [DELIM, b"deadbeef"],
        [b"id", DELIM, b"sig", b"{}", b"{}", b"{}"],  # too few frames
        [DELIM, b"", header, b"{}", b"{}", b"{}"],  # unsigned
        [DELIM, signed(key, not_json), *not_json],  # valid signature over garbage
        [DELIM, signed(key, [header, b"{}", b"{}", b"\x00"]), header, b"{}", b"{}", b"\x00"],
        [rng.randbytes(rng.randint(1, 4096)) for _ in range(rng.randint(1, 8))],
        [rng.randbytes(200_000)],
        [b"no delimiter at all", b"x" * 10],
    ]


def test_wrong_key_and_garbage_are_dropped(kernel, tmp_path):
    info = kernel.km.get_connection_info()
    key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
    target = tmp_path / "should-not-exist"
    launched_pid = kernel.pid
    rng = random.Random(20261128)
    ctx = zmq.Context()
    sockets = []
    try:
        # 1. A well-formed request signed with the wrong key, on shell and control.
        bad = Session(key=b"not-the-key", signature_scheme=info["signature_scheme"])
        code = f"open({str(target)!r}, 'w').write('signed with the wrong key')"
        for channel, msg_type, content in [
            ("shell", "execute_request", {"code": code, "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False,
                                          "stop_on_error": True}),
            ("control", "shutdown_request", {"restart": False}),
        ]:
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(endpoint(info, channel))
            sockets.append(sock)
            bad.send(sock, bad.msg(msg_type, content))

        # 2. Garbage multipart messages on every channel.
        for channel, kind in [("shell", zmq.DEALER), ("control", zmq.DEALER),
                              ("stdin", zmq.DEALER), ("hb", zmq.DEALER), ("iopub", zmq.XSUB)]:
            sock = ctx.socket(kind)
            sock.linger = 0
            sock.connect(endpoint(info, channel))
            sockets.append(sock)
            for frames in garbage_multiparts(rng, key):
                if kind == zmq.XSUB:
                    # What a subscriber may send upstream: frames that are no
                    # (un)subscription, and odd topics. (Not a topic holding
                    # b"<IDS|MSG>": ipykernel itself would then send every
                    # client an iopub_welcome that no client can parse.)
                    for frame in (b"", b"\x02" + rng.randbytes(64), b"\x01" + rng.randbytes(16),
                                  b"\x00" + rng.randbytes(16), rng.randbytes(3000)):
                        sock.send(frame)
                else:
                    sock.send_multipart(frames)

        # 3. Bytes that are not even ZMTP, straight on each TCP port.
        if info["transport"] == "tcp":
            for channel in ("shell", "control", "stdin", "hb", "iopub"):
                for payload in (rng.randbytes(1024), b"\xff" + b"\x00" * 8 + b"\x7f\x03" + rng.randbytes(64)):
                    with socket.create_connection((info["ip"], info[f"{channel}_port"]), timeout=5) as raw:
                        raw.sendall(payload)
        time.sleep(1.0)
    finally:
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()

    # The real client is still served, by the same process, on every channel.
    assert kernel.km.is_alive()
    assert kernel.pid == launched_pid
    reply, msgs = run_cell(kernel.kc, "print('still serving')")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "still serving\n"
    assert shell_reply(kernel.kc, kernel.kc.kernel_info())["msg_type"] == "kernel_info_reply"
    msg = kernel.kc.session.msg("kernel_info_request")
    kernel.kc.control_channel.send(msg)
    assert kernel.kc.control_channel.get_msg(timeout=TIMEOUT)["msg_type"] == "kernel_info_reply"
    msg_id = kernel.kc.execute("input('ok? ')", allow_stdin=True)
    assert kernel.kc.get_stdin_msg(timeout=TIMEOUT)["content"]["prompt"] == "ok? "
    kernel.kc.input("yes")
    assert shell_reply(kernel.kc, msg_id)["content"]["status"] == "ok"
    assert kernel.kc.is_alive()  # heartbeat still echoes
    assert not os.path.exists(target), "a request signed with the wrong key was executed"
