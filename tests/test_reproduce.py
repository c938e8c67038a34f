"""``python -m imclib.reproduce``: writes only under ``--output DIR``, refuses bad arguments
before creating anything, reports a failed notebook by name, cell and cause, finds lost
replies fast, and leaves no process behind on SIGINT/SIGTERM."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from imclib import reproduce


def _notebook(path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(
        "from imclib.results import record_claim\n"
        "record_claim('C0', 'a test claim', {'x': 1}, True)\n"
        "print('ran')")]
    nbformat.write(nb, path)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_option_writes_only_under_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("IMCLIB_FIGURES_DIR", raising=False)
    source = tmp_path / "src" / "99_test.ipynb"
    source.parent.mkdir()
    _notebook(source)
    before = {p: _digest(p) for p in [source, reproduce.README, reproduce.FINDINGS_PAGE,
                                      *reproduce.NOTEBOOKS.glob("*.ipynb")]}
    out = tmp_path / "out"
    assert reproduce.main([str(source), "--output", str(out), "--cell-timeout", "300"]) == 0
    executed = nbformat.read(out / "notebooks" / "99_test.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "ran\n"
    assert json.loads((out / "figures" / "results.json").read_text())["C0"]["passed"] is True
    assert "| C0 | a test claim | – | x = 1 |" in (out / "results.md").read_text()
    assert (out / "models-used.jsonl").exists()
    assert before == {p: _digest(p) for p in before}  # notebooks, README and findings page untouched


def test_jobs_run_notebooks_side_by_side_with_the_same_outputs(tmp_path, monkeypatch):
    monkeypatch.delenv("IMCLIB_FIGURES_DIR", raising=False)
    sources = [tmp_path / "src" / f"9{i}_test.ipynb" for i in range(2)]
    sources[0].parent.mkdir()
    for source in sources:
        _notebook(source)
    out = tmp_path / "out"
    assert reproduce.main([*map(str, sources), "--output", str(out), "--jobs", "2", "--cell-timeout", "300"]) == 0
    for source in sources:
        executed = nbformat.read(out / "notebooks" / source.name, as_version=4)
        assert executed.cells[0].outputs[0]["text"] == "ran\n"


def test_side_by_side_kernels_share_the_cores_unless_the_user_set_threads(tmp_path, monkeypatch):
    threads = reproduce.kernel_threads(2, cpus=4, environ={"OPENBLAS_NUM_THREADS": "3"})
    assert threads == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    assert reproduce.kernel_threads(4, cpus=2, environ={}) == dict.fromkeys(reproduce.THREAD_VARIABLES, "1")  # never 0
    # the kernels of a run get it; this process's environment (and so its numba threads) stays as it was
    for variable in reproduce.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("IMCLIB_FIGURES_DIR", raising=False)
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 2)
    for variable in reproduce.ALLOCATOR_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    sources = [_code_notebook(tmp_path / "src" / f"9{i}_test.ipynb", "import os\nfrom imclib.results import record_claim\n"
                              "record_claim('C0', 'a test claim', {'x': 1}, True)\n"
                              "print(os.environ['NUMBA_NUM_THREADS'], os.environ['MALLOC_MMAP_MAX_'])")
               for i in range(2)]
    out = tmp_path / "out"
    assert reproduce.main([*map(str, sources), "--output", str(out), "--jobs", "2", "--cell-timeout", "300"]) == 0
    for source in sources:
        assert nbformat.read(out / "notebooks" / source.name, as_version=4).cells[1].outputs[0]["text"] == "1 0\n"
    assert not any(variable in os.environ for variable in (*reproduce.THREAD_VARIABLES, *reproduce.ALLOCATOR_VARIABLES))
    # one job: no thread settings, the allocator's still; a variable the user set is kept
    assert reproduce.kernel_env(1, environ={"MALLOC_MMAP_MAX_": "8"}) == {"MALLOC_TRIM_THRESHOLD_": str(2**40)}


def test_side_by_side_runs_start_the_longest_notebook_first():
    paths = [Path(f"notebooks/{name}.ipynb") for name in ("00_crossbar_basics", "02_mnist", "09_cnn", "10_new")]
    assert reproduce.start_order(paths, 1) == paths  # one job: in order
    assert [p.stem for p in reproduce.start_order(paths, 2)] == ["09_cnn", "02_mnist", "00_crossbar_basics", "10_new"]
    # every long notebook of the repository has its measured time
    shipped = {p.stem for p in reproduce.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert set(reproduce.COLD_SECONDS) <= shipped


def _code_notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})
    notebook.cells = [nbformat.v4.new_markdown_cell("# a test notebook"),
                      *map(nbformat.v4.new_code_cell, sources)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def _repository_state() -> dict:
    """Names at the repository's top level and in figures/, and the digests of the README, the
    findings page and the notebooks."""
    return {"top": sorted(p.name for p in reproduce.ROOT.iterdir()),
            "figures": sorted(p.name for p in (reproduce.ROOT / "figures").iterdir()),
            **{str(p): _digest(p) for p in [reproduce.README, reproduce.FINDINGS_PAGE,
                                            *reproduce.NOTEBOOKS.glob("*.ipynb")]}}


@pytest.mark.parametrize("arguments, message", [
    (["--output", ""], "--output must name a folder outside the repository, got an empty string"),
    (["--output", "{root}"], "--output must be a folder outside the repository"),
    (["--output", "{root}/figures/run"], "--output must be a folder outside the repository"),
    (["--output", "{tmp}/out", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["--output", "{tmp}/out", "--cell-timeout", "0"], "--cell-timeout must be >= 1, got 0"),
    (["--output", "{tmp}/out", "--total-timeout", "-5"], "--total-timeout must be >= 1, got -5"),
    (["--output", "{tmp}/out", "{tmp}/missing.ipynb"], "notebooks must be existing .ipynb files"),
    (["--output", "{tmp}/out", "{tmp}"], "notebooks must be existing .ipynb files"),
    (["--output", "{tmp}/out/file"], "--output must be a folder, got the file"),
])
def test_bad_arguments_are_refused_before_anything_is_created(tmp_path, capsys, arguments, message):
    if "{tmp}/out/file" in arguments:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "file").write_text("")
    before = _repository_state(), sorted(tmp_path.rglob("*"))
    arguments = [a.format(root=reproduce.ROOT, tmp=tmp_path) for a in arguments]
    assert reproduce.main(arguments) == 2
    assert message in capsys.readouterr().err
    assert (_repository_state(), sorted(tmp_path.rglob("*"))) == before


def test_figures_dir_without_output_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", "/tmp/somewhere")
    assert reproduce.main(["--total-timeout", "1"]) == 2
    assert "--output" in capsys.readouterr().err


FAILURES = {
    "an exception": (["x = 1", "y = 2\nraise ValueError('boom')"], [],
                     "98_fails.ipynb: cell 2 ('y = 2'): ValueError: boom"),
    "the cell timeout": (["import time\ntime.sleep(120)"], ["--cell-timeout", "2"],
                         "98_fails.ipynb: cell 1 ('import time'): the cell ran longer than the cell timeout of 2 s"),
}


@pytest.mark.parametrize("failure, jobs", [("an exception", 1), ("an exception", 2), ("the cell timeout", 2)])
def test_a_failed_notebook_is_reported_by_name_cell_and_cause(tmp_path, capsys, jobs, failure):
    # with --jobs 2, nbclient's CellTimeoutError (a TimeoutError) is no "total timeout"
    sources, options, report = FAILURES[failure]
    notebook = _code_notebook(tmp_path / "src" / "98_fails.ipynb", *sources)
    out = tmp_path / "out"
    assert reproduce.main([str(notebook), "--output", str(out), "--jobs", str(jobs), *options]) == 1
    err = capsys.readouterr().err
    assert f"failed: {report}" in err and "total timeout" not in err
    assert f"The run stopped: failed: {report}" in (out / reproduce.INCOMPLETE).read_text()
    assert not (out / "notebooks" / notebook.name).exists()


DROP_THIS_CELLS_REPLY = """
import pathlib
flag = pathlib.Path({flag!r})
if {always} or not flag.exists():  # the kernel sends no execute_reply from now on: a lost message
    flag.touch()
    kernel = get_ipython().kernel
    send = kernel.session.send
    def dropping_send(stream, msg_type, content=None, parent=None, *args, **kwargs):
        if msg_type == "execute_reply":
            return kernel.session.msg(msg_type, content, parent, metadata=kwargs.get("metadata"))
        return send(stream, msg_type, content, parent, *args, **kwargs)
    kernel.session.send = dropping_send
"""


def test_a_lost_reply_is_found_fast_and_the_notebook_run_again(tmp_path, capsys):
    # the first run loses the reply of cell 1, the second does not; cell 2 runs for longer than
    # the grace period, and its (late) reply is no lost message. Without the watchdog the lost
    # reply would be waited for until the cell timeout (120 s), and the notebook not run again.
    notebook = _code_notebook(tmp_path / "97_lost_once.ipynb",
                              DROP_THIS_CELLS_REPLY.format(flag=str(tmp_path / "dropped"), always=False),
                              "import time\ntime.sleep(2)\nprint('slept')")
    reproduce.execute(notebook, 120, tmp_path / "executed.ipynb", grace=1.0)
    assert ("97_lost_once.ipynb: cell 1 ('import pathlib'): the kernel finished the cell, but its reply did not "
            "arrive within 1 s (a lost message); running 97_lost_once.ipynb again (1 of 1)") in capsys.readouterr().err
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    assert executed.cells[2].outputs[0]["text"] == "slept\n"


def test_a_reply_lost_every_time_fails_with_the_cell_named(tmp_path):
    notebook = _code_notebook(tmp_path / "96_lost.ipynb",
                              DROP_THIS_CELLS_REPLY.format(flag=str(tmp_path / "dropped"), always=True))
    with pytest.raises(reproduce.NotebookFailed, match=r"96_lost.ipynb: cell 1 \('import pathlib'\): .*"
                                                       r"a lost message\) \(after 1 retries\)"):
        reproduce.execute(notebook, 120, tmp_path / "executed.ipynb", grace=1.0)
    assert not (tmp_path / "executed.ipynb").exists()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is no zombie (Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_for(condition, what: str, limit_s: float = 180.0):
    end = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not after {limit_s} s")
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
@pytest.mark.parametrize("command, signum", [
    (["workbook.py", "--no-venv", "reproduce"], signal.SIGTERM),
    (["-m", "imclib.reproduce"], signal.SIGINT),
])
def test_a_signal_stops_every_process_and_leaves_the_incomplete_marker(tmp_path, command, signum):
    pid_file = tmp_path / "kernel.pid"
    notebook = _code_notebook(tmp_path / "src" / "95_sleeps.ipynb",
                              f"import os, pathlib, time\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
                              "time.sleep(600)")
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, *command, str(notebook), "--output", str(out)], cwd=reproduce.ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the kernel did not start")
        kernel = int(pid_file.read_text())
        process.send_signal(signum)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, output
    _wait_for(lambda: not _alive(kernel), "the kernel outlived the run", 30)
    assert f"The run stopped: stopped by {signum.name}" in (out / reproduce.INCOMPLETE).read_text()
    assert not (out / "notebooks" / notebook.name).exists()


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """main() sets IMCLIB_FIGURES_DIR / IMCLIB_MODEL_LOG for its kernels: undo that."""
    for name in ("IMCLIB_FIGURES_DIR", "IMCLIB_MODEL_LOG", "IMCLIB_RETRAIN"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)


def test_clean_for_storage_drops_progress_bars_notes_widgets_and_hides_paths():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from imclib import reproduce

    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "a", "version_major": 2, "version_minor": 0}}
    cell = new_code_cell("x", outputs=[
        new_output("display_data", data={**widget, "text/plain": "PCA sizes:   0%|          | 0/6 [00:00<?, ?it/s]"}),
        new_output("display_data", data={**widget, "text/plain": "interactive(children=(IntSlider(value=4),))"}),
        new_output("stream", name="stderr", text=f"{reproduce.ROOT}/imclib/layer.py:10: RuntimeWarning: x\n"),
        new_output("stream", name="stdout", text=f"cached at {Path.home()}/.cache/imclib/mnist.npz\n"),
    ])
    notebook = reproduce.clean_for_storage(new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3",
                                                                                               "display_name": "Python 3"}}))
    outputs = notebook.cells[0].outputs
    assert len(outputs) == 3
    assert outputs[0].data == {"text/plain": reproduce.WIDGET_NOTE}
    assert outputs[1].text == "imclib/layer.py:10: RuntimeWarning: x\n"
    assert outputs[2].text == "cached at ~/.cache/imclib/mnist.npz\n"
    assert notebook.metadata.kernelspec["display_name"] == "Python 3 (ipykernel)"


def _executed_like_nbclient(styler_id: str, model_ids: tuple[str, str], address: str, when: str):
    """A notebook as nbclient leaves it after one run: a styled table (pandas' random id, a
    repr with a memory address), a widget (random model ids, saved widget state whose Output
    widget holds the figure and text it showed) and execution timestamps."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    ui, out = model_ids
    table = (f'<style type="text/css">\n#T_{styler_id}_row0_col0 {{ color: red; }}\n</style>\n'
             f'<table id="T_{styler_id}">\n<td id="T_{styler_id}_row0_col0" class="data">1</td>\n</table>\n')
    styled = new_code_cell("df.style", id="styled", execution_count=1, metadata={"execution": {"iopub.status.idle": when}}, outputs=[
        new_output("execute_result", execution_count=1, data={
            "text/html": table, "text/plain": f"<pandas.io.formats.style.Styler at 0x{address}>"})])
    shown = [new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}),
             new_output("stream", name="stdout", text="window 27.72 µS\n")]
    state = {ui: {"model_name": "VBoxModel", "state": {"children": [f"IPY_MODEL_{out}"]}},
             out: {"model_name": "OutputModel", "state": {"outputs": shown}}}
    widget = new_code_cell("widgets.cell_levels_widget()", id="widget", execution_count=2,
                           metadata={"execution": {"iopub.status.idle": when}}, outputs=[
        new_output("execute_result", execution_count=2, data={
            "application/vnd.jupyter.widget-view+json": {"model_id": ui, "version_major": 2, "version_minor": 0},
            "text/plain": "interactive(children=(IntSlider(value=4),))"})])
    return new_notebook(cells=[styled, widget], metadata={
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2}}})


def test_clean_for_storage_stores_two_runs_identically_without_ids_addresses_or_timestamps():
    """Two runs differ in pandas' Styler id, the widget model ids, a memory address and the
    execution timestamps; stored, they are the same text, which holds none of those, and the
    widget is stored as its note followed by what it showed (no saved widget state needed).
    (Cell ids are part of the source, fixed here as in a stored notebook.)"""
    first = _executed_like_nbclient("3c21f", ("ae4e3f0c5fe5", "2b67c7636"), "7f3a2b1c9d40", "2026-12-06T15:12:47Z")
    second = _executed_like_nbclient("140a2", ("b306fa2abe34", "c6c0e204c"), "7f99ee001230", "2026-12-07T09:01:02Z")
    stored = [nbformat.writes(reproduce.clean_for_storage(nb)) for nb in (first, second)]
    assert stored[0] == stored[1]
    for volatile in ("3c21f", "ae4e3f0c5fe5", "2b67c7636", "7f3a2b1c9d40", "2026-12-06", " at 0x", "widget-view",
                     "widget-state", '"execution"'):
        assert volatile not in stored[0], volatile
    cells = nbformat.reads(stored[0], as_version=4).cells
    assert cells[0].outputs[0].data["text/plain"] == "<pandas.io.formats.style.Styler>"
    html = cells[0].outputs[0].data["text/html"]
    assert '<table id="T_table1">' in html and "#T_table1_row0_col0" in html and 'id="T_table1_row0_col0"' in html
    assert [o.get("data", {}).get("text/plain") or o.get("text") for o in cells[1].outputs] == [
        reproduce.WIDGET_NOTE, "<Figure size 640x480 with 1 Axes>", "window 27.72 µS\n"]
    assert cells[1].outputs[1].data["image/png"] == "iVBORw0KGgo="


def test_clean_for_storage_stores_a_print_split_into_two_messages_as_one_output():
    """A busy kernel sent the verdict line of 04 in two stream messages; stored, the cell is
    the same as when it arrived in one. Streams of another name, or separated by a display,
    stay apart."""
    new = nbformat.v4.new_output
    split = [new("stream", name="stdout", text="C4 (10 device seeds): partly"), new("stream", name="stdout", text="\n  holds\n"),
             new("stream", name="stderr", text="warning\n"), new("display_data", data={"text/plain": "table"}),
             new("stream", name="stdout", text="after\n")]
    whole = [new("stream", name="stdout", text="C4 (10 device seeds): partly\n  holds\n"), *[nbformat.from_dict(o) for o in split[2:]]]
    stored = [nbformat.writes(reproduce.clean_for_storage(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run()", id="c0", outputs=outputs)])))
              for outputs in (split, whole)]
    assert stored[0] == stored[1]
    assert [o.get("name", o.output_type) for o in nbformat.reads(stored[0], as_version=4).cells[0].outputs] == [
        "stdout", "stderr", "display_data", "stdout"]


def test_results_table_shows_verdict_per_scheme():
    from imclib.reproduce import results_table

    table = results_table({"C5": {"statement": "s", "measured": {"ratio": 2.0}, "paper": {}, "passed": False,
                                  "verdict": "partly", "criterion": "ratio > 1",
                                  "by_scheme": {"offset/digital": True, "differential": False}}})
    row = table.splitlines()[-1]
    assert "offset/digital: holds" in row and "differential: **fails**" in row and "**partly**" in row
    assert "ratio > 1" in row


def test_findings_come_from_the_computed_what_we_found_output(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from imclib.reproduce import FINDINGS_END, FINDINGS_START, TABLE_END, TABLE_START, update_readme

    notebook = new_notebook(cells=[
        new_markdown_cell("## What we found"),
        new_code_cell("Markdown(...)", outputs=[new_output("execute_result", data={"text/markdown": "* x = 3", "text/plain": "<M>"},
                                                           execution_count=1)]),
    ])
    path = tmp_path / "09_probe.ipynb"
    nbformat.write(notebook, path)
    readme, page = tmp_path / "README.md", tmp_path / "findings.md"
    readme.write_text(f"a\n{TABLE_START}\nold\n{TABLE_END}\nb\n")
    page.write_text(f"p\n{FINDINGS_START}\nold\n{FINDINGS_END}\nc\n")
    update_readme({"C0": {"statement": "s", "measured": {"x": 3}, "paper": {}, "passed": True}}, readme, [path], page)
    assert "| C0 | s |" in readme.read_text() and "old" not in readme.read_text()
    text = page.read_text()
    assert "**`09_probe`**\n\n* x = 3" in text and "old" not in text and text.endswith("c\n")


def test_update_readme_writes_nothing_when_a_file_lacks_its_markers(tmp_path):
    from imclib.reproduce import FINDINGS_START, TABLE_END, TABLE_START, update_readme

    readme, page = tmp_path / "README.md", tmp_path / "findings.md"
    readme.write_text(f"{TABLE_START}\nold\n{TABLE_END}\n")
    page.write_text(f"{FINDINGS_START}\nno end marker\n")
    with pytest.raises(RuntimeError, match="findings.md lacks the markers"):
        update_readme({}, readme, [], page)
    assert "old" in readme.read_text()  # the README was not rewritten either


def test_the_repository_carries_every_marker_update_readme_rewrites():
    from imclib.reproduce import FINDINGS_END, FINDINGS_START, TABLE_END, TABLE_START

    readme, page = reproduce.README.read_text(), reproduce.FINDINGS_PAGE.read_text()
    assert TABLE_START in readme and TABLE_END in readme
    assert FINDINGS_START in page and FINDINGS_END in page


def test_an_executed_notebook_is_written_with_the_umask_permissions(tmp_path):
    """The stored notebook follows the umask like any file (not a temp file's 0600)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    previous = os.umask(0o022)
    try:
        reproduce._write_notebook(notebook, tmp_path / "a.ipynb")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.ipynb").stat().st_mode & 0o777 == 0o644
    with open(tmp_path / "b.ipynb", "w", encoding="utf-8") as file:
        nbformat.write(notebook, file)
    assert (tmp_path / "a.ipynb").read_bytes() == (tmp_path / "b.ipynb").read_bytes()


def test_results_table_points_long_values_to_results_json():
    from imclib.reproduce import BRIEF_CHARS, results_table

    long_list = [0.123456] * (BRIEF_CHARS // 4)
    table = results_table({"C6": {"statement": "s", "measured": {"by_N": long_list, "best": 8}, "paper": {},
                                  "passed": True}})
    assert f"by_N = ({len(long_list)} entries: see `figures/results.json`); best = 8" in table
