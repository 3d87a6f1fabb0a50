"""`lineage-provisioner`: records every kernel without renaming it.

jupyter_client starts kernels through a provisioner (entry-point group
`jupyter_client.kernel_provisioners`). This one is jupyter_client's own
LocalProvisioner with one change: the kernelspec's command is launched behind
`jupyter-lineage kernel`, with the same argv a lineage kernelspec has

    jupyter-lineage kernel -f CONNECTION_FILE --kernelspec NAME -- KERNEL ARGV…

so interrupt, restart, shutdown and the watch on the server's pid behave
exactly as with a `*-lineage` kernelspec, while the notebook keeps the real
kernelspec's name (`python3`), and opens anywhere.

It is chosen for every kernel by `JUPYTER_DEFAULT_PROVISIONER_NAME=
lineage-provisioner` (or `KernelProvisionerFactory.default_provisioner_name`
in Jupyter's config), or for one kernelspec by its
`metadata.kernel_provisioner` (what `jupyter lineage enable` writes).
"""

from __future__ import annotations

import os
import subprocess
import warnings
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from . import BINARY_NAME, binary

__all__ = ["LineageProvisioner", "already_proxied", "wrap_argv"]

#: The name it is registered under (pyproject.toml's entry point).
PROVISIONER_NAME = "lineage-provisioner"

# A lineage kernelspec marks itself with this key under `metadata`
# (kernel/src/install.rs, METADATA_KEY).
_METADATA_KEY = "jupyter_lineage"

# The binary is checked once per process: a kernel start must not pay for a
# subprocess every time, and the warning is said once, not per kernel.
_checked: "dict[str, str | None]" = {}
_warned = False


def already_proxied(argv: "list[str]", metadata: "dict[str, Any] | None" = None) -> bool:
    """Whether a kernelspec's command already runs through jupyter-lineage
    (a `*-lineage` kernelspec): wrapping it again would record every cell
    twice and stack two proxies."""
    if (metadata or {}).get(_METADATA_KEY, {}).get("wraps"):
        return True
    for arg in argv[:4]:
        base = os.path.basename(arg)
        if base == BINARY_NAME or arg == "jupyter_lineage":
            return True
    return False


def wrap_argv(
    cmd: "list[str]", connection_file: str, kernelspec: "str | None", lineage: str
) -> "list[str]":
    """The launch command behind the proxy.

    `cmd` is the kernel's command as jupyter_client formatted it: the
    connection file's path is already substituted. The proxy gives the real
    kernel a connection file of its own (private IPC sockets), so that path
    goes back to the `{connection_file}` placeholder the proxy replaces."""
    inner = [arg.replace(connection_file, "{connection_file}") for arg in cmd]
    out = [lineage, "kernel", "-f", connection_file]
    if kernelspec:
        out += ["--kernelspec", kernelspec]
    return [*out, "--", *inner]


def _usable_binary() -> "tuple[str | None, str | None]":
    """(path, None) when the binary runs here, else (None, why)."""
    if "result" in _checked:
        return _checked["result"], _checked.get("why")
    path: "str | None" = None
    why: "str | None" = None
    try:
        candidate = binary()
        # `--version` proves it executes on this machine (a binary for another
        # architecture, or on a noexec mount, fails here rather than at start).
        done = subprocess.run(
            [candidate, "--version"], capture_output=True, timeout=10, check=False
        )
        if done.returncode == 0:
            path = candidate
        else:
            why = f"{candidate} --version exited with {done.returncode}"
    except (OSError, subprocess.SubprocessError) as e:
        why = str(e)
    _checked["result"] = path
    _checked["why"] = why
    return path, why


class LineageProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A LocalProvisioner whose kernels run behind the lineage proxy."""

    #: Whether the running kernel is recorded (False after a fallback).
    recorded = False

    async def pre_launch(self, **kwargs: Any) -> "dict[str, Any]":
        km = self.parent
        spec = self.kernel_spec
        argv = list(getattr(spec, "argv", None) or [])
        metadata = dict(getattr(spec, "metadata", None) or {})
        lineage, why = (None, None)
        if already_proxied(argv, metadata):
            self.recorded = True
            return await super().pre_launch(**kwargs)
        if km is not None and _encryption_required(km, kwargs):
            why = "transport_encryption='required' (the proxy speaks plain ZMTP)"
        else:
            lineage, why = _usable_binary()
        if lineage is None:
            self._warn_once(why)
            self.recorded = False
            return await super().pre_launch(**kwargs)
        # The proxy serves clients over plain ZMTP: CurveZMQ keys in the
        # connection file (transport_encryption='auto' with a kernelspec that
        # declares `supported_encryption`) would make the client encrypt and
        # the proxy never answer. A lineage kernelspec drops the declaration
        # for the same reason.
        kwargs["transport_encryption"] = "disabled"
        kwargs = await super().pre_launch(**kwargs)
        if km is None:  # no manager: nothing to point the proxy at
            self.recorded = False
            return kwargs
        connection_file = os.path.realpath(km.connection_file)
        name = getattr(km, "kernel_name", None) or getattr(spec, "name", None)
        kwargs["cmd"] = wrap_argv(kwargs["cmd"], connection_file, name or None, lineage)
        self.recorded = True
        return kwargs

    def _warn_once(self, why: "str | None") -> None:
        global _warned
        if _warned:
            return
        _warned = True
        message = (
            f"jupyter-lineage: {PROVISIONER_NAME} cannot wrap kernels "
            f"({why or 'the jupyter-lineage binary is not usable'}); starting them "
            "without recording. `jupyter lineage doctor` says more."
        )
        from traitlets.config import Application

        if Application.initialized():  # a server or app: its log is seen
            self.log.warning(message)
        else:  # a script: traitlets' own logger has only a NullHandler
            warnings.warn(message, RuntimeWarning, stacklevel=2)


def _encryption_required(km: Any, kwargs: "dict[str, Any]") -> bool:
    value = kwargs.get("transport_encryption", getattr(km, "transport_encryption", "disabled"))
    return str(value).lower() == "required"
