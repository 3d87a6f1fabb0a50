"""Who the kernel thinks sent a request. Code in the kernel that addresses
the requesting client reads the routing identities of the request
(ipykernel's `kernel._parent_ident`); through the proxy they must be the
client's own, exactly as without it, with several clients attached."""

from __future__ import annotations

import ast

from kernels import (
    TIMEOUT,
    collect_iopub,
    control_request,
    run_cell,
    shell_reply,
    stdout_of,
)


def parent_ident(kc, channel: str) -> list[bytes]:
    """The identities the kernel recorded for the last request on `channel`,
    read by a cell sent from `kc`."""
    reply, msgs = run_cell(kc, f"print(repr(list(get_ipython().kernel._parent_ident[{channel!r}])))")
    assert reply["content"]["status"] == "ok", reply["content"]
    return ast.literal_eval(stdout_of(msgs).strip())


def test_the_kernel_sees_each_clients_own_identity(kernel):
    """With two clients attached, a shell request from each is seen by the
    kernel as coming from that client's routing id alone (one frame: the id
    jupyter_client gives its sockets, the session id), and so is a control
    request; the same as direct."""
    first, second = kernel.kc, kernel.client()
    for kc in (first, second, first):
        assert parent_ident(kc, "shell") == [kc.session.bsession]
    for kc in (second, first):
        assert control_request(kc, "kernel_info_request")["msg_type"] == "kernel_info_reply"
        assert parent_ident(kc, "control") == [kc.session.bsession]


def test_input_goes_to_the_client_that_asked(kernel):
    """input() in a cell sent by one of two clients reaches that client only,
    and its answer is the one the cell gets; then the same the other way."""
    first, second = kernel.kc, kernel.client()
    for asking, other, answer in ((first, second, "from first"), (second, first, "from second")):
        msg_id = asking.execute("print(input('who? '))", allow_stdin=True)
        request = asking.get_stdin_msg(timeout=TIMEOUT)
        assert request["msg_type"] == "input_request"
        assert request["parent_header"]["msg_id"] == msg_id
        asking.input(answer)
        assert shell_reply(asking, msg_id)["content"]["status"] == "ok"
        assert stdout_of(collect_iopub(asking, msg_id)) == answer + "\n"
        assert not other.stdin_channel.msg_ready(), "the other client got the input_request"
