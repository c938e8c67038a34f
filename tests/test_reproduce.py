"""``python -m imclib.reproduce --output DIR`` writes only under DIR (the repository is untouched)."""

from __future__ import annotations

import hashlib
import json

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
    assert "| C0 | a test claim | x = 1 |" in (out / "results.md").read_text()
    assert (out / "models-used.jsonl").exists()
    assert before == {p: _digest(p) for p in before}  # notebooks and README untouched


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
