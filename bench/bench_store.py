#!/usr/bin/env python3
"""History at scale (issue 4, "Performance"): a database of 100,000
executions across 50 notebooks, then the time of

- the first history page of one notebook   (goal ≤ 20 ms)
- a full-text search                       (goal ≤ 100 ms)
- a diff of two executions with 1 MB outputs (goal ≤ 50 ms)
- `jupyter-lineage log` in a terminal      (goal ≤ 100 ms, whole process)

The database is written through the store's own write path by the Rust
example `gen_db` (about a minute; kept in --dir and reused unless --fresh),
the queries are timed in process by the example `bench_store`, and `log`
runs under a pseudo-terminal so it formats and colours as a user sees it.
Not a pass/fail test: read the table.

    .venv/bin/python bench/bench_store.py [--dir DIR] [--fresh] [--executions N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "target" / "release"


def build() -> None:
    subprocess.run(["cargo", "build", "--release", "--bin", "jupyter-lineage",
                    "--example", "gen_db", "--example", "bench_store"],
                   cwd=REPO, check=True)


def generate(db: Path, executions: int, notebooks: int, fresh: bool) -> dict:
    meta_file = db.with_suffix(".meta.json")
    if not fresh and db.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("executions") == executions and meta.get("notebooks") == notebooks:
            print(f"reusing {db} ({meta['executions']:,} executions; --fresh rebuilds it)")
            return meta
    print(f"writing {executions:,} executions across {notebooks} notebooks to {db} …", flush=True)
    out = subprocess.run([str(TARGET / "examples" / "gen_db"), str(db),
                          "--executions", str(executions), "--notebooks", str(notebooks)],
                         check=True, capture_output=True, text=True).stdout
    meta = json.loads(out.strip().splitlines()[-1])
    meta_file.write_text(json.dumps(meta))
    print(f"  done in {meta['seconds']:.1f} s, {meta['bytes'] / 1e6:.1f} MB")
    return meta


def run_in_pty(argv: list[str]) -> tuple[float, bytes]:
    """Runs argv with stdout on a pseudo-terminal; returns (ms, output)."""
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="160")
    env.pop("NO_COLOR", None)
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    ms = (time.perf_counter() - t) * 1000
    os.close(master)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {b''.join(chunks)[-500:]!r}")
    return ms, b"".join(chunks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lineage-bench-store")
    ap.add_argument("--fresh", action="store_true", help="rebuild the database")
    ap.add_argument("--executions", type=int, default=100_000)
    ap.add_argument("--notebooks", type=int, default=50)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()

    if not args.no_build:
        build()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / "lineage.sqlite"
    meta = generate(db, args.executions, args.notebooks, args.fresh)

    out = subprocess.run([str(TARGET / "examples" / "bench_store"), str(db), meta["notebook"],
                          meta["needle"], str(meta["big"][0]), str(meta["big"][1]),
                          "--runs", str(args.runs)],
                         check=True, capture_output=True, text=True).stdout
    q = json.loads(out)

    binary = str(TARGET / "jupyter-lineage")
    cli = {}
    for name, argv in {
        "log": [binary, "log", "--db", str(db)],
        "log_notebook": [binary, "log", "--db", str(db), "--notebook",
                         Path(meta["notebook"]).name],
        "log_search": [binary, "log", "--db", str(db), "--search", meta["needle"]],
        "diff_1mb": [binary, "diff", "--db", str(db), str(meta["big"][0]), str(meta["big"][1])],
    }.items():
        run_in_pty(argv)  # warm the page cache and the binary
        times = sorted(run_in_pty(argv)[0] for _ in range(max(5, args.runs // 3)))
        cli[name] = {"median_ms": statistics.median(times), "max_ms": times[-1]}

    rows = [
        ("first history page, one notebook", q["history_page_one_notebook"], 20),
        ("full-text search", q["full_text_search"], 100),
        ("diff, two 1 MB outputs", q["diff_1mb_outputs"], 50),
        ("history page, all notebooks", q["history_page_latest"], 20),
    ]
    print()
    print(f"database: {meta['executions']:,} executions, {meta['notebooks']} notebooks, "
          f"{meta['bytes'] / 1e6:.1f} MB ({db})")
    print()
    print("in process (query layer, as the comm service runs it)")
    print(f"  {'query':<34}{'rows':>6}{'first':>10}{'median':>10}{'max':>10}{'goal':>9}")
    for label, r, goal in rows:
        print(f"  {label:<34}{r['rows']:>6}{r['first_ms']:>8.2f}ms{r['median_ms']:>8.2f}ms"
              f"{r['max_ms']:>8.2f}ms{'≤' + str(goal) + 'ms':>9}  "
              f"{'ok' if r['median_ms'] <= goal else 'OVER'}")
    print()
    print("whole process, stdout on a terminal (start-up, open, query, format)")
    print(f"  {'command':<34}{'median':>16}{'max':>10}{'goal':>9}")
    goals = {"log": 100, "log_notebook": 100, "log_search": 100, "diff_1mb": 100}
    for name, r in cli.items():
        goal = goals[name]
        print(f"  jupyter-lineage {name:<18}{r['median_ms']:>14.2f}ms{r['max_ms']:>8.2f}ms"
              f"{'≤' + str(goal) + 'ms':>9}  {'ok' if r['median_ms'] <= goal else 'OVER'}")
    print()
    print(json.dumps({"queries": q, "cli": cli, "db": meta}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
