"""The wheel users `pip install`: its layout, and a clean install of it.

`make wheel` builds dist/jupyter_lineage-*.whl (the fixture runs it; it is a
no-op when the wheel is up to date; JUPYTER_LINEAGE_WHEEL=path uses a given
wheel instead). The wheel goes into a fresh venv made with Debian's
`/usr/bin/python3 -m venv` next to jupyterlab, ipykernel and nbclient from
PyPI, and everything Jupyter runs there runs with a PATH that holds no Node
and an empty HOME: what a user gets from `pip install jupyter-lineage`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")
WHEEL_MAX_BYTES = 15_000_000
LINEAGE = "python3-lineage"
LABEXT = "jupyter-lineage"
# What the clean venv gets besides the wheel.
VENV_REQUIREMENTS = ["jupyterlab>=4,<5", "ipykernel>=6", "nbclient>=0.10", "nbformat>=5.10"]
EXPECTED_ARGV = [
    "python", "-m", "jupyter_lineage",
    "kernel", "-f", "{connection_file}", "--kernelspec", "python3",
    "--",
    "python", "-m", "ipykernel_launcher", "-f", "{connection_file}",
]

# Building the wheel (a release cargo build when sources changed) and
# installing JupyterLab take longer than pytest.ini's 120 s.
pytestmark = pytest.mark.timeout(900)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def make_wheel() -> Path:
    """Runs `make wheel` (incremental) and returns the one wheel in dist/."""
    override = os.environ.get("JUPYTER_LINEAGE_WHEEL")
    if override:
        return Path(override)
    makefile = REPO / "Makefile"
    cmd = ["make", "--no-print-directory", "-C", str(REPO)]
    if "mk/package.mk" not in makefile.read_text():
        # Until the Makefile includes the fragment: a makefile that does.
        cmd += ["-f", str(REPO / "build" / "package-only.mk")]
        (REPO / "build").mkdir(exist_ok=True)
        (REPO / "build" / "package-only.mk").write_text("include Makefile\ninclude mk/package.mk\n")
    proc = subprocess.run([*cmd, "wheel"], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"`make wheel` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    wheels = sorted((REPO / "dist").glob("jupyter_lineage-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in dist/, found {wheels}"
    return wheels[0]


def path_without_node() -> str:
    """The system PATH minus every folder that holds node, npm or npx."""
    keep = []
    for folder in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not folder or folder in keep:
            continue
        if any((Path(folder) / tool).exists() for tool in ("node", "nodejs", "npm", "npx")):
            continue
        keep.append(folder)
    return os.pathsep.join(keep)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CleanVenv:
    """A venv with the wheel installed and an environment for running its
    tools: its bin/ first on PATH, no Node, a private empty HOME, and none of
    the Jupyter/lineage variables the other tests set."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"
        self.python = self.bin / "python"
        self.home = root / "home"

    def env(self, *, venv_on_path: bool = True, **extra: str) -> dict[str, str]:
        path = path_without_node()
        if venv_on_path:
            path = f"{self.bin}{os.pathsep}{path}"
        env = {
            "HOME": str(self.home),
            "PATH": path,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_LINEAGE_LOG": "info",
        }
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
        env = kw.pop("env", None) or self.env()
        proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            pytest.fail(
                f"{' '.join(args)} exited {proc.returncode}:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
                pytrace=False,
            )
        return proc


def wheel_has_labextension(names: list[str]) -> bool:
    return any(n.endswith(f"/share/jupyter/labextensions/{LABEXT}/package.json") for n in names)


def load_shim():
    """The shim module from the source tree (python/jupyter_lineage)."""
    spec = importlib.util.spec_from_file_location(
        "jupyter_lineage_src", REPO / "python" / "jupyter_lineage" / "__init__.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel() -> Path:
    return make_wheel()


@pytest.fixture(scope="session")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


@pytest.fixture(scope="session")
def clean_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> CleanVenv:
    """A fresh Debian-python venv with the wheel installed. pip's own cache
    makes reruns quick; nothing is reused from earlier venvs."""
    if not DEBIAN_PYTHON.is_file():
        pytest.fail(f"{DEBIAN_PYTHON} is missing (Debian's python3 and python3-venv)", pytrace=False)
    venv = CleanVenv(tmp_path_factory.mktemp("wheel-venv"))
    venv.home.mkdir()
    venv.run(str(DEBIAN_PYTHON), "-m", "venv", str(venv.root / "venv"), timeout=120)
    venv.run(
        str(venv.python), "-m", "pip", "install", "--quiet", *VENV_REQUIREMENTS, str(wheel),
        timeout=600,
    )
    return venv


# --------------------------------------------------------------------------
# The shim, without a wheel
# --------------------------------------------------------------------------


def test_shim_rewrites_only_a_bare_python_after_the_separator():
    shim = load_shim()
    py = "/env/bin/python3.11"
    spec_args = [a for a in EXPECTED_ARGV[3:]]
    out = shim.kernel_argv(spec_args, python=py)
    assert out[out.index("--") + 1] == py
    assert out[: out.index("--")] == spec_args[: spec_args.index("--")]
    assert out[out.index("--") + 2 :] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    for bare in ("python", "python3", "python3.12"):
        assert shim.kernel_argv(["kernel", "-f", "c", "--", bare, "-m", "x"], python=py)[4] == py
    for kept in ("/usr/bin/python", "R", "python3-config", "ipython", "pythonista"):
        assert shim.kernel_argv(["kernel", "-f", "c", "--", kept], python=py)[4] == kept
    # Only the kernel command's argv, and only its first word.
    assert shim.kernel_argv(["install", "--wrap", "python"], python=py) == ["install", "--wrap", "python"]
    assert shim.kernel_argv(["kernel", "-f", "c", "--", "R", "python"], python=py)[-1] == "python"


# --------------------------------------------------------------------------
# The wheel's layout
# --------------------------------------------------------------------------


def test_wheel_size(wheel: Path):
    size = wheel.stat().st_size
    print(f"{wheel.name}: {size} bytes ({size / 1e6:.1f} MB)")
    assert size <= WHEEL_MAX_BYTES


def test_wheel_layout(wheel: Path, wheel_names: list[str]):
    version = wheel.name.split("-")[1]
    data = f"jupyter_lineage-{version}.data"
    names = set(wheel_names)
    # The binary, executable, in the scripts of the wheel.
    binary = f"{data}/scripts/jupyter-lineage"
    assert binary in names
    with zipfile.ZipFile(wheel) as zf:
        mode = zf.getinfo(binary).external_attr >> 16
        assert mode & stat.S_IXUSR, oct(mode)
        assert zf.read(binary)[:4] == b"\x7fELF"
        spec = json.loads(zf.read(f"{data}/data/share/jupyter/kernels/{LINEAGE}/kernel.json"))
    # The shim.
    assert {"jupyter_lineage/__init__.py", "jupyter_lineage/__main__.py"} <= names
    # The kernelspec: argv through the shim, ipykernel's logos.
    kernels = f"{data}/data/share/jupyter/kernels/{LINEAGE}"
    for logo in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        assert f"{kernels}/{logo}" in names
    assert spec["argv"] == EXPECTED_ARGV
    assert spec["language"] == "python"
    assert spec["interrupt_mode"] == "signal"
    assert spec["metadata"]["jupyter_lineage"] == {"wraps": "python3"}
    # Nothing else outside the package, its metadata and the data dir.
    stray = [
        n for n in names
        if not n.startswith(("jupyter_lineage/", f"jupyter_lineage-{version}.dist-info/", f"{data}/"))
    ]
    assert not stray
    data_files = [n for n in names if n.startswith(f"{data}/data/")]
    assert all(
        n.startswith((f"{data}/data/share/jupyter/kernels/{LINEAGE}/", f"{data}/data/share/jupyter/labextensions/{LABEXT}/"))
        for n in data_files
    ), data_files


def test_wheel_holds_the_prebuilt_labextension(wheel: Path, wheel_names: list[str]):
    if not wheel_has_labextension(wheel_names):
        pytest.skip("the labextension is not built yet (no labextension/jupyter_lineage_labextension/package.json at wheel build time)")
    version = wheel.name.split("-")[1]
    base = f"jupyter_lineage-{version}.data/data/share/jupyter/labextensions/{LABEXT}"
    with zipfile.ZipFile(wheel) as zf:
        package = json.loads(zf.read(f"{base}/package.json"))
    assert package["name"] == LABEXT
    load = package["jupyterlab"]["_build"]["load"]
    assert f"{base}/{load}" in wheel_names, load
    static = [n for n in wheel_names if n.startswith(f"{base}/static/")]
    assert any(n.endswith(".js") for n in static), static
    assert any(n.startswith(f"{base}/schemas/{LABEXT}/") for n in wheel_names)


# --------------------------------------------------------------------------
# Installed into a clean venv
# --------------------------------------------------------------------------


def test_kernelspec_list_shows_the_lineage_kernel(clean_venv: CleanVenv):
    out = clean_venv.run(str(clean_venv.bin / "jupyter"), "kernelspec", "list", "--json").stdout
    specs = json.loads(out)["kernelspecs"]
    assert LINEAGE in specs, sorted(specs)
    resource_dir = Path(specs[LINEAGE]["resource_dir"])
    assert resource_dir == clean_venv.root / "venv" / "share" / "jupyter" / "kernels" / LINEAGE
    assert specs[LINEAGE]["spec"]["argv"] == EXPECTED_ARGV
    # The plain listing a user types.
    plain = clean_venv.run(str(clean_venv.bin / "jupyter"), "kernelspec", "list").stdout
    assert LINEAGE in plain


def test_jupyter_lineage_subcommand_and_shim_run_the_installed_binary(clean_venv: CleanVenv):
    binary = clean_venv.bin / "jupyter-lineage"
    assert binary.is_file() and os.access(binary, os.X_OK)
    via_jupyter = clean_venv.run(str(clean_venv.bin / "jupyter"), "lineage", "--version").stdout
    via_shim = clean_venv.run(str(clean_venv.python), "-m", "jupyter_lineage", "--version").stdout
    assert via_jupyter.strip() == via_shim.strip() and via_shim.startswith("jupyter-lineage ")
    listed = json.loads(clean_venv.run(str(clean_venv.bin / "jupyter"), "lineage", "list", "--json").stdout)
    assert listed["kernelspecs"][LINEAGE]["wraps"] == "python3"


def test_labextension_list_shows_it_enabled_and_ok(clean_venv: CleanVenv, wheel_names: list[str]):
    if not wheel_has_labextension(wheel_names):
        pytest.skip("the labextension is not built yet, so the wheel does not hold it")
    proc = clean_venv.run(str(clean_venv.bin / "jupyter"), "labextension", "list")
    text = proc.stdout + proc.stderr
    lines = [l for l in text.splitlines() if l.strip().startswith(f"{LABEXT} ")]
    assert lines, text
    assert "enabled" in lines[0] and "OK" in lines[0], text
    # install.json (written by `make wheel`) tells users how to remove it.
    assert "(python, jupyter-lineage)" in lines[0], text


def test_notebook_executed_with_nbclient_is_recorded(clean_venv: CleanVenv, tmp_path: Path):
    """`jupyter execute` (nbclient) on python3-lineage, run by absolute path
    with PATH lacking the venv: the wrapped ipykernel still runs on the venv's
    interpreter (the shim resolves the bare `python`), and the run lands in
    <notebook dir>/.jupyter-lineage/lineage.sqlite."""
    import nbformat

    project = tmp_path / "project"
    project.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": LINEAGE, "display_name": LINEAGE, "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("import sys\nanswer = 6 * 7\nprint(sys.executable)"),
        nbformat.v4.new_code_cell("print('answer', answer)"),
    ]
    path = project / "analysis.ipynb"
    nbformat.write(nb, path)

    env = clean_venv.env(venv_on_path=False)
    clean_venv.run(
        str(clean_venv.bin / "jupyter"), "execute", "--inplace", f"--kernel_name={LINEAGE}", path.name,
        cwd=project, env=env, timeout=120,
    )
    done = nbformat.read(path, as_version=4)
    first = "".join(o.get("text", "") for o in done.cells[0].outputs)
    assert Path(first.strip()).parent == clean_venv.bin, first
    assert "answer 42" in "".join(o.get("text", "") for o in done.cells[1].outputs)

    db = project / ".jupyter-lineage" / "lineage.sqlite"
    assert db.is_file(), sorted(p.name for p in project.rglob("*"))
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT code, status, execution_count FROM executions ORDER BY id").fetchall()
        sessions = con.execute("SELECT kernelspec, argv FROM sessions").fetchall()
        texts = [
            bytes(r[0]).decode() for r in con.execute(
                "SELECT b.data FROM outputs o JOIN output_data d ON d.output_id = o.id "
                "JOIN blobs b ON b.sha256 = d.sha256 WHERE o.output_type = 'stream'"
            )
        ]
    finally:
        con.close()
    codes = [r[0] for r in rows]
    assert nb.cells[0].source in codes and nb.cells[1].source in codes, rows
    assert all(r[1] == "ok" for r in rows if r[0] in (nb.cells[0].source, nb.cells[1].source)), rows
    assert sessions and sessions[0][0] == "python3", sessions
    argv = json.loads(sessions[0][1])
    assert Path(argv[0]).parent == clean_venv.bin, argv
    assert any("answer 42" in t for t in texts), texts


# --------------------------------------------------------------------------
# python -m jupyterlab.browser_check
# --------------------------------------------------------------------------

# jupyterlab.browser_check downloads a browser with `npx playwright install`
# and then runs its browser-test.js with `node`. Neither works here (no
# downloads; no Node on the server's PATH). This runner is browser_check
# itself with only its `run_browser` replaced: the same browser-test.js runs
# under Node given by absolute path, with a `playwright` module that is
# playwright-core launching Debian's chromium. The server side (the app, its
# error log handler, exit code) is browser_check's own.
BROWSER_CHECK_RUNNER = r'''
import os, shutil, sys
from os import path as osp
import jupyterlab.browser_check as bc

NODE = os.environ.pop("LINEAGE_TEST_NODE")
PLAYWRIGHT_SHIM = os.environ.pop("LINEAGE_TEST_PLAYWRIGHT_SHIM")

async def run_browser(url):
    target = osp.join(bc.get_app_dir(), "browser_test")
    os.makedirs(osp.join(target, "node_modules"), exist_ok=True)
    link = osp.join(target, "node_modules", "playwright")
    if not osp.exists(link):
        shutil.copytree(PLAYWRIGHT_SHIM, link)
    shutil.copy(osp.join(bc.here, "browser-test.js"), osp.join(target, "browser-test.js"))
    await bc.run_async_process([NODE, "browser-test.js", url], cwd=target)

bc.run_browser = run_browser

# As under `python -m jupyterlab.browser_check`, the app is an extension of
# the __main__ module.
class BrowserApp(bc.BrowserApp):
    name = "__main__"

def _jupyter_server_extension_points():
    return [{"module": "__main__", "app": BrowserApp}]

if __name__ == "__main__":
    BrowserApp.launch_instance()
'''

PLAYWRIGHT_SHIM_JS = r'''
// `require('playwright')` for browser-test.js: playwright-core with Debian's
// chromium (no downloaded browser).
const core = require(process.env.LINEAGE_TEST_PLAYWRIGHT_CORE);
const executablePath = process.env.LINEAGE_TEST_CHROMIUM || '/usr/bin/chromium';
const flags = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
// Before the browser closes, report which jupyter-lineage plugins the app
// activated (browser_check exposes the app as window.jupyterapp).
async function reportPlugins(browser) {
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      try {
        const plugins = await page.evaluate(() => {
          const app = window.jupyterapp;
          return app ? app.listPlugins().filter(id => id.startsWith('jupyter-lineage'))
            .map(id => `${id}=${app.isPluginActivated(id)}`) : null;
        });
        console.log(`LINEAGE_PLUGINS ${JSON.stringify(plugins)}`);
      } catch (e) {
        console.log(`LINEAGE_PLUGINS error ${e}`);
      }
    }
  }
}
module.exports = {
  chromium: {
    launch: async (options = {}) => {
      const browser = await core.chromium.launch({
        ...options, executablePath, args: [...(options.args || []), ...flags]
      });
      const close = browser.close.bind(browser);
      browser.close = async () => { await reportPlugins(browser); return close(); };
      return browser;
    }
  }
};
'''


def find_playwright_core() -> Path | None:
    override = os.environ.get("LINEAGE_TEST_PLAYWRIGHT_CORE")
    candidates = [Path(override)] if override else []
    candidates += [
        REPO / "ui-tests" / "node_modules" / "playwright-core",
        REPO / "labextension" / "node_modules" / "playwright-core",
        REPO / "build" / "browser-check" / "node_modules" / "playwright-core",
    ]
    for c in candidates:
        if (c / "package.json").is_file():
            return c
    # Last resort: playwright-core alone (no browser download), cached in build/.
    npm = shutil.which("npm")
    if not npm:
        return None
    target = REPO / "build" / "browser-check"
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(target), "playwright-core@^1.50"],
        capture_output=True, text=True, timeout=300,
    )
    core = target / "node_modules" / "playwright-core"
    return core if proc.returncode == 0 and (core / "package.json").is_file() else None


def test_jupyterlab_browser_check_passes(clean_venv: CleanVenv, tmp_path: Path, wheel_names: list[str]):
    node = shutil.which("node")
    chromium = os.environ.get("LINEAGE_TEST_CHROMIUM", "/usr/bin/chromium")
    if not node or not Path(chromium).is_file():
        pytest.skip(f"browser_check needs node (for the browser driver only) and {chromium}")
    core = find_playwright_core()
    if core is None:
        pytest.skip("no playwright-core (ui-tests/node_modules, or npm install into build/browser-check)")
    shim = tmp_path / "playwright-shim"
    shim.mkdir()
    (shim / "index.js").write_text(PLAYWRIGHT_SHIM_JS)
    (shim / "package.json").write_text(json.dumps({"name": "playwright", "version": "0.0.0-shim", "main": "index.js"}))
    runner = tmp_path / "browser_check_runner.py"
    runner.write_text(BROWSER_CHECK_RUNNER)
    screenshots = REPO / "build" / "test-artifacts" / "browser-check"
    shutil.rmtree(screenshots, ignore_errors=True)

    env = clean_venv.env(
        LINEAGE_TEST_NODE=node,
        LINEAGE_TEST_PLAYWRIGHT_SHIM=str(shim),
        LINEAGE_TEST_PLAYWRIGHT_CORE=str(core),
        LINEAGE_TEST_CHROMIUM=chromium,
        JLAB_BROWSER_CHECK_OUTPUT=str(screenshots),
    )
    args = [str(clean_venv.python), str(runner), f"--ServerApp.port={free_port()}", "--ServerApp.port_retries=0",
            # Lets the driver ask the app which plugins it activated.
            "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        args.append("--ServerApp.allow_root=True")
    proc = clean_venv.run(*args, env=env, cwd=tmp_path, timeout=300, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert "Browser test complete" in log, log[-8000:]
    reported = [l for l in log.splitlines() if l.startswith("LINEAGE_PLUGINS ")]
    assert reported, log[-8000:]
    plugins = json.loads(reported[-1].split(" ", 1)[1])
    if wheel_has_labextension(wheel_names):
        # The prebuilt extension from the wheel was loaded and activated.
        assert plugins and all(p.endswith("=true") for p in plugins), plugins
        assert "jupyter-lineage:panel=true" in plugins, plugins
