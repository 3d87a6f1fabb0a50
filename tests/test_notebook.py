"""Issue 2, point 2: nbclient runs one notebook through plain python3 and
through python3-lineage, and the saved outputs are the same."""

from __future__ import annotations

import copy

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from kernels import DIRECT, LINEAGE

CELLS = [
    # stdout and stderr
    "import sys\nprint('hello from stdout')\nprint('hello from stderr', file=sys.stderr)",
    # execute_result
    "6 * 7",
    # rich display: a library object and a custom _repr_*_
    "from IPython.display import HTML, Markdown, display\n"
    "display(HTML('<b>bold</b>'))\n"
    "class Rich:\n"
    "    def _repr_html_(self):\n"
    "        return '<i>rich</i>'\n"
    "    def _repr_markdown_(self):\n"
    "        return '*rich*'\n"
    "    def __repr__(self):\n"
    "        return 'Rich()'\n"
    "display(Rich())\n"
    "display({'application/json': {'a': [1, 2]}, 'text/plain': 'json'}, raw=True)",
    # update_display through a display_id
    "handle = display(Markdown('before'), display_id=True)\n"
    "handle.update(Markdown('after'))",
    # clear_output: only what comes after survives
    "from IPython.display import clear_output\n"
    "print('to be cleared')\n"
    "clear_output()\n"
    "print('kept')",
    # clear_output(wait=True): cleared when the next output arrives
    "print('first')\nclear_output(wait=True)\nprint('second')",
    # an error (the run goes on: allow_errors)
    "1 / 0",
    # widgets-style comm traffic: comm_open then comm_msg with a state update,
    # on the target nbclient records as widget state
    "from comm import create_comm\n"
    "comm = create_comm(target_name='jupyter.widget', comm_id='lineage-test-comm',\n"
    "            data={'state': {'_model_name': 'LineageTestModel',\n"
    "                            '_model_module': 'lineage-test',\n"
    "                            '_model_module_version': '1.0.0',\n"
    "                            'value': 1},\n"
    "                  'buffer_paths': []},\n"
    "            metadata={'version': '2.1.0'})\n"
    "comm.send({'method': 'update', 'state': {'value': 2}, 'buffer_paths': []})\n"
    "print('comm sent')",
    # the error did not stop the kernel
    "print('still running')",
]


def run_notebook(kernel_name: str, cwd) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(src) for src in CELLS])
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=60,
        startup_timeout=60,
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def joined_streams(outputs: list) -> list:
    """Adjacent stream outputs of one name joined: where the kernel's 0.2 s
    flush timer cuts a stream is timing, not content."""
    out: list = []
    for o in outputs:
        if o.output_type == "stream" and out and out[-1].output_type == "stream" and out[-1].name == o.name:
            out[-1].text += o.text
        else:
            out.append(o)
    return out


def normalised(nb: nbformat.NotebookNode) -> dict:
    """What a user compares: every cell's outputs and execution count, and the
    widget state nbclient saved from the comm traffic."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cells.append({"execution_count": cell.execution_count, "outputs": joined_streams(cell.outputs)})
    return {"cells": cells, "widgets": nb.metadata.get("widgets")}


@pytest.fixture(scope="module")
def direct_notebook(jupyter_home, tmp_path_factory):
    return run_notebook(DIRECT, tmp_path_factory.mktemp("nb-direct"))


@pytest.mark.timeout(180)
def test_direct_notebook_has_every_kind_of_output(direct_notebook):
    """The baseline exercises what it claims to (else equality means little)."""
    outs = [o for c in direct_notebook.cells for o in c.outputs]
    kinds = {(o.output_type, o.get("name")) for o in outs}
    assert ("stream", "stdout") in kinds and ("stream", "stderr") in kinds
    assert any(o.output_type == "execute_result" for o in outs)
    assert any(o.output_type == "error" and o.ename == "ZeroDivisionError" for o in outs)
    mimes = {m for o in outs if o.output_type == "display_data" for m in o.data}
    assert {"text/html", "text/markdown", "application/json"} <= mimes
    updated = direct_notebook.cells[3].outputs
    assert [o.data["text/markdown"] for o in updated] == ["after"]
    assert [o.text for o in direct_notebook.cells[4].outputs] == ["kept\n"]
    assert [o.text for o in direct_notebook.cells[5].outputs] == ["second\n"]
    state = direct_notebook.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    assert state["lineage-test-comm"]["state"]["value"] == 2
    assert direct_notebook.cells[-1].outputs[0].text == "still running\n"


@pytest.mark.timeout(180)
def test_lineage_notebook_outputs_equal_direct(direct_notebook, lineage_prefix, tmp_path):
    proxied = run_notebook(LINEAGE, tmp_path)
    want, got = normalised(direct_notebook), normalised(proxied)
    for i, (w, g) in enumerate(zip(want["cells"], got["cells"])):
        assert g == w, f"cell {i} differs:\n{CELLS[i]}"
    assert got["widgets"] == want["widgets"], "comm traffic (widget state) differs"
    assert got == want
