"""jupyter-lineage: a Jupyter proxy kernel that records every executed cell.

The work is done by the `jupyter-lineage` binary that this wheel installs into
the environment's scripts folder. This package only finds it:
`python -m jupyter_lineage ARGS` runs `jupyter-lineage ARGS`, so a kernelspec
whose argv starts with `python` (which jupyter_client replaces with its own
`sys.executable`) runs the binary of the environment it was installed in.
"""

from __future__ import annotations

# Kept to what the interpreter has loaded anyway: this runs on every kernel
# start (pathlib, shutil and re would add ~10 ms).
import os
import sys
import sysconfig

__all__ = ["binary", "kernel_argv", "main"]

BINARY_NAME = "jupyter-lineage"

# Names a kernelspec may use for "the Python of this environment".
_BARE_PYTHONS = ("python", "python3")


def _scripts_dirs() -> "list[str]":
    """Where pip puts the wheel's binary, most likely first: the scripts folder
    of the running interpreter's environment (a venv's bin/), the user scheme's
    (`pip install --user`), then the folder holding sys.executable."""
    dirs: "list[str]" = []
    schemes = [None]
    try:
        schemes.append(sysconfig.get_preferred_scheme("user"))
    except (AttributeError, KeyError):  # Python < 3.10
        schemes.append(f"{os.name}_user")
    for scheme in schemes:
        try:
            path = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        if path:
            dirs.append(path)
    if sys.executable:
        dirs.append(os.path.dirname(sys.executable))
    seen: "set[str]" = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def binary() -> str:
    """The `jupyter-lineage` binary installed with this package.

    `JUPYTER_LINEAGE_BIN` overrides the search (for development builds)."""
    override = os.environ.get("JUPYTER_LINEAGE_BIN")
    if override:
        return override
    for folder in _scripts_dirs():
        candidate = os.path.join(folder, BINARY_NAME)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    import shutil  # only on this slow path

    found = shutil.which(BINARY_NAME)
    if found:
        return found
    searched = ", ".join(_scripts_dirs())
    raise FileNotFoundError(
        f"the {BINARY_NAME} binary is not installed next to this Python "
        f"({sys.executable}); searched {searched} and PATH. "
        "Reinstall with `pip install --force-reinstall jupyter-lineage`."
    )


def _is_bare_python(arg: str) -> bool:
    if "/" in arg or os.sep in arg:
        return False
    name = arg[:-4] if arg.lower().endswith(".exe") else arg
    if name in _BARE_PYTHONS:
        return True
    # python3.11, python3.12, ...
    return name.startswith("python3.") and name[len("python3.") :].isdigit()


def kernel_argv(args: list[str], python: str | None = None) -> list[str]:
    """Rewrites `kernel … -- python …` so the wrapped kernel runs on this very
    interpreter.

    jupyter_client replaces only the kernelspec's argv[0]; the real kernel's
    command after `--` is launched by the proxy, which would look `python` up
    on PATH — and on a JupyterHub PATH often points at another environment
    (or at none with ipykernel). The interpreter running this shim is the one
    the kernelspec belongs to, so a bare `python`/`python3`/`python3.X` right
    after `--` becomes sys.executable. Anything else is left alone."""
    python = python or sys.executable
    if not python or not args or args[0] != "kernel" or "--" not in args:
        return list(args)
    out = list(args)
    sep = out.index("--")
    if sep + 1 < len(out) and _is_bare_python(out[sep + 1]):
        out[sep + 1] = python
    return out


def main(argv: list[str] | None = None) -> "int | None":
    """Replaces this process with the binary (same pid, so the signals
    jupyter_client sends reach the proxy itself)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        exe = binary()
    except FileNotFoundError as e:
        print(f"jupyter_lineage: {e}", file=sys.stderr)
        return 127
    args = kernel_argv(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, [exe, *args])
    return None  # not reached
