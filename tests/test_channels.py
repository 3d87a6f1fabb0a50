"""Issue 2, points 3 and 7: stdin, several clients, control-channel requests
the proxy does not know (usage_request) and kernel subshells. Each test runs
against plain python3 and through python3-lineage."""

from __future__ import annotations

import threading
import time

import pytest

from kernels import (
    start_kernel,
    TIMEOUT,
    collect_iopub,
    control_request,
    run_cell,
    shell_reply,
    stdout_of,
)


def test_input_round_trips_over_stdin(kernel):
    kc = kernel.kc
    msg_id = kc.execute("name = input('who? ')\nprint('hello', name)", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=TIMEOUT)
    assert request["msg_type"] == "input_request"
    assert request["content"]["prompt"] == "who? "
    assert request["parent_header"]["msg_id"] == msg_id
    kc.input("lineage")
    reply = shell_reply(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    assert "hello lineage\n" in stdout_of(collect_iopub(kc, msg_id))
    # getpass goes over the same channel, with password=True
    msg_id = kc.execute("import getpass\nsecret = getpass.getpass('pw: ')\nprint(len(secret))",
                        allow_stdin=True)
    request = kc.get_stdin_msg(timeout=TIMEOUT)
    assert request["content"] == {"prompt": "pw: ", "password": True}
    kc.input("12345")
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok"
    assert stdout_of(collect_iopub(kc, msg_id)) == "5\n"


def test_two_clients_both_get_iopub(kernel):
    first, second = kernel.kc, kernel.client()
    msg_id = first.execute("print('seen by all')\n21 * 2")
    assert shell_reply(first, msg_id)["content"]["status"] == "ok"
    for kc in (first, second):
        msgs = collect_iopub(kc, msg_id)
        assert stdout_of(msgs) == "seen by all\n"
        results = [m for m in msgs if m["msg_type"] == "execute_result"]
        assert results and results[0]["content"]["data"]["text/plain"] == "42"
    # and the second client's own requests are answered to it, not the first
    msg_id = second.execute("print('from second')")
    assert shell_reply(second, msg_id)["content"]["status"] == "ok"
    assert stdout_of(collect_iopub(first, msg_id)) == "from second\n"


def test_usage_request_is_answered_by_the_real_kernel(kernel):
    """jupyter-resource-usage sends usage_request on control; ipykernel answers
    with usage_reply. Through the proxy the answer must be the real kernel's."""
    reply = control_request(kernel.kc, "usage_request")
    assert reply["msg_type"] == "usage_reply"
    content = reply["content"]
    expected = {"hostname", "pid", "kernel_cpu", "kernel_memory", "cpu_count", "host_virtual_memory"}
    assert expected <= set(content), content
    assert content["pid"] == kernel.real_kernel().pid
    assert content["kernel_memory"] > 0


def test_unknown_shell_request_passes_through(kernel):
    """A message type nobody knows reaches the kernel (ipykernel logs and
    ignores it) and does not disturb the next request."""
    kc = kernel.kc
    kc.shell_channel.send(kc.session.msg("lineage_unknown_request", {"anything": [1, 2]}))
    reply, msgs = run_cell(kc, "print('after unknown')")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "after unknown\n"


def test_subshells(kernel):
    """ipykernel 7 advertises 'kernel subshells': create one on control, run
    code in it while the main shell is busy, list and delete it."""
    kc = kernel.kc
    info = shell_reply(kc, kc.kernel_info())
    assert "kernel subshells" in info["content"].get("supported_features", []), info["content"]

    created = control_request(kc, "create_subshell_request")
    assert created["msg_type"] == "create_subshell_reply"
    subshell_id = created["content"]["subshell_id"]
    listed = control_request(kc, "list_subshell_request")
    assert subshell_id in listed["content"]["subshell_id"]

    # Keep the main shell busy for a while ...
    busy_id = kc.execute("import time; time.sleep(3); print('main done')")
    time.sleep(0.5)
    # ... and run code in the subshell meanwhile: subshell_id rides in the header.
    msg = kc.session.msg("execute_request", {
        "code": "print('from subshell')", "silent": False, "store_history": False,
        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
    })
    msg["header"]["subshell_id"] = subshell_id
    started = time.monotonic()
    kc.shell_channel.send(msg)
    replies: dict[str, dict] = {}
    while not {busy_id, msg["header"]["msg_id"]} <= replies.keys():
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        replies[reply["parent_header"]["msg_id"]] = reply
        if reply["parent_header"]["msg_id"] == msg["header"]["msg_id"]:
            sub_elapsed = time.monotonic() - started
            main_pending = busy_id not in replies
    sub_reply = replies[msg["header"]["msg_id"]]
    assert sub_reply["content"]["status"] == "ok"
    assert sub_reply["parent_header"].get("subshell_id") == subshell_id
    assert main_pending, "subshell reply came only after the main shell finished"
    assert sub_elapsed < 2.5
    assert stdout_of(collect_iopub(kc, msg["header"]["msg_id"])) == "from subshell\n"
    assert replies[busy_id]["content"]["status"] == "ok"

    deleted = control_request(kc, "delete_subshell_request", {"subshell_id": subshell_id})
    assert deleted["content"]["status"] == "ok"
    assert subshell_id not in control_request(kc, "list_subshell_request")["content"]["subshell_id"]


def test_comm_round_trip_from_client(kernel):
    """A client-opened comm reaches a target registered in the kernel, and the
    kernel's answer comes back on iopub (what widgets do)."""
    kc = kernel.kc
    reply, _ = run_cell(kc, (
        "def _target(comm, open_msg):\n"
        "    @comm.on_msg\n"
        "    def _echo(msg):\n"
        "        comm.send({'echo': msg['content']['data']})\n"
        "get_ipython().kernel.comm_manager.register_target('lineage_echo', _target)"
    ))
    assert reply["content"]["status"] == "ok"
    comm_id = "client-comm-1"
    kc.shell_channel.send(kc.session.msg("comm_open", {
        "comm_id": comm_id, "target_name": "lineage_echo", "data": {}}))
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"n": 7}})
    kc.shell_channel.send(msg)
    deadline = time.monotonic() + TIMEOUT
    while True:
        got = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        if got["msg_type"] == "comm_msg" and got["content"]["comm_id"] == comm_id:
            assert got["content"]["data"] == {"echo": {"n": 7}}
            break


def test_concurrent_clients_do_not_mix_replies(kernel):
    """Replies are routed back to the client that asked (ROUTER identities)."""
    clients = [kernel.kc, kernel.client(), kernel.client()]
    errors: list[str] = []

    def work(i, kc):
        for j in range(10):
            msg_id = kc.execute(f"{i} * 100 + {j}", silent=False)
            reply = kc.get_shell_msg(timeout=TIMEOUT)
            while reply["msg_type"] == "kernel_info_reply":  # left over from wait_for_ready
                reply = kc.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"]["msg_id"] != msg_id:
                errors.append(f"client {i} got a reply to someone else's request")
            elif reply["content"]["status"] != "ok":
                errors.append(f"client {i}: {reply['content']}")

    threads = [threading.Thread(target=work, args=(i, kc)) for i, kc in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not errors
    assert not any(t.is_alive() for t in threads)


@pytest.mark.timeout(60)
def test_server_with_transport_encryption_auto(kernel_name, tmp_path):
    """jupyter_client 8.10's `transport_encryption='auto'` provisions CurveZMQ
    keys when the kernelspec's metadata lists 'curve' in
    `supported_encryption` (ipykernel's does). A lineage kernelspec must not
    promise what the proxy cannot do: the kernel still has to work."""
    handle = start_kernel(kernel_name, cwd=tmp_path, transport_encryption="auto")
    try:
        reply, msgs = run_cell(handle.kc, "print('encrypted or not, it runs')")
        assert reply["content"]["status"] == "ok"
        assert stdout_of(msgs) == "encrypted or not, it runs\n"
    finally:
        handle.close()
