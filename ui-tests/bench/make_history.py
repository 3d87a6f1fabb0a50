"""Fill a notebook's lineage history with N runs through the real kernel.

    python make_history.py NOTEBOOK.ipynb N [KERNELS]

Starts the notebook's lineage kernel (python3-lineage) with jupyter_client the
way jupyter_server would (JPY_SESSION_NAME = the notebook's full path, cwd =
its folder), and sends N execute_requests spread over the notebook's cells
(JupyterLab's `cellId` metadata), pipelined in windows so the run takes
seconds, not minutes. Every run goes through the proxy's real recorder, so
the database the panel then reads is exactly what users would have.
KERNELS kernels (default 4) run side by side, as several sessions of the same
notebook would, each with its share of the runs.
"""

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from jupyter_client.manager import KernelManager


def run_kernel(path: str, first: int, n: int) -> tuple[int, int]:
    """Run executions first … first+n-1 in one kernel; return (done, errors)."""
    window = 200
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    cell_ids = [c["id"] for c in nb["cells"] if c["cell_type"] == "code"]
    kernel = nb["metadata"]["kernelspec"]["name"]

    env = dict(os.environ, JPY_SESSION_NAME=path)
    km = KernelManager(kernel_name=kernel)
    km.start_kernel(env=env, cwd=os.path.dirname(path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        pending: set[str] = set()
        sent = done = errors = 0
        while done < n:
            while sent < n and len(pending) < window:
                i = first + sent
                cell = cell_ids[i % len(cell_ids)]
                code = (
                    f"x_{i % len(cell_ids)} = {i}\n"
                    f"print('run {i} of cell {i % len(cell_ids)}', x_{i % len(cell_ids)} * 2)"
                )
                msg = kc.session.msg(
                    "execute_request",
                    {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": False,
                    },
                    metadata={"cellId": cell, "recordTiming": False},
                )
                kc.shell_channel.send(msg)
                pending.add(msg["header"]["msg_id"])
                sent += 1
            reply = kc.get_shell_msg(timeout=60)
            parent = reply["parent_header"].get("msg_id")
            if parent in pending:
                pending.discard(parent)
                done += 1
                if reply["content"].get("status") != "ok":
                    errors += 1
        # Let the recorder catch up before the kernel goes away.
        time.sleep(1.0)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return done, errors


def main() -> int:
    path = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2])
    kernels = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    shares = [n // kernels + (1 if k < n % kernels else 0) for k in range(kernels)]
    starts = [sum(shares[:k]) for k in range(kernels)]
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=kernels) as pool:
        results = list(pool.map(run_kernel, [path] * kernels, starts, shares))
    dt = time.monotonic() - t0
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    print(
        json.dumps(
            {
                "runs": done,
                "errors": errors,
                "kernels": kernels,
                "seconds": round(dt, 2),
                "runs_per_s": round(done / dt, 1),
            }
        )
    )
    return 0 if errors == 0 and done == n else 1


if __name__ == "__main__":
    sys.exit(main())
