"""End-to-end in JupyterLab (headless Chromium): one light study notebook runs in full, and
every study notebook's widgets work.

Run with ``python -m pytest tests/browser -m browser -q`` (needs ``/usr/bin/chromium`` from
Debian's ``chromium`` package and ``playwright`` from the ``test`` extra; Playwright's own
browser downloads are not used). Per notebook ``notebooks/NN_topic.ipynb`` (plus this suite's
own ``tests/browser/fixtures/sample.ipynb``) the test

1. opens a *copy* of the notebook in a private JupyterLab (see conftest.py), clears all
   outputs and runs all cells (``notebook:run-all-cells``) in the venv's ``python3`` kernel.
   The notebooks of ``conftest.END_TO_END`` (``00_crossbar_basics`` and the sample) are
   served in full: the one real end-to-end run, as a reader would do it. Every other study
   notebook is served reduced to its first code cell (imports and setup) and its widget
   cells (``conftest.widget_notebook``): running all cells then re-executes only what the
   widgets depend on, with the trained models and the result tables from the shipped store
   or the cache (a widget whose study caches its table reads it, as does this test's
   recomputation of the value it shows). Whether every cell of those notebooks runs is
   nbval's job (``workbook.py test`` runs it first);
2. fails if any cell ends in an error or a traceback is shown (also inside widget outputs),
   naming the cell; or if the notebook exceeds its time budget, naming the cell still
   running;
3. checks every *figure cell* shows an ``<img>`` (figure cells: see
   tests/test_notebook_outputs.py; cells whose stored version has an ``image/png`` count too);
4. checks every widget view renders (no "Loading widget" / "Error displaying widget");
5. for every cell printing a ``WIDGET_CHECK`` line (at least one per notebook): moves the
   cell's first slider one step (ArrowRight on the handle, ArrowLeft if at the maximum),
   or if it has no slider, its first dropdown to the next option (the previous one if it
   is the last), waits for the printed line to change, and checks the contract below;
6. saves a screenshot ``test-artifacts/<notebook>.png`` (also when the test fails) and a
   JSON summary ``test-artifacts/<notebook>.json``.

A last test checks the repository's notebook files are byte-identical to before the suite
(the suite serves copies; a concurrent ``workbook.py reproduce`` rewriting them also trips it).

Time budgets: every wait is a quiet-machine number of seconds (the ``QUIET_*`` constants)
times the slowdown factor measured by ``conftest.calibrate`` at session start and again
before each notebook (the larger one is kept), so the suite waits longer on a busy or slow
machine instead of failing at a fixed limit. The factors are printed in the summary.

Knobs (environment): ``IMCLIB_BROWSER_NOTEBOOKS`` (``os.pathsep``-separated .ipynb paths to
run in full instead; ``*.py`` files next to them are served too), ``IMCLIB_BROWSER_SLOWDOWN``
(a number: use it instead of the measured factor), ``IMCLIB_CHROMIUM`` (browser binary,
default ``/usr/bin/chromium``). The suite is skipped only when that binary is missing and ``CI`` is not
``true``; a browser that cannot start is a failure.

The WIDGET_CHECK contract (what each notebook's widget must do)
----------------------------------------------------------------
Every interactive widget cell prints, **each time its callback runs** (initially and after
every change of a control) **and only when** ``IMCLIB_WIDGET_CHECK=1`` (the suite sets it for
its kernels, so a reader never sees the line), one line into the cell's output (a plain ``print`` inside the
``interact``/``interactive`` callback or inside the ``with out:`` block of an explicit
``Output``)::

    WIDGET_CHECK {"function": "imclib.widgets.<fn>", "kwargs": {...}, "value": <float>}

* ``WIDGET_CHECK `` (with one space) is followed by one line of JSON (``json.dumps``).
* ``function`` is the dotted path of a function in ``imclib.widgets`` (study notebooks must
  use that module; the suite's sample uses ``sample_widgets``).
* ``kwargs`` are JSON values (numbers, strings, booleans) such that
  ``imclib.widgets.<fn>(**kwargs)`` returns ``value`` -- the number the widget shows for the
  *current* control setting. The test recomputes it in the pytest process (same cache dirs
  and environment as the kernel, so the function must be deterministic: fixed seeds, cached
  models) and requires ``math.isclose(recomputed, value, rel_tol=1e-6, abs_tol=1e-12)``.
  Print the full float (``json.dumps`` does), not a rounded one.
* The control the test moves must be one of ``kwargs``: after the move, some kwarg must
  differ from the line printed before the move and equal the control's displayed value
  (slider readout, numerically to the readout's precision, or dropdown label, as ``str``
  or numerically). Optionally the JSON may name it: ``"control": "<kwarg name>"``.
* The moved control is the cell's **first slider** (``IntSlider``/``FloatSlider``/
  ``SelectionSlider`` with ``readout=True``) or, if none, its first ``Dropdown``; make
  that a control whose neighbouring setting is cheap (no new training).
* A widget cell may depend only on the notebook's first code cell (the suite runs nothing
  else before it).
* ``fn(**kwargs)`` must return a float (``float(value)``) and be fast (seconds).
* The figure of a widget cell is drawn inline (``plt.show()`` inside the callback); the
  test requires the cell still shows an image after the move if it showed one before.

Besides, each figure cell must show its figure inline, no cell may raise, and every study
notebook must carry a kernelspec named ``python3``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from pathlib import Path

import nbformat
import pytest

from test_notebook_outputs import (  # tests/ is put on sys.path by conftest
    figure_cell_indices,
    saved_image_cell_indices,
)

pytestmark = pytest.mark.browser

# Seconds each step may take on a quiet machine, generous (about 3x measured); every wait is
# this times the calibrated slowdown factor (Budget.seconds).
QUIET_PAGE_LOAD_S = 60
QUIET_RUN_FULL_S = 180
QUIET_RUN_WIDGETS_S = 90
QUIET_RENDER_S = 60
QUIET_WIDGET_UPDATE_S = 60
QUIET_IDLE_S = 30
POLL_S = 0.25
CHECK_PREFIX = "WIDGET_CHECK "
STUDY_FUNCTION_PREFIX = "imclib.widgets."
SAMPLE_FUNCTION_PREFIX = "sample_widgets."
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"
# The study notebooks as they land, in order, then the suite's own sample (always run, so the
# machinery is tested even before any study notebook exists); IMCLIB_BROWSER_NOTEBOOKS replaces
# the list. Same list as conftest.served_notebooks().
NOTEBOOKS = ([Path(p).resolve() for p in os.environ["IMCLIB_BROWSER_NOTEBOOKS"].split(os.pathsep) if p]
             if os.environ.get("IMCLIB_BROWSER_NOTEBOOKS")
             else [*sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), FIXTURE_DIR / "sample.ipynb"])

# ------------------------------------------------------------------ page-side helpers

APP_READY_JS = """(path) => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  return !!(panel && panel.context && panel.context.path === path && panel.context.isReady
            && panel.sessionContext && panel.sessionContext.session
            && panel.sessionContext.session.kernel && panel.content && panel.content.widgets.length);
}"""

KERNEL_READY_JS = """async (ms) => {
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('kernel not ready after ' + ms + ' ms')), ms));
  const panel = window.jupyterapp.shell.currentWidget;
  await Promise.race([panel.sessionContext.ready, timeout]);
  const kernel = panel.sessionContext.session.kernel;
  await Promise.race([kernel.info, timeout]);
  // Count the kernel's busy periods: every request (also a widget's comm message) makes one.
  window.__imclibBusy = 0;
  kernel.statusChanged.connect((_, status) => { if (status === 'busy') { window.__imclibBusy += 1; } });
  return {name: kernel.name, status: kernel.status};
}"""

START_RUN_ALL_JS = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:clear-all-cell-outputs');
  window.__imclibRunAll = 'running';
  app.commands.execute('notebook:run-all-cells').then(
    (ok) => { window.__imclibRunAll = 'done:' + ok; },
    (err) => { window.__imclibRunAll = 'failed:' + err; });
  return true;
}"""

# One snapshot of the notebook: kernel status, run-all state, and per cell the model's
# execution count and errors plus what the DOM shows (images, widget views, tracebacks, text).
STATE_JS = """(path) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  if (!panel || !panel.context || panel.context.path !== path) { return {lost: true}; }
  const session = panel.sessionContext.session;
  const kernel = session && session.kernel;
  const cells = panel.content.widgets.map((cell, index) => {
    const model = cell.model;
    const code = model.type === 'code';
    const outputs = code ? model.outputs.toJSON() : [];
    const node = cell.node;
    const outputNodes = Array.from(node.querySelectorAll('.jp-OutputArea-output'));
    // top-level widget views: the output-area children of outputs with the widget-view mime type
    const views = outputs.map((o, k) => [o, k])
      .filter(([o]) => o.data && o.data['application/vnd.jupyter.widget-view+json'])
      .map(([o, k]) => (cell.outputArea && cell.outputArea.widgets[k] ? cell.outputArea.widgets[k].node : null));
    const stderr = Array.from(node.querySelectorAll(
      '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="application/vnd.jupyter.error"]'))
      .map((n) => n.innerText);
    return {
      index,
      type: model.type,
      source: model.sharedModel.getSource(),
      count: code ? model.executionCount : null,
      running: code && /\\*/.test((cell.promptNode && cell.promptNode.textContent) || ''),
      errors: outputs.filter((o) => o.output_type === 'error').map((o) => o.ename + ': ' + o.evalue),
      views: views.map((v) => ({
        rendered: !!(v && v.querySelector('.jupyter-widgets')),
        text: v ? v.innerText.slice(0, 300) : '<no output node>',
      })),
      images: Array.from(node.querySelectorAll('.jp-OutputArea-output img'))
        .map((img) => (img.getAttribute('src') || '').slice(-200) + '#' + (img.getAttribute('src') || '').length),
      tracebacks: stderr.filter((t) => /Traceback \\(most recent call last\\)|Error\\s*Traceback/.test(t))
        .map((t) => t.slice(0, 2000)),
      text: outputNodes.length ? node.querySelector('.jp-Cell-outputArea').innerText : '',
    };
  });
  return {lost: false, kernel: kernel ? kernel.status : 'none', runAll: window.__imclibRunAll || null,
          busyCount: window.__imclibBusy || 0,
          cellCount: panel.content.widgets.length, domCells: panel.content.node.querySelectorAll('.jp-Cell').length,
          cells};
}"""


# ------------------------------------------------------------------ python-side helpers


class NotebookRun:
    """Deadline, progress and failure messages of one notebook's test."""

    def __init__(self, page, notebook: Path, path: str, budget_s: float, seconds):
        self.page = page
        self.notebook = notebook
        self.path = path
        self.name = notebook.name
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.deadline = self.start + budget_s
        self.seconds = seconds  # quiet-machine seconds -> this machine's
        self.timings: dict[str, float] = {}
        self.last_state: dict | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def mark(self, step: str) -> None:
        self.timings[step] = round(time.monotonic() - self.start, 2)

    def state(self) -> dict:
        state = self.page.evaluate(STATE_JS, self.path)
        if state.get("lost"):
            self.fail("the notebook is no longer the current JupyterLab widget")
        self.last_state = state
        return state

    def running_cell(self) -> str:
        cells = (self.last_state or {}).get("cells", [])
        running = [c for c in cells if c.get("running")]
        pending = [c for c in cells if c["type"] == "code" and c["source"].strip() and c["count"] is None]
        cell = (running or pending or [None])[0]
        return describe(cell) if cell else "no cell running"

    def check(self, condition, message: str) -> None:
        if not condition:
            self.fail(message)

    def fail(self, message: str) -> None:
        console = "\n".join(self.page.console_errors[-10:])
        pytest.fail(f"{self.name}: {message}" + (f"\nbrowser console errors:\n{console}" if console else ""),
                    pytrace=False)

    def wait_for(self, predicate, what: str, limit: float | None = None, detail=lambda: ""):
        """Poll ``predicate(state)`` until it returns a truthy value; fail naming the running cell."""
        end = min(self.deadline, time.monotonic() + limit) if limit else self.deadline
        while True:
            state = self.state()
            shown = [c for c in state["cells"] if c["tracebacks"]]
            if shown:
                self.fail(f"{describe(shown[0])} shows a traceback (while waiting for {what}):\n"
                          f"{shown[0]['tracebacks'][0][-1500:]}")
            result = predicate(state)
            if result:
                return result
            if state["kernel"] == "dead":
                self.fail(f"the kernel died while waiting for {what} (at {self.running_cell()})")
            if time.monotonic() > end:
                budget = "notebook timeout" if end == self.deadline else f"{limit:.0f} s limit"
                self.fail(f"timed out ({budget}, {self.budget_s:.0f} s for this notebook) waiting for {what}; "
                          f"still at {self.running_cell()}" + (f"; {detail()}" if detail() else ""))
            time.sleep(POLL_S)


def describe(cell: dict | None) -> str:
    if not cell:
        return "<no cell>"
    first = next((line for line in cell["source"].splitlines() if line.strip()), "<empty>")
    return f"cell {cell['index']} ({first.strip()[:70]!r})"


def check_lines(text: str) -> list[dict]:
    """The parsed ``WIDGET_CHECK`` lines of an output text, in order."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(CHECK_PREFIX):
            try:
                found.append(json.loads(line[len(CHECK_PREFIX):]))
            except json.JSONDecodeError:
                found.append({"unparsable": line})
    return found


def last_check(state: dict, index: int) -> dict | None:
    lines = check_lines(state["cells"][index]["text"])
    return lines[-1] if lines else None


def resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def matches_display(display: str, value) -> bool:
    """Whether a control's displayed text (readout or option label) shows ``value``."""
    shown = display.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return shown == str(value)
    text = shown.replace("\u2212", "-").replace(",", "")
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        number = float(text) * scale
    except ValueError:
        return False
    mantissa = text.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    tolerance = 0.5 * 10.0 ** (exponent - decimals) * scale + 1e-9 * abs(number)
    return abs(number - value) <= tolerance


def move_control(run: NotebookRun, index: int) -> dict:
    """Move the cell's first slider one step (else its first dropdown to a neighbour option)."""
    page = run.page
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    sliders = cell.locator(".widget-slider")
    dropdowns = cell.locator(".widget-dropdown")
    if sliders.count():
        slider = sliders.first
        vertical = "widget-vslider" in (slider.get_attribute("class") or "")
        readout = slider.locator(".widget-readout")
        if not readout.count() or not readout.first.is_visible():
            run.fail(f"cell {index}: the first slider has no visible readout (contract: readout=True)")
        label = slider.locator(".widget-label").first.inner_text() if slider.locator(".widget-label").count() else ""
        before = readout.first.inner_text().strip()
        handle = slider.locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        after = before
        for key in (("ArrowUp", "ArrowDown") if vertical else ("ArrowRight", "ArrowLeft")):
            handle.focus()
            handle.press(key)
            end = time.monotonic() + run.seconds(5)
            while time.monotonic() < end:
                after = readout.first.inner_text().strip()
                if after != before:
                    break
                time.sleep(0.1)
            if after != before:
                break
        if after == before:
            run.fail(f"cell {index}: slider {label!r} did not move from {before!r} with the arrow keys")
        return {"kind": "slider", "label": label, "before": before, "after": after, "key": key}
    if dropdowns.count():
        dropdown = dropdowns.first
        select = dropdown.locator("select").first
        label = dropdown.locator(".widget-label").first.inner_text() if dropdown.locator(".widget-label").count() else ""
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("(s) => s.selectedIndex")
        if len(options) < 2:
            run.fail(f"cell {index}: dropdown {label!r} has fewer than two options")
        target = current + 1 if current + 1 < len(options) else current - 1
        select.scroll_into_view_if_needed()
        select.select_option(index=target)
        return {"kind": "dropdown", "label": label, "before": options[current].strip(),
                "after": options[target].strip()}
    run.fail(f"cell {index} prints WIDGET_CHECK but has no slider or dropdown to move")
    raise AssertionError  # unreachable


def screenshot(page, path: Path, index: int | None = None) -> None:
    try:
        if index is not None:
            page.locator(".jp-Notebook .jp-Cell").nth(index).scroll_into_view_if_needed(timeout=5000)
        page.screenshot(path=str(path), timeout=15000)
    except Exception:  # noqa: BLE001 - a screenshot must not mask the real failure
        pass


# ------------------------------------------------------------------ the tests


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_widgets_work(notebook: Path, browser, lab_server, page, timings, widget_updates, budget):
    ARTIFACTS.mkdir(exist_ok=True)
    original = nbformat.read(notebook, as_version=4)
    is_study = notebook.parent == ROOT / "notebooks"
    allowed_prefix = (STUDY_FUNCTION_PREFIX,) if is_study else (STUDY_FUNCTION_PREFIX, SAMPLE_FUNCTION_PREFIX)
    if original.metadata.get("kernelspec", {}).get("name") != "python3":
        pytest.fail(f"{notebook.name}: kernelspec must be 'python3' (got {original.metadata.get('kernelspec')})",
                    pytrace=False)
    served = lab_server.served_path(notebook)
    full = lab_server.full[served]
    stored = nbformat.read(lab_server.root_dir / served, as_version=4)  # what the server serves

    factor = budget.recalibrate()
    page_load_s = budget.seconds(QUIET_PAGE_LOAD_S)
    n_widgets = sum(1 for c in stored.cells if c.cell_type == "code" and "widget" in c.source)
    quiet_total = (QUIET_PAGE_LOAD_S + (QUIET_RUN_FULL_S if full else QUIET_RUN_WIDGETS_S) + QUIET_RENDER_S
                   + max(n_widgets, 1) * (QUIET_WIDGET_UPDATE_S + QUIET_IDLE_S))
    run = NotebookRun(page, notebook, served, budget.seconds(quiet_total), budget.seconds)
    summary: dict = {"notebook": notebook.name, "mode": "full" if full else "widget cells",
                     "slowdown_factor": factor, "budget_s": round(run.budget_s), "widget_checks": []}
    focus_cell = None
    try:
        # 1. open and run everything
        page.goto(lab_server.url(f"lab/tree/{run.path}?token={lab_server.token}&reset"),
                  timeout=page_load_s * 1000)
        try:
            page.wait_for_function(APP_READY_JS, arg=run.path, timeout=page_load_s * 1000,
                                   polling=250)
        except Exception as exc:  # noqa: BLE001
            run.fail(f"JupyterLab did not open the notebook with a kernel within {page_load_s:.0f} s "
                     f"({type(exc).__name__}); server log tail:\n{lab_server.log_tail(2000)}")
        try:
            kernel = page.evaluate(KERNEL_READY_JS, page_load_s * 1000)
        except Exception as exc:  # noqa: BLE001
            run.fail(f"the kernel did not become ready: {exc}; server log tail:\n{lab_server.log_tail(2000)}")
        run.check(kernel["name"] == "python3", f"the notebook runs kernel {kernel}, not python3")
        run.mark("kernel_ready_s")
        page.evaluate(START_RUN_ALL_JS)
        state = run.wait_for(lambda s: s["runAll"] not in (None, "running") and s["kernel"] == "idle" and s,
                             "all cells to finish")
        run.mark("run_all_s")

        # 2. errors
        run.check(state["cellCount"] == len(stored.cells) == state["domCells"],
                  f"{state['cellCount']} cells in the model, {state['domCells']} in the DOM, "
                  f"{len(stored.cells)} in the file")
        errors = [f"{describe(c)}: {'; '.join(c['errors'] or c['tracebacks'])[:600]}"
                  for c in state["cells"] if c["errors"] or c["tracebacks"]]
        if errors:
            run.fail("cells ended in an error:\n" + "\n".join(errors))
        if state["runAll"] != "done:true":
            run.fail(f"run-all did not complete ({state['runAll']}); at {run.running_cell()}")
        unrun = [describe(c) for c in state["cells"]
                 if c["type"] == "code" and c["source"].strip() and c["count"] is None]
        if unrun:
            run.fail(f"cells were not executed: {unrun}")

        # 3 + 4. figures and widgets render (widget views render asynchronously)
        figure_cells = sorted(set(figure_cell_indices(stored)) | set(saved_image_cell_indices(stored)))
        summary["figure_cells"] = figure_cells

        def rendered(s):
            missing = [i for i in figure_cells if not s["cells"][i]["images"]]
            # Plain figure cells have their image as soon as the run is done; only widgets render late.
            static_missing = [describe(s["cells"][i]) for i in missing if not s["cells"][i]["views"]]
            if static_missing and time.monotonic() - render_start > budget.seconds(5):
                run.fail(f"figure cells show no image: {static_missing}")
            views = [(c, v) for c in s["cells"] for v in c["views"]]
            pending = [c["index"] for c, v in views if not v["rendered"] or "Loading widget" in v["text"]]
            broken = [f"{describe(c)}: {v['text'][:200]!r}" for c, v in views if "Error displaying widget" in v["text"]]
            if broken:
                run.fail("widgets failed to render:\n" + "\n".join(broken))
            problem[0] = (f"figure cells without an image: {[describe(s['cells'][i]) for i in missing]}; "
                          f"widget views not rendered in cells {sorted(set(pending))}")
            return not missing and not pending and s

        problem, render_start = [""], time.monotonic()
        state = run.wait_for(rendered, "figures and widgets to render", limit=budget.seconds(QUIET_RENDER_S), detail=lambda: problem[0])
        run.mark("rendered_s")
        widget_cells = [c["index"] for c in state["cells"] if c["views"]]
        summary["widget_cells"] = widget_cells
        run.check(widget_cells, "no widget is rendered in any cell")
        tracebacks = [describe(c) for c in state["cells"] if c["tracebacks"]]
        if tracebacks:
            run.fail(f"tracebacks shown in {tracebacks}")

        # 5. move one control per WIDGET_CHECK cell and check the recomputed value
        check_cells = [c["index"] for c in state["cells"] if check_lines(c["text"])]
        if not check_cells:
            run.fail(f"no cell prints a '{CHECK_PREFIX.strip()} {{...}}' line (see the contract in "
                     f"tests/browser/test_jupyterlab.py); widget cells: {[describe(state['cells'][i]) for i in widget_cells]}")
        for index in check_cells:
            focus_cell = index
            before = last_check(state, index)
            images_before = state["cells"][index]["images"]
            if "unparsable" in before:
                run.fail(f"cell {index}: WIDGET_CHECK line is not JSON: {before['unparsable'][:300]}")
            busy_before, idle_since = state["busyCount"], [None]
            shot_before = ARTIFACTS / f"{notebook.stem}-cell{index}-before.png"
            screenshot(page, shot_before, index)
            moved = move_control(run, index)
            moved_at = time.monotonic()

            def updated(s, before=before, index=index, busy_before=busy_before, moved=moved):
                line = last_check(s, index)
                if line is not None and line != before and s["kernel"] == "idle":
                    return line
                # The callback re-ran (the kernel was busy, and idle for 3 s since) but printed the same line.
                if s["busyCount"] > busy_before and s["kernel"] == "idle":
                    idle_since[0] = idle_since[0] or time.monotonic()
                    if time.monotonic() - idle_since[0] > run.seconds(3):
                        run.fail(f"cell {index}: after moving {moved['kind']} {moved['label']!r} {moved['before']} -> "
                                 f"{moved['after']} the widget re-ran but its WIDGET_CHECK line "
                                 f"{'is gone' if line is None else 'did not change'} (contract: kwargs must "
                                 f"reflect the control's new value); last line: {line}")
                else:
                    idle_since[0] = None
                return None

            after = run.wait_for(updated, f"cell {index}'s WIDGET_CHECK line to change after moving "
                                          f"{moved['kind']} {moved['label']!r} {moved['before']} -> {moved['after']}",
                                 limit=budget.seconds(QUIET_WIDGET_UPDATE_S))
            update_s = round(time.monotonic() - moved_at, 2)  # control moved -> new value shown (polling included)
            widget_updates[f"{notebook.name} cell {index}"] = update_s
            time.sleep(0.5)  # let a clear_output(wait=True) re-render settle, then re-read
            state = run.wait_for(lambda s: s["kernel"] == "idle" and s, "the kernel to become idle",
                                 limit=budget.seconds(QUIET_IDLE_S))
            after = last_check(state, index) or after
            run.mark(f"cell{index}_moved_s")
            if "unparsable" in after:
                run.fail(f"cell {index}: WIDGET_CHECK line is not JSON: {after['unparsable'][:300]}")
            if state["cells"][index]["tracebacks"]:
                run.fail(f"cell {index}: traceback after moving the widget:\n{state['cells'][index]['tracebacks'][0]}")

            function = after.get("function", "")
            run.check(isinstance(function, str) and function.startswith(allowed_prefix),
                      f"cell {index}: WIDGET_CHECK function {function!r} must start with {' or '.join(allowed_prefix)}")
            kwargs, reported = after.get("kwargs"), after.get("value")
            run.check(isinstance(kwargs, dict) and isinstance(reported, (int, float)) and not isinstance(reported, bool),
                      f"cell {index}: WIDGET_CHECK needs a kwargs object and a numeric value: {after}")
            old_kwargs = before.get("kwargs", {})
            changed = sorted(k for k in kwargs if kwargs[k] != old_kwargs.get(k))
            run.check(changed, f"cell {index}: moving {moved['kind']} {moved['label']!r} {moved['before']} -> "
                               f"{moved['after']} did not change the kwargs {kwargs}")
            candidates = [after["control"]] if "control" in after else changed
            shown_by = [k for k in candidates if k in changed and matches_display(moved["after"], kwargs[k])]
            run.check(shown_by, f"cell {index}: no changed kwarg ({changed}) equals the control's new value "
                                f"{moved['after']!r} ({moved['kind']} {moved['label']!r}); kwargs {kwargs}")

            started = time.monotonic()
            try:
                expected = float(resolve(function)(**kwargs))
            except Exception as exc:  # noqa: BLE001 - report it as the contract failure it is
                run.fail(f"cell {index}: recomputing {function}(**{kwargs}) in the test process raised "
                         f"{type(exc).__name__}: {exc}")
            recompute_s = time.monotonic() - started
            run.check(math.isclose(expected, float(reported), rel_tol=1e-6, abs_tol=1e-12),
                      f"cell {index}: the widget shows {reported!r} for {function}(**{kwargs}) "
                      f"but the package computes {expected!r}")
            images_after = state["cells"][index]["images"]
            if images_before and not images_after:
                run.fail(f"cell {index}: the figure disappeared after moving the widget")
            shot_after = ARTIFACTS / f"{notebook.stem}-cell{index}-after.png"
            screenshot(page, shot_after, index)
            run.check(shot_before.exists() and shot_after.exists()
                      and shot_before.read_bytes() != shot_after.read_bytes(),
                      f"cell {index}: the screenshots before and after moving {moved['label']!r} "
                      f"({shot_before.name}, {shot_after.name}) are missing or identical")
            summary["widget_checks"].append({
                "cell": index, "control": moved, "kwarg": shown_by[0], "function": function,
                "kwargs_before": old_kwargs, "kwargs_after": kwargs,
                "value_before": before.get("value"), "value_after": reported, "recomputed": expected,
                "recompute_s": round(recompute_s, 2), "update_s": update_s,
                "figure_changed": bool(images_before) and images_before != images_after,
                "images": len(images_after),
            })
        run.mark("total_s")
    finally:
        screenshot(page, ARTIFACTS / f"{notebook.stem}.png", focus_cell)
        summary["timings"] = run.timings
        (ARTIFACTS / f"{notebook.stem}.json").write_text(json.dumps(summary, indent=1, default=str))
        lab_server.shutdown_kernels()  # free the 2 cores and the memory for the next notebook
        timings[notebook.name] = round(time.monotonic() - run.start, 1)


def test_repository_notebooks_unchanged(original_hashes):
    """Runs after the notebook tests (file order): the repository's .ipynb files are untouched."""
    assert original_hashes, "no notebooks were hashed"
    changed = original_hashes.changed()
    original_hashes.checked = True
    assert not changed, f"notebook files changed during the browser suite: {changed}"
