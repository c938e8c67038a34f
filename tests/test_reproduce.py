"""``python -m imclib.reproduce --output DIR`` writes only under DIR (the repository is untouched)."""

from __future__ import annotations

import hashlib
import json
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
    before = {p: _digest(p) for p in [source, reproduce.README, *reproduce.NOTEBOOKS.glob("*.ipynb")]}
    out = tmp_path / "out"
    assert reproduce.main([str(source), "--output", str(out), "--cell-timeout", "300"]) == 0
    executed = nbformat.read(out / "notebooks" / "99_test.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "ran\n"
    assert json.loads((out / "figures" / "results.json").read_text())["C0"]["passed"] is True
    assert "| C0 | a test claim | – | x = 1 |" in (out / "results.md").read_text()
    assert (out / "models-used.jsonl").exists()
    assert before == {p: _digest(p) for p in before}  # notebooks and README untouched


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


def test_jobs_below_one_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IMCLIB_FIGURES_DIR", raising=False)
    assert reproduce.main(["--output", str(tmp_path), "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err


def test_figures_dir_without_output_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", "/tmp/somewhere")
    assert reproduce.main(["--total-timeout", "1"]) == 2
    assert "--output" in capsys.readouterr().err


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
    assert outputs[0].data["text/plain"] == reproduce.WIDGET_NOTE
    assert outputs[1].text == "imclib/layer.py:10: RuntimeWarning: x\n"
    assert outputs[2].text == "cached at ~/.cache/imclib/mnist.npz\n"
    assert notebook.metadata.kernelspec["display_name"] == "Python 3 (ipykernel)"


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
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{TABLE_START}\nold\n{TABLE_END}\nb\n{FINDINGS_START}\nold\n{FINDINGS_END}\nc\n")
    update_readme({}, readme, [path])
    text = readme.read_text()
    assert "**`09_probe`**\n\n* x = 3" in text and "old" not in text and text.endswith("c\n")
