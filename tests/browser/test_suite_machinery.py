"""The browser suite's own machinery, without a browser: the calibrated wait budget and the
reduction of a notebook to its widget cells (runs in the unit-test pass)."""

from __future__ import annotations

import nbformat

import conftest
from imclib.reproduce import WIDGET_NOTE


def test_calibration_factor_is_at_least_one_and_can_be_overridden(monkeypatch):
    monkeypatch.delenv("IMCLIB_BROWSER_SLOWDOWN", raising=False)
    measured = conftest.calibrate(rounds=1)
    assert measured["factor"] >= 1.0 and measured["wall_s"] > 0 and measured["cpu_s"] > 0
    monkeypatch.setenv("IMCLIB_BROWSER_SLOWDOWN", "7.5")
    assert conftest.calibrate(rounds=1)["factor"] == 7.5


def test_budget_scales_waits_and_keeps_the_larger_factor(monkeypatch):
    budget = conftest.Budget(3.0, [])
    assert budget.seconds(60) == 180
    monkeypatch.setenv("IMCLIB_BROWSER_SLOWDOWN", "2.0")
    assert budget.recalibrate() == 3.0  # a quieter moment does not shorten the waits
    monkeypatch.setenv("IMCLIB_BROWSER_SLOWDOWN", "5.0")
    assert budget.recalibrate() == 5.0 and budget.seconds(10) == 50


def test_widget_notebook_keeps_setup_and_interactive_widget_cells(tmp_path):
    view = lambda model_id: nbformat.v4.new_output(  # noqa: E731
        "display_data", data={conftest.WIDGET_VIEW: {"model_id": model_id, "version_major": 2}})
    state = {
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_html", "IPY_MODEL_progress"]}},
        "html": {"model_name": "HTMLModel", "state": {}},
        "progress": {"model_name": "FloatProgressModel", "state": {}},
        "ui": {"model_name": "VBoxModel", "state": {"_dom_classes": ["widget-interact"], "children": []}},
    }
    nb = nbformat.v4.new_notebook(metadata={"widgets": {conftest.WIDGET_STATE: {"state": state}}})
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("import imclib"),
        nbformat.v4.new_code_cell("slow_study()", outputs=[view("bar")]),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("widgets.some_widget()", outputs=[view("ui")]),
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_code_cell("widgets.stored_widget()", outputs=[  # as imclib.reproduce stores a widget
            nbformat.v4.new_output("display_data", data={"text/plain": WIDGET_NOTE})]),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert [c.source for c in conftest.widget_notebook(path).cells] == ["import imclib", "widgets.some_widget()",
                                                                       "widgets.stored_widget()"]
