"""Fixtures of the browser suite: a private JupyterLab server and headless Chromium via Playwright.

* ``budget`` measures, at session start, how much slower than a quiet reference machine this
  one is right now (:func:`calibrate`) and scales every wait of the suite by that factor.

* ``original_hashes`` hashes every notebook the suite serves before the first test and
  fails (at teardown) if any of them changed by the end.
* ``lab_server`` starts ``python -m jupyter lab`` (the interpreter running pytest, i.e. the
  venv) on 127.0.0.1 with a random free port, a random token and private config, data,
  runtime, settings, workspace and IPython directories. It serves *copies* of the notebooks
  from a temporary root, so nothing JupyterLab does can touch the repository: the notebooks
  of :data:`END_TO_END` in full, every other study notebook reduced to its widget cells and
  their one dependency, the first code cell (:func:`widget_notebook`). The kernels get
  ``IMCLIB_WIDGET_CHECK=1`` so that the widgets print their ``WIDGET_CHECK`` lines. Autosave is
  off, all cells are attached to the DOM (``windowingMode: none``), the preferred kernel
  starts without a dialog, and the kernel is the running interpreter with the inline
  matplotlib backend. Figures the notebooks save go to a temporary ``IMCLIB_FIGURES_DIR``.
  The server's whole process tree is ended by PID at teardown, also when a test failed.
* ``browser`` launches the system Chromium (``/usr/bin/chromium``); the suite fails with a
  clear message when it cannot start, and is skipped only when the binary is absent and
  ``CI`` is not ``"true"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
ROOT = TESTS_DIR.parent
NOTEBOOK_DIR = ROOT / "notebooks"
FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures"
SAMPLE_NOTEBOOK = FIXTURE_DIR / "sample.ipynb"
ARTIFACTS = ROOT / "test-artifacts"

CHROMIUM = Path(os.environ.get("IMCLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERVER_START_TIMEOUT_S = 90  # on a quiet machine; scaled by the calibration
# Run in full, as a reader would (one real end-to-end run of a light study notebook, plus the
# suite's own sample); every other study notebook is reduced to its widget cells.
END_TO_END = ("00_crossbar_basics.ipynb", "sample.ipynb")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# CPU seconds of calibrate()'s workload on a quiet reference machine (2-core VM, 2026).
REFERENCE_CPU_S = 0.4

# The test process recomputes widget values (imclib.widgets imports pyplot): no display needed.
os.environ.setdefault("MPLBACKEND", "Agg")
# The figure-cell rules live with the static (non-browser) test; share them.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
# The sample notebook's WIDGET_CHECK lines name functions of fixtures/sample_widgets.py.
if str(FIXTURE_DIR) not in sys.path:
    sys.path.insert(0, str(FIXTURE_DIR))
# The test process recomputes imclib.widgets values: make the checkout importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def study_notebooks() -> list[Path]:
    """The study notebooks ``notebooks/NN_topic.ipynb``, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def served_notebooks() -> list[Path]:
    """Everything the suite opens: the study notebooks, then the suite's own sample.

    ``IMCLIB_BROWSER_NOTEBOOKS`` (paths separated by ``os.pathsep``) replaces that list, e.g.
    to try a draft notebook; ``*.py`` files next to such a notebook are served with it.
    """
    override = os.environ.get("IMCLIB_BROWSER_NOTEBOOKS")
    if override:
        return [Path(p).resolve() for p in override.split(os.pathsep) if p]
    return [*study_notebooks(), SAMPLE_NOTEBOOK]


def served_path(notebook: Path) -> str:
    """Path of ``notebook``'s copy relative to the server root (as JupyterLab names it)."""
    if notebook.parent == FIXTURE_DIR:
        return f"fixtures/{notebook.name}"
    if notebook.parent == NOTEBOOK_DIR:
        return f"notebooks/{notebook.name}"
    return f"extra/{notebook.name}"


def runs_in_full(notebook: Path) -> bool:
    """Whether the suite runs ``notebook`` in full (else only its widget cells)."""
    return bool(os.environ.get("IMCLIB_BROWSER_NOTEBOOKS")) or notebook.name in END_TO_END


def _is_progress_bar(state: dict, model_id: str) -> bool:
    """Whether a saved widget model is a progress bar (tqdm's HBox of HTML + Progress)."""
    model = state.get(model_id, {})
    children = [ref[len("IPY_MODEL_"):] for ref in model.get("state", {}).get("children", []) or []
                if isinstance(ref, str) and ref.startswith("IPY_MODEL_")]
    names = [model.get("model_name", ""), *(state.get(c, {}).get("model_name", "") for c in children)]
    return any(name.endswith("ProgressModel") for name in names)


def widget_notebook(notebook: Path):
    """``notebook`` reduced to what its widgets need: the first code cell (imports and
    setup; a widget cell may depend on nothing else) and every code cell whose stored
    outputs hold an interactive widget view (progress bars do not count) or, as
    ``imclib.reproduce`` stores a widget, its note. Outputs are kept; the suite clears them
    before running."""
    import nbformat

    from imclib.reproduce import WIDGET_NOTE

    nb = nbformat.read(notebook, as_version=4)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    code = [c for c in nb.cells if c.cell_type == "code"]

    def interactive(cell) -> bool:
        data = [o.get("data") or {} for o in cell.get("outputs", [])]
        views = [d.get(WIDGET_VIEW, {}).get("model_id") for d in data]
        return (any(v and not _is_progress_bar(state, v) for v in views)
                or any(d.get("text/plain") == WIDGET_NOTE for d in data))

    nb.cells = code[:1] + [c for c in code[1:] if interactive(c)]
    return nb


# --------------------------------------------------------------------------- calibration


def _workload() -> int:
    total = 0
    for i in range(2_000_000):
        total += i * i % 7
    return total


def calibrate(rounds: int = 5) -> dict:
    """How much slower than the reference machine this one is *now*.

    Runs a fixed single-threaded CPU workload ``rounds`` times and returns its wall time,
    CPU time and the slowdown ``factor = max(1, wall / cpu) * max(1, cpu / REFERENCE_CPU_S)``:
    the first term is the share of a core other processes take (2 on a 2-core machine with
    two CPU-bound jobs beside the suite), the second a slower CPU. ``IMCLIB_BROWSER_SLOWDOWN``
    (a number) replaces the measured factor.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        _workload()
    wall, cpu = time.perf_counter() - wall, max(time.process_time() - cpu, 1e-3)
    factor = max(1.0, wall / cpu) * max(1.0, cpu / REFERENCE_CPU_S)
    if os.environ.get("IMCLIB_BROWSER_SLOWDOWN"):
        factor = float(os.environ["IMCLIB_BROWSER_SLOWDOWN"])
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "factor": round(factor, 2)}


@dataclass
class Budget:
    """Waits of the suite: quiet-machine seconds times the measured slowdown ``factor``.

    :meth:`recalibrate` measures again (before each notebook) and keeps the larger factor,
    so load that starts during the session also stretches the waits."""

    factor: float
    measurements: list

    def seconds(self, quiet_s: float) -> float:
        return quiet_s * self.factor

    def recalibrate(self) -> float:
        measured = calibrate(rounds=2)
        self.measurements.append(measured)
        self.factor = max(self.factor, measured["factor"])
        return self.factor


@pytest.fixture(scope="session")
def budget() -> Budget:
    """The session's wait budget, from a calibration measured before anything starts."""
    measured = calibrate()
    _CALIBRATION.append(measured)
    return Budget(measured["factor"], _CALIBRATION)


def _hash_files(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.exists()}


def changed_notebooks(before: dict[str, str]) -> list[str]:
    """Notebooks of ``before`` whose content differs now (or that vanished)."""
    now = _hash_files([Path(p) for p in before])
    return sorted(p for p in before if before[p] != now.get(p))


class NotebookHashes(dict):
    """SHA-256 per notebook path, taken before the suite; :meth:`changed` compares with now."""

    checked = False  # set by test_repository_notebooks_unchanged

    def changed(self) -> list[str]:
        return changed_notebooks(self)


@pytest.fixture(scope="session")
def original_hashes():
    """SHA-256 of every notebook before the suite; the session fails if any changed."""
    before = NotebookHashes(_hash_files(served_notebooks()))
    yield before
    changed = [] if before.checked else before.changed()
    if changed:
        pytest.fail(f"the browser suite modified notebook files in the repository: {changed}", pytrace=False)


# --------------------------------------------------------------------------- server


@dataclass
class LabServer:
    base_url: str
    token: str
    root_dir: Path
    figures_dir: Path
    log_path: Path
    process: subprocess.Popen
    full: dict  # served path -> whether it runs in full

    @staticmethod
    def served_path(notebook: Path) -> str:
        return served_path(notebook)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(self.url(f"api/{path}"), method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_argv(self) -> list[str]:
        """argv of the kernel spec ``python3`` as the server sees it."""
        return self._api("kernelspecs")["kernelspecs"]["python3"]["spec"]["argv"]

    def shutdown_kernels(self) -> None:
        """Shut down every running kernel (best effort; the server keeps running)."""
        try:
            for kernel in self._api("kernels"):
                self._api(f"kernels/{kernel['id']}", method="DELETE")
        except Exception:  # noqa: BLE001 - teardown must not mask a test failure
            pass

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "<no server log>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _prepare_lab_dirs(tmp: Path) -> dict[str, Path]:
    """Private Jupyter directories, JupyterLab settings, and the kernel spec."""
    dirs = {name: tmp / name for name in ("root", "config", "data", "path", "runtime", "settings",
                                          "workspaces", "ipython", "figures")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    settings = dirs["settings"] / "@jupyterlab"
    # Never write the (copied) notebooks back, and never prompt.
    _write_json(settings / "docmanager-extension" / "plugin.jupyterlab-settings", {"autosave": False})
    _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings",
                {"windowingMode": "none", "autoStartDefaultKernel": True})
    _write_json(settings / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    # Kernel "python3" = the interpreter running the tests (the venv), inline figures.
    _write_json(dirs["path"] / "kernels" / "python3" / "kernel.json", {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
        "metadata": {"debugger": False},
    })
    return dirs


def _copy_notebooks(root: Path) -> dict[str, bool]:
    """Copy what the suite serves into ``root``; return served path -> runs in full."""
    import nbformat

    (root / "notebooks").mkdir(exist_ok=True)
    full = {}
    for nb in study_notebooks():
        if runs_in_full(nb):
            shutil.copy2(nb, root / "notebooks" / nb.name)
        else:
            nbformat.write(widget_notebook(nb), root / "notebooks" / nb.name)
        full[served_path(nb)] = runs_in_full(nb)
    # The sample and the module its WIDGET_CHECK lines name (the kernel's cwd is the notebook's folder).
    shutil.copytree(FIXTURE_DIR, root / "fixtures", ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for nb in served_notebooks():
        target = root / served_path(nb)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(nb, target)
            for module in nb.parent.glob("*.py"):
                shutil.copy2(module, target.parent / module.name)
        full.setdefault(served_path(nb), True)
    return full


def _server_env(dirs: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # workbook.py sets Agg for the tests; the kernel spec sets inline
    env.update({
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_PATH": str(dirs["path"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "IMCLIB_FIGURES_DIR": str(dirs["figures"]),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "IMCLIB_WIDGET_CHECK": "1",  # the widgets print their WIDGET_CHECK lines for the suite
    })
    return env


def _process_tree(pid: int) -> list:
    """``psutil.Process`` objects of ``pid`` and all its descendants (kernels run in their own sessions)."""
    import psutil  # a dependency of ipykernel

    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def _end_process_tree(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL by PID whatever of its tree is left."""
    import psutil

    tree = _process_tree(process.pid)  # taken before the server exits and orphans its kernels
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the server was started in its own session
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=15)  # a graceful shutdown also shuts the kernels down
    except subprocess.TimeoutExpired:
        pass
    _gone, alive = psutil.wait_procs(tree, timeout=5)
    for proc in alive:  # is_running() guards against PID reuse
        try:
            if proc.is_running():
                proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when pytest dies, even by SIGKILL (e.g. workbook.py's timeout)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(base_url: str, token: str, process: subprocess.Popen, limit_s: float) -> str | None:
    """Poll ``/api/status``; return None when ready, else a reason."""
    deadline = time.monotonic() + limit_s
    request = urllib.request.Request(f"{base_url}/api/status", headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with code {process.returncode}"
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    # The lab page itself must be served too (the extension is installed).
                    with urllib.request.urlopen(f"{base_url}/lab?token={token}", timeout=10) as page:
                        if page.status == 200:
                            return None
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.25)
    return f"not ready after {limit_s:.0f} s"


@pytest.fixture(scope="session")
def lab_server(original_hashes, tmp_path_factory, budget):
    """A running private JupyterLab serving copies of the notebooks; ended at teardown."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    dirs = _prepare_lab_dirs(tmp)
    full = _copy_notebooks(dirs["root"])
    env = _server_env(dirs)
    token = secrets.token_hex(24)
    log_path = tmp / "jupyterlab.log"
    last_reason = ""
    for _attempt in range(3):  # the free port can be taken between probing and binding
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={dirs['root']}",
            "--ServerApp.terminals_enabled=False",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        log = log_path.open("ab")
        process = subprocess.Popen(cmd, cwd=dirs["root"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        server = LabServer(base_url, token, dirs["root"], dirs["figures"], log_path, process, full)
        reason = _wait_ready(base_url, token, process, budget.seconds(SERVER_START_TIMEOUT_S))
        if reason is None:
            break
        _end_process_tree(process)
        last_reason = reason
    else:
        pytest.fail(f"JupyterLab did not start ({last_reason}); server log:\n{server.log_tail()}", pytrace=False)
    try:
        argv = server.kernel_argv()
        assert argv[0] == sys.executable, f"the server's python3 kernel runs {argv[0]}, not {sys.executable}"
        yield server
    finally:
        _end_process_tree(process)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy2(log_path, ARTIFACTS / "jupyterlab-server.log")


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser(tmp_path_factory, budget):
    """Headless system Chromium driven by Playwright (no Playwright-downloaded browsers)."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not CHROMIUM.exists():
        if in_ci:
            pytest.fail(f"{CHROMIUM} is missing and CI=true: install it (apt-get install -y chromium)",
                        pytrace=False)
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); CI is not 'true'")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright for Python is not installed ({exc}); pip install -e '.[test]'", pytrace=False)

    home = tmp_path_factory.mktemp("chromium-home")
    browser_env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    manager = sync_playwright()
    try:
        playwright = manager.start()
    except Exception as exc:  # noqa: BLE001 - report whatever the driver says
        pytest.fail(f"the Playwright driver did not start: {exc}", pytrace=False)
    try:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                                  env=browser_env, timeout=budget.seconds(60) * 1000)
        except Exception as exc:  # noqa: BLE001
            version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True).stdout.strip()
            pytest.fail(f"headless Chromium could not be launched by Playwright "
                        f"({CHROMIUM}, {version or 'version unknown'}): {exc}", pytrace=False)
        yield chromium
        chromium.close()
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def page(browser, budget):
    """A fresh browser context and page; console errors are kept on ``page.console_errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    context.set_default_timeout(budget.seconds(30) * 1000)
    pg = context.new_page()
    pg.console_errors = []
    pg.on("console", lambda msg: pg.console_errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.console_errors.append(f"page error: {exc}"))
    try:
        yield pg
    finally:
        context.close()


# --------------------------------------------------------------------------- timings

_TIMINGS: dict[str, float] = {}
_WIDGET_UPDATES: dict[str, float] = {}
_CALIBRATION: list[dict] = []


@pytest.fixture(scope="session")
def timings() -> dict[str, float]:
    """Seconds per notebook (open, run all, widget checks), printed after the run."""
    return _TIMINGS


@pytest.fixture(scope="session")
def widget_updates() -> dict[str, float]:
    """Seconds from a control's move to its widget's new value, per widget cell, printed
    after the run."""
    return _WIDGET_UPDATES


def pytest_terminal_summary(terminalreporter):
    if _CALIBRATION:
        terminalreporter.section("browser suite: calibration (slowdown factor scales every wait)")
        for measured in _CALIBRATION:
            terminalreporter.write_line(f"wall {measured['wall_s']:.2f} s, cpu {measured['cpu_s']:.2f} s, "
                                        f"factor {measured['factor']:.2f}")
    if _TIMINGS:
        terminalreporter.section("browser suite: seconds per notebook")
        for name, seconds in _TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.1f}  {name}")
        terminalreporter.write_line(f"{sum(_TIMINGS.values()):7.1f}  total in notebooks")
    if _WIDGET_UPDATES:
        terminalreporter.section("browser suite: widget updates, seconds from the control's move to its new value "
                                 "(polling included)")
        for name, seconds in _WIDGET_UPDATES.items():
            terminalreporter.write_line(f"{seconds:7.2f}  {name}")
