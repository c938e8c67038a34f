#!/usr/bin/env python3
"""The workbook's two commands; needs only Python 3.11+ on the machine.

    python3 workbook.py reproduce [--output DIR] [--retrain] [--jobs N]
        # run every study notebook; in place: notebooks/, figures/, results.json, README table;
        # with --output DIR: only under DIR; --retrain: retrain and rewrite imclib/models/
    python3 workbook.py test        # unit tests + every notebook through nbval + browser suite

On first use (and whenever pyproject.toml changes) this creates a virtual environment in
``.venv`` and installs the package with its test extra (``pip install -e ".[test]"``).
``python3 workbook.py setup`` does only that. ``--no-venv`` (before the command) runs with
the current interpreter instead, e.g. in the conda environment of environment.yml:
``python workbook.py --no-venv test``.

Ctrl-C or SIGTERM is passed on to the running command (which stops its kernels); this
process then exits with 128 + the signal number.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".imclib-installed"
TEST_TIMEOUT_S = 60 * 60  # per pytest run; a safety net, well above the 30 min target under load
CELL_TIMEOUT_S = 1200  # per notebook cell under nbval: generous, a busy machine is slow


def setup() -> None:
    """Create ``.venv`` and install the package when pyproject.toml changed since last time."""
    if sys.version_info < (3, 11):
        sys.exit(f"imclib needs Python >= 3.11, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "--upgrade", "pip"], check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


STOP_WAIT_S = 60
"""Seconds a child may take to stop after SIGTERM (on the timeout) before it is killed."""


def run(args: list[str], timeout: float | None = None, env: dict | None = None) -> int:
    """Run ``args`` with the environment's Python from the repository root.

    SIGINT and SIGTERM are forwarded to the child (in its own session, so that a terminal's
    Ctrl-C reaches it once, through here); once it has stopped, this process exits with
    128 + the signal number. On the timeout the child gets SIGTERM, then SIGKILL after
    ``STOP_WAIT_S`` seconds; the return value is then 124.
    """
    received, children = [], []

    def forward(signum, frame):
        received.append(signum)
        for child in children:
            child.send_signal(signum)

    handlers = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen([INTERPRETER, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                                 start_new_session=os.name != "nt")
        children.append(child)
        if received:  # a signal came while the child was starting
            child.send_signal(received[0])
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"timed out after {timeout} s: {' '.join(args)}", file=sys.stderr)
            child.terminate()
            try:
                child.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            code = 124
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if received:
        sys.exit(128 + received[0])
    return code


def test() -> int:
    """Unit tests and notebooks (nbval, lax mode), then the browser suite; figures go to a
    temporary folder so that only ``reproduce`` rewrites figures/. Each part's wall time and
    the load average are printed at the end (the slowest tests and notebook cells are listed
    by pytest's ``--durations``)."""
    times = []
    with tempfile.TemporaryDirectory(prefix="imclib-figures-") as figures:
        env = {"IMCLIB_FIGURES_DIR": figures}
        common = ["-m", "pytest", "-p", "no:cacheprovider", "-q"]
        parts = {
            "unit tests + notebooks (nbval)": [*common, "-m", "not browser", "--durations=15", "--nbval-lax",
                                               f"--nbval-cell-timeout={CELL_TIMEOUT_S}", "tests", "notebooks"],
            "browser suite": [*common, "-m", "browser", "tests/browser"],
        }
        codes = []
        for name, args in parts.items():
            start = time.monotonic()
            codes.append(run(args, timeout=TEST_TIMEOUT_S, env=env))
            times.append(f"{name}: {time.monotonic() - start:.0f} s (exit {codes[-1]})")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print("\n".join(["", "workbook.py test:", *times, f"load average (1, 5, 15 min) at the end: {load}"]), flush=True)
    return next((code for code in codes if code), 0)


INTERPRETER = PYTHON
"""The Python that runs tests and notebooks: the venv's, or with ``--no-venv`` this one."""


def main(argv: list[str]) -> int:
    global INTERPRETER
    if argv[:1] == ["--no-venv"]:
        INTERPRETER, argv = Path(sys.executable), argv[1:]
    if not argv or argv[0] not in ("setup", "test", "reproduce") or (argv[0] != "reproduce" and len(argv) != 1):
        print(__doc__)
        return 2
    if INTERPRETER == PYTHON:
        setup()
    if argv[0] == "test":
        return test()
    if argv[0] == "reproduce":
        return run(["-m", "imclib.reproduce", *argv[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
