"""A real JupyterHub with two real Unix users, each running cells on the
lineage kernel from the wheel.

It runs twice, each time with fresh users: once on the `python3-lineage`
kernelspec, once on plain `python3` with the one hub-wide setting that
records every kernel (`JUPYTER_DEFAULT_PROVISIONER_NAME=lineage-provisioner`
in the spawner's environment, docs/jupyterhub.md).

- JupyterHub (pip) + configurable-http-proxy (npm), `shared-password`
  authenticator, `localprocess` spawner: each user's server and kernels run
  as that user. The hub's venv is built with Debian's /usr/bin/python3 under
  /opt (readable by the users; root's pyenv and /root are not) and reused
  between runs (a stamp file records what it holds); the wheel is reinstalled
  into it on every run.
- The hub's PATH deliberately lacks the venv: kernels must still run on the
  venv's interpreter (jupyter_client resolves argv[0], the shim the rest).
- A service token with `admin:users, admin:servers, access:servers` starts
  the servers and talks to the kernels over REST and the kernel websocket.

Needs root (useradd, the hub switching users). Every process the test starts
is stopped by pid and the users are removed, also on failure.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from test_wheel import find_playwright_core, free_port, make_wheel

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = "/usr/bin/python3"
HUB_VENV = Path(os.environ.get("JUPYTER_LINEAGE_HUB_VENV", "/opt/jupyter-lineage-hub-venv"))
HUB_REQUIREMENTS = ["jupyterhub>=5,<7", "jupyterlab>=4,<5", "ipykernel>=6"]
CHP_SPEC = "configurable-http-proxy@^5"
LINEAGE = "python3-lineage"
# How the users' kernels are recorded: the kernel each mode's notebook names.
MODES = {"kernelspec": LINEAGE, "provisioner": "python3"}
DISPLAY_NAMES = {LINEAGE: "Python 3 (ipykernel) · lineage", "python3": "Python 3 (ipykernel)"}
PROVISIONER_ENV = {"JUPYTER_DEFAULT_PROVISIONER_NAME": "lineage-provisioner"}
NOTEBOOK = "lineage-hub.ipynb"
PASSWORD = "lineage-" + secrets.token_hex(6)
ARTIFACTS = REPO / "build" / "test-artifacts" / "hub"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 60

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="the JupyterHub test creates Unix users: run it as root"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd/userdel"),
]


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def stop_pids(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever is left, one pid at a time."""
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.terminate()
            procs.append(p)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)


def tree_pids(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [root.pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def user_pids(uid: int) -> list[int]:
    pids = []
    for p in psutil.process_iter(["uids"]):
        try:
            if p.info["uids"] and p.info["uids"].real == uid:
                pids.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def as_user(user: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    home = pwd.getpwnam(user).pw_dir
    return subprocess.run(
        ["runuser", "-u", user, "--", *argv],
        capture_output=True, text=True, timeout=timeout, cwd=home,
        env={"HOME": home, "USER": user, "PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
    )


# --------------------------------------------------------------------------
# The hub's environment (reused between runs)
# --------------------------------------------------------------------------


def ensure_hub_venv(wheel: Path) -> None:
    stamp = HUB_VENV / ".jupyter-lineage-test.stamp"
    want = json.dumps({"python": DEBIAN_PYTHON, "requirements": HUB_REQUIREMENTS, "chp": CHP_SPEC})
    if not (stamp.is_file() and stamp.read_text() == want):
        shutil.rmtree(HUB_VENV, ignore_errors=True)
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(HUB_VENV)], check=True, timeout=120)
        subprocess.run(
            [str(HUB_VENV / "bin" / "pip"), "install", "--quiet", *HUB_REQUIREMENTS],
            check=True, timeout=600,
        )
        npm = shutil.which("npm")
        if not npm:
            pytest.skip("needs npm to install configurable-http-proxy")
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(HUB_VENV / "chp"), CHP_SPEC],
            check=True, timeout=300, capture_output=True,
        )
        # No news pop-up over the screenshot.
        settings = HUB_VENV / "share" / "jupyter" / "lab" / "settings"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "overrides.json").write_text(json.dumps({
            "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
        }))
        stamp.write_text(want)
    # The wheel under test, always fresh (no deps: they are all there).
    subprocess.run(
        [str(HUB_VENV / "bin" / "pip"), "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)],
        check=True, timeout=300,
    )


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_venv() -> Path:
    ensure_hub_venv(make_wheel())
    return HUB_VENV


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def unix_users(request: pytest.FixtureRequest, mode: str) -> list[str]:
    """Two fresh users with homes (0755, as on many hubs, so that what keeps
    the second user out is the lineage folder's own mode, not the home's)."""
    tag = secrets.token_hex(3)
    names = [f"jl-ada-{tag}", f"jl-bob-{tag}"]
    created: list[str] = []

    def remove() -> None:
        for name in created:
            try:
                uid = pwd.getpwnam(name).pw_uid
            except KeyError:
                continue
            # Only these test users' processes: all of them were started here.
            stop_pids(user_pids(uid))
            subprocess.run(["userdel", "--remove", name], capture_output=True, timeout=60)

    request.addfinalizer(remove)
    for name in names:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True, timeout=60)
        created.append(name)
        os.chmod(pwd.getpwnam(name).pw_dir, 0o755)
    return names


class Hub:
    def __init__(self, root: Path, users: list[str], mode: str = "kernelspec") -> None:
        self.root = root
        self.users = users
        self.mode = mode
        self.kernel_name = MODES[mode]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.seen_pids: set[int] = set()
        self.log = root / "jupyterhub.log"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", headers=self.headers(), timeout=TIMEOUT, **kw)

    def user_api(self, user: str, method: str, path: str, **kw) -> requests.Response:
        return requests.request(
            method, f"{self.url}/user/{user}/api{path}", headers=self.headers(), timeout=TIMEOUT, **kw
        )

    def config(self) -> str:
        return f"""
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(HUB_VENV / "chp" / "node_modules" / ".bin" / "configurable-http-proxy")!r}]
c.ConfigurableHTTPProxy.pid_file = {str(self.root / "chp.pid")!r}
c.JupyterHub.db_url = "sqlite:///{self.root / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(self.root / "cookie_secret")!r}
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {PASSWORD!r}
c.Authenticator.allowed_users = {set(self.users)!r}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{str(HUB_VENV / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.environment = {PROVISIONER_ENV if self.mode == "provisioner" else {}!r}
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{"name": "lineage-test", "api_token": {self.token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "lineage-test",
    "scopes": ["admin:users", "admin:servers", "access:servers"],
    "services": ["lineage-test"],
}}]
"""

    def start(self) -> None:
        cfg = self.root / "jupyterhub_config.py"
        cfg.write_text(self.config())
        # No venv on PATH: the kernels must find their interpreter anyway.
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": str(self.root), "JUPYTER_LINEAGE_LOG": "info"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(cfg)],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyterhub exited {self.proc.returncode}:\n{self.log_tail()}", pytrace=False)
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).ok:
                    self.remember_pids()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        pytest.fail(f"jupyterhub did not answer in 90 s:\n{self.log_tail()}", pytrace=False)

    def remember_pids(self) -> None:
        if self.proc:
            self.seen_pids.update(tree_pids(self.proc.pid))

    def log_tail(self, n: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start_server(self, user: str) -> None:
        r = self.api("POST", f"/users/{user}/server")
        assert r.status_code in (201, 202, 400), (r.status_code, r.text)  # 400: already running
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = self.api("GET", f"/users/{user}").json()
            server = (info.get("servers") or {}).get("")
            if server and server.get("ready"):
                self.remember_pids()
                return
            time.sleep(0.5)
        pytest.fail(f"the server of {user} did not become ready:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.remember_pids()
        for user in self.users:
            try:
                self.api("DELETE", f"/users/{user}/server")
            except requests.RequestException:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                busy = [u for u in self.users if self.api("GET", f"/users/{u}").json().get("servers")]
            except (requests.RequestException, ValueError):
                break
            if not busy:
                break
            time.sleep(0.5)
        self.remember_pids()
        # The hub first (it stops the proxy it started), then any straggler.
        stop_pids([self.proc.pid], grace=15)
        self.proc.wait(timeout=5)
        stop_pids(sorted(self.seen_pids))
        self.proc = None


@pytest.fixture(scope="module")
def hub(hub_venv: Path, unix_users: list[str], mode: str, tmp_path_factory: pytest.TempPathFactory, request):
    hub = Hub(tmp_path_factory.mktemp("jupyterhub"), unix_users, mode)
    request.addfinalizer(hub.stop)
    hub.start()
    for user in unix_users:
        hub.start_server(user)
    return hub


# --------------------------------------------------------------------------
# Talking to a kernel through the hub
# --------------------------------------------------------------------------


CELLS = [
    ("cell-who", "import getpass, os, sys\nprint(getpass.getuser(), sys.executable)"),
    ("cell-answer", "answer = 6 * 7\nprint('answer', answer)"),
]


class KernelSocket:
    """The kernel websocket JupyterLab uses, opened with the service token."""

    def __init__(self, hub: Hub, user: str, kernel_id: str) -> None:
        import websocket

        self.session = uuid.uuid4().hex
        url = f"ws://127.0.0.1:{hub.port}/user/{user}/api/kernels/{kernel_id}/channels?session_id={self.session}"
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {hub.token}"], timeout=TIMEOUT)

    def execute(self, code: str, cell_id: str) -> tuple[dict, list[dict]]:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {
                "msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                "username": "lineage-test", "version": "5.3",
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            },
            "parent_header": {},
            "metadata": {"cellId": cell_id},
            "content": {
                "code": code, "silent": False, "store_history": True,
                "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }))
        outputs: list[dict] = []
        reply = None
        idle = False
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not (reply and idle):
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_reply":
                reply = msg
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            elif kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append(msg)
        assert reply is not None, f"no execute_reply for {code!r}"
        return reply, outputs

    def close(self) -> None:
        self.ws.close()


def open_notebook_session(hub: Hub, user: str) -> str:
    """A notebook session as JupyterLab makes one: the server sets
    JPY_SESSION_NAME to the notebook's full path. Returns the kernel id."""
    home = Path(pwd.getpwnam(user).pw_dir)
    nb = {
        "cells": [
            {"cell_type": "code", "id": cid, "metadata": {}, "execution_count": None, "outputs": [], "source": src}
            for cid, src in CELLS
        ],
        "metadata": {"kernelspec": {"name": hub.kernel_name, "display_name": DISPLAY_NAMES[hub.kernel_name], "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path = home / NOTEBOOK
    path.write_text(json.dumps(nb))
    uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
    os.chown(path, uid, gid)
    r = hub.user_api(user, "POST", "/sessions", json={
        "path": NOTEBOOK, "name": NOTEBOOK, "type": "notebook", "kernel": {"name": hub.kernel_name},
    })
    assert r.status_code == 201, (r.status_code, r.text, hub.log_tail())
    return r.json()["kernel"]["id"]


def query_as(user: str, db: Path, sql: str) -> list:
    """Runs a read-only query as `user` (never as root: root would leave
    root-owned -wal/-shm files the kernel could not open)."""
    script = (
        "import json, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], timeout=10)\n"
        "print(json.dumps(con.execute(sys.argv[2]).fetchall()))\n"
    )
    proc = as_user(user, DEBIAN_PYTHON, "-c", script, str(db), sql)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def runs(hub: Hub, unix_users: list[str]) -> dict[str, str]:
    """Each user runs the cells through the hub, on python3-lineage or (with
    the provisioner on for all users) on plain python3. Returns user ->
    kernel id."""
    kernels = {}
    for user in unix_users:
        kernel_id = open_notebook_session(hub, user)
        # The server knows the kernel by the notebook's own kernelspec name.
        assert hub.user_api(user, "GET", f"/kernels/{kernel_id}").json()["name"] == hub.kernel_name
        sock = KernelSocket(hub, user, kernel_id)
        try:
            for cell_id, code in CELLS:
                reply, outputs = sock.execute(code, cell_id)
                assert reply["content"]["status"] == "ok", reply["content"]
                text = "".join(o["content"].get("text", "") for o in outputs)
                if cell_id == "cell-who":
                    who, exe = text.split()
                    assert who == user
                    # The hub's PATH has no venv, yet the kernel runs on it.
                    assert Path(exe).parent == HUB_VENV / "bin", exe
                else:
                    assert "answer 42" in text
        finally:
            sock.close()
        kernels[user] = kernel_id
    hub.remember_pids()
    return kernels


def db_path(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir) / ".jupyter-lineage" / "lineage.sqlite"


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def test_each_users_runs_are_in_their_own_home(runs: dict[str, str], unix_users: list[str]):
    for user in unix_users:
        pw = pwd.getpwnam(user)
        db = db_path(user)
        deadline = time.monotonic() + 15
        rows: list = []
        while time.monotonic() < deadline:
            if db.is_file():
                rows = query_as(
                    user, db,
                    "SELECT cell_id, status, notebook_path, code FROM executions ORDER BY id",
                )
                if len(rows) >= len(CELLS):
                    break
            time.sleep(0.3)
        assert [r[0] for r in rows] == [cid for cid, _ in CELLS], rows
        assert all(r[1] == "ok" for r in rows), rows
        assert all(r[2] == f"{pw.pw_dir}/{NOTEBOOK}" for r in rows), rows
        st = db.stat()
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        folder = db.parent.stat()
        assert folder.st_uid == pw.pw_uid and stat.S_IMODE(folder.st_mode) == 0o700
        sessions = query_as(user, db, "SELECT user, kernelspec FROM sessions")
        assert sessions and all(s == [user, "python3"] for s in sessions), sessions


def test_second_user_cannot_open_the_first_users_database(runs, unix_users: list[str]):
    first, second = unix_users
    db = db_path(first)
    assert db.is_file()
    for target in (db, db.parent / "lineage.sqlite-wal", db.parent):
        code = f"import os; p = {str(target)!r}; os.listdir(p) if os.path.isdir(p) else open(p, 'rb')"
        proc = as_user(second, DEBIAN_PYTHON, "-c", code)
        assert proc.returncode != 0 and "PermissionError" in proc.stderr, (target, proc.stdout, proc.stderr)
    # sqlite3 itself fails too.
    proc = as_user(second, DEBIAN_PYTHON, "-c",
                   f"import sqlite3; sqlite3.connect({str(db)!r}).execute('select 1 from executions')")
    assert proc.returncode != 0 and "unable to open database" in proc.stderr, proc.stderr


def find_connection_file(user: str, kernel_id: str) -> Path:
    home = Path(pwd.getpwnam(user).pw_dir)
    uid = pwd.getpwnam(user).pw_uid
    for root in (home / ".local" / "share" / "jupyter" / "runtime", Path(f"/run/user/{uid}/jupyter"), home):
        if root.is_dir():
            found = list(root.rglob(f"kernel-{kernel_id}.json"))
            if found:
                return found[0]
    pytest.fail(f"no connection file kernel-{kernel_id}.json under {home}", pytrace=False)


def test_wrong_key_on_the_kernel_ports_gets_nothing(runs: dict[str, str], unix_users: list[str]):
    import zmq
    from jupyter_client.session import Session

    user = unix_users[0]
    info = json.loads(find_connection_file(user, runs[user]).read_text())
    home = Path(pwd.getpwnam(user).pw_dir)
    forged = home / f"forged-{secrets.token_hex(4)}"
    genuine = home / f"genuine-{secrets.token_hex(4)}"
    ctx = zmq.Context()
    sockets = []

    def connect(kind: int, port_name: str):
        s = ctx.socket(kind)
        s.linger = 0
        s.connect(f"{info['transport']}://{info['ip']}:{info[port_name]}")
        sockets.append(s)
        return s

    try:
        iopub = connect(zmq.SUB, "iopub_port")
        iopub.setsockopt(zmq.SUBSCRIBE, b"")
        shell = connect(zmq.DEALER, "shell_port")
        time.sleep(0.5)
        wrong = Session(key=secrets.token_hex(32).encode(), signature_scheme=info["signature_scheme"])
        msg = wrong.msg("execute_request", {
            "code": f"open({str(forged)!r}, 'w').write('x')", "silent": False, "store_history": False,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
        })
        wrong.send(shell, msg)
        forged_id = msg["header"]["msg_id"]

        def replies_to(msg_id: str, seconds: float, first_only: bool = False) -> list:
            """Everything on shell and iopub whose frames mention msg_id
            (a reply or output would carry it in its parent header)."""
            got = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not (first_only and got):
                for sock in (shell, iopub):
                    while sock.poll(50):
                        frames = sock.recv_multipart()
                        if msg_id.encode() in b"".join(frames):
                            got.append(frames)
            return got

        assert replies_to(forged_id, 3.0) == []
        # The same sockets with the right key: a reply, and the file appears
        # (so the kernel was alive and had worked through its queue).
        right = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        msg = right.msg("execute_request", {
            "code": f"open({str(genuine)!r}, 'w').write('x')", "silent": False, "store_history": False,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
        })
        right.send(shell, msg)
        assert replies_to(msg["header"]["msg_id"], 10.0, first_only=True), "no reply with the right key either"
        deadline = time.monotonic() + 10
        while not genuine.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert genuine.exists()
        assert not forged.exists()
    finally:
        for s in sockets:
            s.close()
        ctx.term()


BROWSER_SCRIPT = r"""
const core = require(process.env.PW_CORE);
const [base, user, password, shot] = process.argv.slice(2);
const flags = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
(async () => {
  const browser = await core.chromium.launch({ executablePath: process.env.CHROMIUM, args: flags });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  try {
    await page.goto(`${base}/hub/login`);
    await page.fill('#username_input', user);
    await page.fill('#password_input', password);
    await Promise.all([page.waitForURL(/\/user\//, { timeout: 60000 }), page.click('#login_submit')]);
    await page.goto(`${base}/user/${user}/lab/tree/${process.env.NOTEBOOK}?reset`);
    await page.locator('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]')
      .first().waitFor({ timeout: 60000 });
    const panel = page.locator('#jp-lineage-panel');
    if (!(await panel.isVisible())) {
      await page.locator('.jp-SideBar.jp-mod-right li[data-id="jp-lineage-panel"]').click();
    }
    await panel.waitFor({ state: 'visible', timeout: 30000 });
    const rows = panel.locator('.jp-LineageRun');
    await rows.first().waitFor({ timeout: 30000 });
    await page.waitForTimeout(500);
    const runs = await panel.locator('.jp-LineageRun').evaluateAll(
      els => els.map(e => ({ cell: e.getAttribute('data-cell-id'), text: e.textContent })));
    await page.screenshot({ path: shot });
    console.log('PANEL_RUNS ' + JSON.stringify(runs));
  } catch (e) {
    await page.screenshot({ path: shot }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_browser_login_shows_the_users_runs_in_the_panel(runs, hub: Hub, unix_users, tmp_path: Path):
    has_ext = (HUB_VENV / "share" / "jupyter" / "labextensions" / "jupyter-lineage" / "package.json").is_file()
    if not has_ext:
        pytest.skip("the wheel holds no labextension yet (labextension/ not built)")
    node = shutil.which("node")
    chromium = os.environ.get("LINEAGE_TEST_CHROMIUM", "/usr/bin/chromium")
    if not node or not Path(chromium).is_file():
        pytest.skip(f"needs node (for the browser driver) and {chromium}")
    core = find_playwright_core()
    if core is None:
        pytest.skip("no playwright-core (ui-tests/node_modules, or npm install into build/browser-check)")
    user = unix_users[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "panel-first-user.png"
    script = tmp_path / "hub_browser.js"
    script.write_text(BROWSER_SCRIPT)
    proc = subprocess.run(
        [node, str(script), hub.url, user, PASSWORD, str(shot)],
        env={**os.environ, "PW_CORE": str(core), "CHROMIUM": chromium, "NOTEBOOK": NOTEBOOK},
        capture_output=True, text=True, timeout=240,
    )
    hub.remember_pids()
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{hub.log_tail()}"
    line = [l for l in proc.stdout.splitlines() if l.startswith("PANEL_RUNS ")][-1]
    shown = json.loads(line.split(" ", 1)[1])
    cells = {r["cell"] for r in shown}
    assert {cid for cid, _ in CELLS} <= cells, shown
    assert any("answer" in r["text"] for r in shown), shown
    assert shot.is_file()
