"""Run every study notebook top to bottom, headless, and regenerate the figures.

``python -m imclib.reproduce [NOTEBOOK ...] [--output DIR] [--retrain] [--jobs N]`` executes
``notebooks/NN_*.ipynb`` with nbclient (a per-cell and an overall timeout), in order, or
``N`` at a time, the longest first (:data:`COLD_SECONDS`), each in its own kernel (every
notebook only reads the trained models and tables it needs, training them if missing;
concurrent runs store cache entries atomically).

Without ``--output`` it regenerates the repository in place: the executed notebooks replace
``notebooks/*.ipynb`` (so a reader sees outputs without a kernel), the figures and
``results.json`` go to ``figures/``, the headline table of README.md is rewritten, and so is
the page of the notebooks' "What we found" paragraphs, ``docs/findings.md``.
With ``--output DIR`` the repository is not touched: the executed notebooks go to
``DIR/notebooks/``, figures and ``results.json`` to ``DIR/figures/`` and the table to
``DIR/results.md``. Either way ``models-used.jsonl`` (in ``DIR``, or ``figures/``' parent
``.reproduce/`` in place) lists every trained model the run used and where it came from.

``--retrain`` ignores the shipped model store and the user cache (``IMCLIB_RETRAIN=1`` in
the kernels), retrains every model, and then rewrites the shipped entries
(``imclib/models/``) with the models the run used.

Failures and interruptions:

* A failed notebook is reported by name with its cell (index and first source line) and the
  cause (the exception, the cell timeout, a dead kernel); the other notebooks are stopped.
* A lost message (the kernel finished a cell but its reply never arrived, or the cell's
  outputs stopped short of the kernel's "idle") is found within seconds: while a cell runs,
  a second client asks the kernel for its info on the same shell channel; the kernel answers
  only once the cell is done, so an answer followed by ``LOST_REPLY_GRACE_S`` seconds
  without the cell's reply means the reply was lost. The notebook is then run again from
  the start in a new kernel, ``RETRIES`` times at most, before it is reported as failed.
* SIGINT and SIGTERM stop the run: every kernel (with its process group) is killed, the
  exit status is 128 + the signal number.
* While a run is under way, an ``INCOMPLETE`` file (in ``DIR``, or ``.reproduce/`` in
  place) says so; it is removed when every notebook has run, and otherwise states why the
  run stopped. Executed notebooks are written to a temporary file and moved into place.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime
import math
import os
import queue
import re
import signal
import sys
import threading
import time
from pathlib import Path

from . import cache
from ._files import atomic_write
from .results import read_results

import nbformat
from jupyter_client.session import Session
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
FINDINGS_PAGE = ROOT / "docs" / "findings.md"
TABLE_START, TABLE_END = "<!-- results:start -->", "<!-- results:end -->"
FINDINGS_START, FINDINGS_END = "<!-- findings:start -->", "<!-- findings:end -->"


COLD_SECONDS = {"09_cnn": 1000, "02_mnist": 310, "06_circuit_effects": 304, "05_states_sweep": 246, "03_pca": 140,
                "04_error_decomposition": 104, "07_cost": 93}
"""Seconds each long notebook took with every table recomputed (``--jobs 2``, two side by side,
one thread each, 2026-12-07 on a 2-core AMD EPYC). With ``--jobs`` > 1 the notebooks start longest first (:func:`start_order`), so
the longest does not start last; the order changes no output."""
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
"""What JupyterLab writes for the default kernel: stored as is, opening a notebook does not dirty it."""
WIDGET_NOTE = "Run this cell to get the interactive controls (ipywidgets)."
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_PROGRESS = re.compile(r"\d+%\|")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+(?=>)")
"""The memory address in a default repr such as ``<pandas.io.formats.style.Styler at 0x7f...>``."""
_STYLER_ID = re.compile(r'<table id="T_([0-9a-f]+)"')
"""The random ``uuid`` pandas gives a ``Styler``'s table (``T_<uuid>``, also in its CSS ids)."""


def _stable_text(text: str, tables: list) -> str:
    """``text`` without what changes from run to run or machine to machine: machine paths made
    relative (the repository) or home-relative (``~``), memory addresses dropped from reprs,
    and each pandas ``Styler`` id ``T_<random uuid>`` renamed ``T_table<k>`` (``k`` counts the
    styled tables of the notebook; ``tables`` holds the ids seen so far)."""
    text = text.replace(f"{ROOT}/", "").replace(str(ROOT), ".").replace(str(Path.home()), "~")
    text = _ADDRESS.sub("", text)
    for uuid in _STYLER_ID.findall(text):
        tables.append(uuid)
        text = re.sub(rf"\bT_{uuid}(?![0-9a-f])", f"T_table{len(tables)}", text)
    return text


def _widget_outputs(state: dict, model_id: str) -> list[dict]:
    """The outputs held by the ``Output`` widgets under ``model_id`` in the saved widget
    ``state`` (what the widget showed when the notebook ran: its figure and printed text),
    in the order of the widget tree."""
    found, seen, todo = [], set(), [model_id]
    while todo:
        current = todo.pop(0)
        if current in seen or current not in state:
            continue
        seen.add(current)
        model = state[current].get("state", {})
        found.extend(model.get("outputs", []) or [])
        todo.extend(child[len("IPY_MODEL_"):] for child in model.get("children", []) or []
                    if isinstance(child, str) and child.startswith("IPY_MODEL_"))
    return found


def _clean_outputs(output: dict, state: dict, tables: list) -> list[dict]:
    """An output as users should see it stored (a list: one output may become several).

    A progress bar is dropped (its saved text is the 0 % it started at). Any other widget
    view becomes :data:`WIDGET_NOTE` followed by what the widget showed when the notebook
    ran (from its saved ``Output`` widgets), as plain outputs: the stored notebook holds no
    widget model id and needs no saved widget state. Texts are made stable
    (:func:`_stable_text`)."""
    data = output.get("data", {})
    if WIDGET_VIEW in data:
        if _PROGRESS.search(data.get("text/plain", "")):
            return []
        note = nbformat.v4.new_output("display_data", data={"text/plain": WIDGET_NOTE})
        shown = _widget_outputs(state, data[WIDGET_VIEW].get("model_id", ""))
        return [note, *(kept for item in shown for kept in _clean_outputs(nbformat.from_dict(item), state, tables))]
    for key, value in data.items():
        if isinstance(value, str):
            data[key] = _stable_text(value, tables)
    if isinstance(output.get("text"), str):
        output["text"] = _stable_text(output["text"], tables)
    return [output]


def clean_for_storage(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Normalise an executed notebook for the repository, so that executing it again stores
    the same bytes: outputs cleaned (:func:`_clean_outputs`), consecutive stream outputs of
    one stream merged (:func:`_merged_streams`), the saved widget state and the cells'
    execution timestamps dropped, and the kernelspec JupyterLab writes given, so that
    opening it does not mark it modified."""
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    state = notebook.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    tables = []
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _merged_streams([kept for output in cell.outputs for kept in _clean_outputs(output, state, tables)])
    return notebook


def _merged_streams(outputs: list) -> list:
    """``outputs`` with each run of consecutive ``stream`` outputs of one name (stdout,
    stderr) joined into one: how a print arrives in messages depends on the kernel's timing
    (a busy machine may send one line in two), not on what the notebook printed."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None and previous.get("output_type") == "stream"
                and previous.get("name") == output.get("name")):
            previous["text"] += output["text"]
        else:
            merged.append(output)
    return merged


LOST_REPLY_GRACE_S = 60.0
"""Seconds a cell's reply may lag behind the kernel's answer to a later request (a lost message
costs about this, plus the time to run the notebook again). 10 s proved short on a loaded
machine: with unit tests running beside a ``--jobs 2`` run on 2 cores, the widget cells of
02 and 07 (which send many widget messages before their reply) went past it, and 07 failed
on both of its tries."""
IOPUB_TIMEOUT_S = 30
"""Seconds the outputs of a cell may lag behind its reply before the notebook counts as failed
(nbclient's default, 4 s, drops the missing outputs with a warning)."""
RETRIES = 1
"""Times a notebook is run again from the start after a lost message."""


class NotebookFailed(RuntimeError):
    """A notebook did not run to the end; the message names it, the cell and the cause."""


class Stopped(Exception):
    """The run was stopped (a signal, the total timeout, or another notebook's failure)."""


def _first_line(cell) -> str:
    return next((line.strip() for line in cell.source.splitlines() if line.strip()), "")


class _WatchedClient(NotebookClient):
    """A notebook client that knows the cell it runs, finds lost replies within
    ``grace`` seconds (module docstring), and can be stopped from another thread."""

    def __init__(self, notebook, *, grace: float, stop: threading.Event, **kwargs):
        super().__init__(notebook, **kwargs)
        self.grace, self.stop = grace, stop
        self.cell_index, self.cell, self.lost = None, None, None

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if self.stop.is_set():
            raise Stopped(f"stopped before cell {cell_index}")
        self.cell_index, self.cell = cell_index, cell
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        watchdog = asyncio.ensure_future(self._watch_for_a_lost_reply(cell))
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            watchdog.cancel()

    async def _watch_for_a_lost_reply(self, cell) -> None:
        # its own session: replies are routed by the session id, and the probe must not take the cell's
        session = Session(key=self.km.session.key, signature_scheme=self.km.session.signature_scheme)
        probe = self.km.client(session=session)
        probe.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            await asyncio.sleep(self.grace)  # the cell's request reaches the kernel before the probe
            msg_id = probe.kernel_info()
            while True:  # answered only once the kernel is done with the cell
                try:
                    reply = await probe.shell_channel.get_msg(timeout=1)
                except queue.Empty:
                    continue
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            await asyncio.sleep(self.grace)
            if "shell.execute_reply" in cell.metadata.get("execution", {}):
                return  # the reply came (nbclient records its time); late outputs meet iopub_timeout
            self.lost = (f"the kernel finished the cell, but its reply did not arrive within {self.grace:g} s "
                         "(a lost message)")
            self.kill_kernel()  # nbclient then stops with DeadKernelError
        finally:
            probe.stop_channels()

    def kill_kernel(self) -> None:
        """Kill the kernel and its process group (safe from any thread)."""
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        if process is None or process.poll() is not None:
            return
        pgid = getattr(provisioner, "pgid", None)
        if pgid and hasattr(os, "killpg"):
            try:
                os.killpg(pgid, signal.SIGKILL)
                return
            except ProcessLookupError:
                return
        process.kill()


def _failure(path: Path, client: _WatchedClient, error: BaseException, cell_timeout: int) -> tuple[str, bool]:
    """The report of a failed run of ``path`` and whether it was a lost message (worth a retry)."""
    where = "before its first cell" if client.cell is None else \
        f"cell {client.cell_index} ({_first_line(client.cell)!r})"
    lost = client.lost is not None or (isinstance(error, CellTimeoutError) and "IOPub" in str(error))
    if client.lost is not None:
        cause = client.lost
    elif isinstance(error, CellTimeoutError):
        cause = (f"its outputs did not arrive within {IOPUB_TIMEOUT_S} s of its reply (a lost message)" if lost
                 else f"the cell ran longer than the cell timeout of {cell_timeout} s")
    elif isinstance(error, CellExecutionError):
        cause = f"{error.ename}: {error.evalue}"
    elif isinstance(error, DeadKernelError):
        cause = "the kernel died"
    else:
        cause = f"{type(error).__name__}: {error}"
    return f"{path.name}: {where}: {cause}", lost


def _write_notebook(notebook: nbformat.NotebookNode, destination: Path) -> None:
    """Write ``notebook`` as ``nbformat.write`` would (ending in a newline), atomically and with
    the umask's permissions (:func:`imclib._files.atomic_write`)."""
    text = nbformat.writes(notebook)
    text += "" if text.endswith("\n") else "\n"
    atomic_write(destination, lambda file: file.write(text.encode("utf-8")))


def execute(path: Path, cell_timeout: int, destination: Path | None = None, *, stop: threading.Event | None = None,
            clients: set | None = None, grace: float = LOST_REPLY_GRACE_S, retries: int = RETRIES,
            kernel_env: dict[str, str] | None = None) -> float:
    """Execute one notebook (working directory: its own folder) and write it, cleaned for
    storage (:func:`clean_for_storage`), to ``destination`` (default: in place), through a
    temporary file; return the seconds it took.

    A lost message runs the notebook again from the start, ``retries`` times at most.
    ``stop`` (set from another thread) ends the run at the next cell; the running client is
    kept in ``clients`` meanwhile, so that its kernel can be killed. ``kernel_env``: variables
    added to this process's environment for the kernel (this process's is left unchanged).

    Raises
    ------
    NotebookFailed
        Naming the notebook, the cell (index and first line) and the cause.
    Stopped
        When ``stop`` was set.
    """
    stop = stop or threading.Event()
    clients = set() if clients is None else clients
    start, attempt = time.perf_counter(), 0
    while True:
        notebook = nbformat.read(path, as_version=4)
        client = _WatchedClient(notebook, grace=grace, stop=stop, timeout=cell_timeout, kernel_name="python3",
                                iopub_timeout=IOPUB_TIMEOUT_S, raise_on_iopub_timeout=True, record_timing=True,
                                resources={"metadata": {"path": str(path.parent)}})
        clients.add(client)
        try:
            client.execute(env={**os.environ, **(kernel_env or {})})
            break
        except Exception as error:  # noqa: BLE001 - every cause is reported with the notebook and cell
            if stop.is_set():
                raise Stopped(f"{path.name} stopped") from None
            report, lost = _failure(path, client, error, cell_timeout)
            if not lost or attempt == retries:
                raise NotebookFailed(report + (f" (after {attempt} retries)" if attempt else "")) from None
            attempt += 1
            print(f"  {report}; running {path.name} again ({attempt} of {retries})", file=sys.stderr, flush=True)
        finally:
            clients.discard(client)
    _write_notebook(clean_for_storage(notebook), destination or path)
    return time.perf_counter() - start


def _format(value) -> str:
    """A measured or paper value for the table: a number to 4 significant digits, a text as
    it is, anything else as :func:`_format_item` writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return _format_item(value)


def _format_item(value) -> str:
    """A value as Python prints it, but "n/a" for a missing or non-finite number (``null`` in
    results.json), also inside lists and dicts."""
    if isinstance(value, list):
        return f"[{', '.join(map(_format_item, value))}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_format_item(item)}" for key, item in value.items()) + "}"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return repr(value)


BRIEF_CHARS = 160
"""Longest measured value the README table shows in full; longer ones (tables, per-N lists)
are left to ``figures/results.json``."""


def _brief(value) -> str:
    """:func:`_format` of ``value``, or, for a list or dict whose text is longer than
    :data:`BRIEF_CHARS` characters, a pointer to ``results.json``."""
    text = _format(value)
    if len(text) <= BRIEF_CHARS or not isinstance(value, (list, dict)):
        return text
    return f"({len(value)} entries: see `figures/results.json`)"


def _verdict(entry: dict) -> str:
    """The entry's verdict (``reproduced``, ``partly``, ``not reproduced``), else its pass flag."""
    verdict = entry.get("verdict") or ("reproduced" if entry["passed"] else "not reproduced")
    return verdict if verdict == "reproduced" else f"**{verdict}**"


def results_table(results: dict) -> str:
    """Markdown table of ``results.json``: claim, statement, criterion, measured (values
    longer than :data:`BRIEF_CHARS` characters as a pointer to the file), paper, verdict per
    decode scheme and overall verdict."""
    lines = ["| claim | statement | criterion | measured | paper | by decode scheme | verdict |",
             "|---|---|---|---|---|---|---|"]
    for claim, entry in results.items():
        measured = "; ".join(f"{k} = {_brief(v)}" for k, v in entry["measured"].items())
        paper = "; ".join(f"{k} = {_format(v)}" for k, v in entry["paper"].items()) or "–"
        schemes = "; ".join(f"{k}: {'holds' if v else '**fails**'}" for k, v in (entry.get("by_scheme") or {}).items())
        lines.append(f"| {claim} | {entry['statement']} | {entry.get('criterion', '–')} | {measured} | {paper} | "
                     f"{schemes or '–'} | {_verdict(entry)} |")
    return "\n".join(lines)


def _markdown_output(cell) -> str | None:
    for output in cell.get("outputs", []):
        if "text/markdown" in output.get("data", {}):
            return output["data"]["text/markdown"].strip()
    return None


def finding(notebook: nbformat.NotebookNode) -> str | None:
    """The computed "What we found" paragraph of an executed notebook: the markdown output of
    the first code cell after its last "What we found" heading, or of the last code cell that
    writes the heading itself (without the heading); None if there is none."""
    cells = notebook.cells
    headings = [i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and "What we found" in cell.source]
    for cell in cells[headings[-1] + 1:] if headings else []:
        if cell.cell_type == "code":
            return _markdown_output(cell)
    for cell in reversed(cells):
        text = _markdown_output(cell) if cell.cell_type == "code" and "What we found" in cell.source else None
        if text:
            return "\n".join(line for line in text.splitlines() if "What we found" not in line).strip()
    return None


def findings_text(notebooks: list[Path]) -> str:
    """Markdown: each executed notebook's "What we found" paragraph under its name."""
    parts = []
    for path in notebooks:
        found = finding(nbformat.read(path, as_version=4))
        if found:
            parts.append(f"**`{path.stem}`**\n\n{found}")
    return "\n\n".join(parts)


def _replaced(path: Path, start: str, end: str, body: str) -> str:
    """The text of the file ``path`` with ``body`` between its markers ``start`` and ``end``."""
    text = path.read_text()
    if start not in text or end not in text:
        raise RuntimeError(f"{path.name} lacks the markers {start} ... {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def update_readme(results: dict, readme: Path = README, notebooks: list[Path] | None = None,
                  findings_page: Path = FINDINGS_PAGE) -> None:
    """Replace the text between the results markers in README.md with the table, and (given
    executed ``notebooks``) the text between the findings markers of ``findings_page``
    (docs/findings.md) with their "What we found" paragraphs; both files are checked for
    their markers before either is written."""
    texts = {readme: _replaced(readme, TABLE_START, TABLE_END, results_table(results))}
    if notebooks is not None:
        texts[findings_page] = _replaced(findings_page, FINDINGS_START, FINDINGS_END, findings_text(notebooks))
    for path, text in texts.items():
        path.write_text(text)


class _Run:
    """The notebooks under way: stop them all (kill their kernels) on a signal, the total
    timeout or a failure."""

    def __init__(self) -> None:
        self.stop, self.clients, self.signal = threading.Event(), set(), None

    def halt(self) -> None:
        self.stop.set()
        for client in list(self.clients):
            client.kill_kernel()

    def on_signal(self, signum, frame) -> None:
        self.signal = self.signal or signum
        self.halt()


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
"""Thread counts of the kernels' BLAS and numba (the read kernels) that :func:`kernel_threads` sets."""


def kernel_threads(jobs: int, cpus: int | None = None, environ=os.environ) -> dict[str, str]:
    """The thread settings each of ``jobs`` kernels gets: ``max(1, cpus // jobs)`` threads
    (``cpus``: this machine's, by default) for every variable of :data:`THREAD_VARIABLES`
    that ``environ`` does not set (a variable the user set is kept). Passed to the kernels'
    environment only: this process's threads and environment do not change.

    Two kernels of two threads each on two cores spin and preempt one another: on a 2-core
    AMD EPYC, two CNN evaluations side by side (4,000 test images, two device seeds each)
    took 9.5-9.9 s each with the default threads and 7.6-8.0 s with one thread each, the
    same accuracies."""
    threads = max(1, (cpus or os.cpu_count() or 1) // max(jobs, 1))
    return {variable: str(threads) for variable in THREAD_VARIABLES if variable not in environ}


ALLOCATOR_VARIABLES = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}
"""glibc's allocator settings for the kernels (:func:`kernel_env`): every block comes from the
heap and freed memory stays in the process, so that the large arrays a study allocates and
frees again and again (im2col rows and their DAC codes, 64 MiB per chunk of images; the
decoded outputs) reuse the same pages. By default each block above 32 MiB is a fresh
mapping that the system faults in and zeroes page by page, and is unmapped again when
freed: on a 2-core AMD EPYC VM a CNN evaluation of the 10,000 test images spent 1.3-1.6 s of
system time so (8.3-9.6 s user), against 0.01-0.2 s with these (6.7-8.7 s user); the same
logits. The price: a kernel keeps its peak memory until it exits. Other C libraries ignore them."""


def kernel_env(jobs: int, environ=os.environ) -> dict[str, str]:
    """Variables added to each kernel's environment: :func:`kernel_threads` when ``jobs`` > 1,
    and :data:`ALLOCATOR_VARIABLES`; a variable that ``environ`` sets is kept as it is."""
    threads = kernel_threads(jobs, environ=environ) if jobs > 1 else {}
    return {**threads, **{name: value for name, value in ALLOCATOR_VARIABLES.items() if name not in environ}}


def start_order(paths: list[Path], jobs: int) -> list[Path]:
    """``paths`` in the order they start: as given with one job; with more, by
    :data:`COLD_SECONDS` (largest first, the others after them in the given order)."""
    if jobs == 1:
        return list(paths)
    return sorted(paths, key=lambda path: -COLD_SECONDS.get(path.stem, 0))


def _run_all(paths: list[Path], notebooks_out: Path | None, cell_timeout: int, total_timeout: int, jobs: int,
             run: _Run, kernel_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Execute ``paths`` (in order, or ``jobs`` at a time, longest first: :func:`start_order`),
    each notebook's client in a thread of this process; return the exit status and, unless 0, why the run stopped: 124 when the
    total timeout passes, 1 when a notebook fails, 128 + n on signal n."""
    deadline = time.perf_counter() + total_timeout

    def task(path: Path) -> float:
        if run.stop.is_set():
            raise Stopped(f"{path.name} not started")
        print(f"running {path.name} ...", flush=True)
        destination = None if notebooks_out is None else notebooks_out / path.name
        return execute(path.resolve(), cell_timeout, destination, stop=run.stop, clients=run.clients,
                       kernel_env=kernel_env)

    status, reason = 0, ""
    with concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="notebook") as pool:
        futures = {pool.submit(task, path): path for path in start_order(paths, jobs)}
        pending = set(futures)
        while pending and not status:
            done, pending = concurrent.futures.wait(pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                try:
                    print(f"  {futures[future].name} done in {future.result():.0f} s", flush=True)
                except NotebookFailed as failure:
                    status, reason = 1, f"failed: {failure}"
                except Stopped:
                    pass
            if run.signal is not None:
                status, reason = 128 + run.signal, f"stopped by {signal.Signals(run.signal).name}"
            elif not status and pending and time.perf_counter() > deadline:
                running = ", ".join(sorted(futures[f].name for f in pending if f.running())) or "none"
                status, reason = 124, f"total timeout of {total_timeout} s reached (running: {running})"
        if status:
            print(reason, file=sys.stderr, flush=True)
            run.halt()
            for future in pending:
                future.cancel()
    return status, reason


def _output_dir(args: argparse.Namespace) -> Path:
    return Path(args.output).expanduser().resolve()


def _refusal(args: argparse.Namespace, paths: list[Path]) -> str | None:
    """Why the arguments cannot run (checked before anything is created), else None."""
    for name, value in (("--jobs", args.jobs), ("--cell-timeout", args.cell_timeout),
                        ("--total-timeout", args.total_timeout)):
        if value < 1:
            return f"{name} must be >= 1, got {value}"
    if args.output is not None:
        if not args.output.strip():
            return "--output must name a folder outside the repository, got an empty string"
        output = _output_dir(args)
        if output == ROOT or output.is_relative_to(ROOT):
            return (f"--output must be a folder outside the repository {ROOT}, got {args.output!r} ({output}); "
                    "omit --output to regenerate the repository in place")
        if output.exists() and not output.is_dir():
            return f"--output must be a folder, got the file {output}"
    elif os.environ.get("IMCLIB_FIGURES_DIR"):
        return ("IMCLIB_FIGURES_DIR is set, but reproduce without --output rewrites the repository's "
                "notebooks, figures/, README and docs/findings.md together: pass --output DIR instead")
    missing = [str(path) for path in paths if path.suffix != ".ipynb" or not path.is_file()]
    if missing:
        return f"notebooks must be existing .ipynb files, got {', '.join(missing)}"
    return None


INCOMPLETE = "INCOMPLETE"
"""Marker file of a run under way (in DIR, or .reproduce/ in place); removed when it completes."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--output", metavar="DIR",
                        help="write notebooks, figures, results.json and results.md under DIR (outside the "
                             "repository) instead of rewriting the repository")
    parser.add_argument("--retrain", action="store_true",
                        help="ignore the shipped models and the user cache, retrain, and rewrite "
                             "the shipped entries (imclib/models/) with the models used")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may take (>= 1)")
    parser.add_argument("--total-timeout", type=int, default=3600, help="seconds all notebooks may take (>= 1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks executed at once, each in its own kernel (default 1: in order)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    refusal = _refusal(args, paths)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    if args.output is None:
        figures, notebooks_out, log = ROOT / "figures", None, ROOT / ".reproduce" / "models-used.jsonl"
    else:
        output = _output_dir(args)
        figures, notebooks_out, log = output / "figures", output / "notebooks", output / "models-used.jsonl"
        notebooks_out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    marker = log.parent / INCOMPLETE
    marker.write_text(f"imclib.reproduce started {datetime.datetime.now().isoformat(timespec='seconds')} with "
                      f"{' '.join(sys.argv[1:] if argv is None else argv)}\nThis file is removed when every notebook "
                      "has run: until then (or if the run stopped) the outputs here are partial.\n")
    log.write_text("")
    # The kernels nbclient starts inherit these.
    os.environ["IMCLIB_FIGURES_DIR"] = str(figures)
    os.environ["IMCLIB_MODEL_LOG"] = str(log)
    if args.retrain:
        os.environ["IMCLIB_RETRAIN"] = "1"
    run = _Run()
    handlers = {signum: signal.signal(signum, run.on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        status, reason = _run_all(paths, notebooks_out, args.cell_timeout, args.total_timeout, args.jobs, run,
                                  kernel_env(args.jobs))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if status:
        with marker.open("a") as file:
            file.write(f"The run stopped: {reason}\n")
        return status
    if not (figures / "results.json").exists():
        reason = f"the notebooks recorded no claim ({figures / 'results.json'} is missing)"
        print(reason, file=sys.stderr)
        with marker.open("a") as file:
            file.write(f"The run stopped: {reason}\n")
        return 1
    results = read_results(figures / "results.json")
    if notebooks_out is None:
        update_readme(results, notebooks=sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
    else:
        (notebooks_out.parent / "results.md").write_text(results_table(results) + "\n")
    marker.unlink()
    print(results_table(results))
    if args.retrain:
        shipped = cache.ship_models(log)
        print(f"rewrote {len(shipped)} shipped models in {cache.shipped_store_dir()}")
    print(f"models used: {log} (ship them with python -m imclib.cache --ship-models {log})")
    return 0  # every notebook ran; an honest "not reproduced" verdict is a result, not a failure


if __name__ == "__main__":
    sys.exit(main())
