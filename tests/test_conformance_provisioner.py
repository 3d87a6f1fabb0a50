"""The official `jupyter_kernel_test` suite through `lineage-provisioner`:
plain `python3`, started with the provisioner as jupyter_client's default,
must pass whatever plain `python3` passes without it (the direct pass set is
measured in this run, by test_conformance's own runner)."""

from __future__ import annotations

import time
import unittest

import pytest

from kernels import DIRECT
from provisioning import provisioner_default
from test_conformance import _Recorder, passed, run_suite, suite_classes, suite_test_names

_RESULTS: dict[str, tuple[str, str]] = {}
# (provisioner class, whether it wrapped the kernel) of each suite class.
_LAUNCHED: list[tuple[str, bool]] = []


def probed(cls: type[unittest.TestCase]) -> type[unittest.TestCase]:
    """`cls`, noting which provisioner started its kernel."""

    class Probed(cls):  # type: ignore[valid-type, misc]
        @classmethod
        def setUpClass(klass) -> None:
            super().setUpClass()
            prov = klass.km.provisioner  # type: ignore[attr-defined]
            _LAUNCHED.append((type(prov).__name__, bool(getattr(prov, "recorded", False))))

    Probed.__name__ = Probed.__qualname__ = f"{cls.__name__}[provisioner]"
    return Probed


def run_provisioned() -> dict[str, tuple[str, str]]:
    """The suite against python3 behind the provisioner (once per session)."""
    if not _RESULTS:
        suite = unittest.TestSuite()
        loader = unittest.TestLoader()
        for cls in suite_classes(DIRECT):
            suite.addTests(loader.loadTestsFromTestCase(probed(cls)))
        result = _Recorder()
        started = time.monotonic()
        with provisioner_default():
            suite.run(result)
        outcomes = result.outcomes
        for name in suite_test_names():
            if name not in outcomes:
                detail = "\n".join(tb for _, tb in result.errors) or "did not run"
                outcomes[name] = ("error", detail)
        outcomes["_seconds"] = ("info", f"{time.monotonic() - started:.1f}")
        _RESULTS.update(outcomes)
    return _RESULTS


@pytest.fixture(scope="module")
def direct_results(jupyter_home) -> dict[str, tuple[str, str]]:
    return run_suite(DIRECT)


@pytest.fixture(scope="module")
def provisioned_results(jupyter_home, lineage_bin) -> dict[str, tuple[str, str]]:
    return run_provisioned()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", suite_test_names())
def test_provisioner_passes_what_direct_passes(name, direct_results, provisioned_results):
    """One row per conformance test, so a regression names itself."""
    status, detail = direct_results[name]
    if status != "pass":
        pytest.skip(f"{name} does not pass against plain python3 either ({status}): {detail[-600:]}")
    pstatus, pdetail = provisioned_results[name]
    assert pstatus == "pass", f"{name} passes direct but is {pstatus} through the provisioner:\n{pdetail}"


@pytest.mark.timeout(300)
def test_provisioner_pass_set_is_superset(direct_results, provisioned_results):
    direct_ok, prov_ok = passed(direct_results), passed(provisioned_results)
    print(
        f"jupyter_kernel_test: direct {len(direct_ok)} pass ({direct_results['_seconds'][1]} s), "
        f"provisioner {len(prov_ok)} pass ({provisioned_results['_seconds'][1]} s)"
    )
    assert _LAUNCHED == [("LineageProvisioner", True)] * 2, _LAUNCHED
    assert not direct_ok - prov_ok, {n: provisioned_results[n] for n in sorted(direct_ok - prov_ok)}
