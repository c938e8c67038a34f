"""Figure helpers: vector twins, confidence intervals drawn in figures, live widgets."""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from imclib import plots, widgets
from imclib.experiments.xor import all_correct_fraction


def test_save_writes_png_and_svg_twin(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = plots.save(fig, "probe")
    plt.close(fig)
    assert path == tmp_path / "probe.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "probe.svg").read_text()
    assert "<svg" in svg and str(tmp_path) not in svg


def _draw_and_save(folder: Path, monkeypatch) -> dict[str, bytes]:
    """A states sweep (bootstrap confidence bands over 5 seeds) drawn and saved into ``folder``."""
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(folder))
    rng = np.random.default_rng(3)
    sweep = pd.DataFrame([{"states": n, "seed": seed, "component": component, "error": scale / n + rng.uniform(0, 0.01)}
                          for n in range(2, 17) for seed in range(5)
                          for component, scale in (("quantization", 0.5), ("resolution", 0.05), ("total", 0.6))])
    fig = plots.states_sweep(sweep, {"label": "optimum N = 8", "best_N": 8, "value": 0.1}, "probe")
    plots.save(fig, "probe")
    plt.close(fig)
    return {name: (folder / name).read_bytes() for name in ("probe.png", "probe.svg")}


def test_saving_the_same_figure_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    """PNG and SVG are byte-reproducible: seeded bootstrap bands, no date or version in the files."""
    first, second = _draw_and_save(tmp_path / "a", monkeypatch), _draw_and_save(tmp_path / "b", monkeypatch)
    assert first == second
    assert b"Date" not in first["probe.png"] and b"Matplotlib version" not in first["probe.png"]
    assert b"<dc:date>" not in first["probe.svg"]


def test_a_notebook_run_by_hand_leaves_the_tracked_figures_untouched(tmp_path, monkeypatch):
    """A notebook executed without IMCLIB_FIGURES_DIR (as JupyterLab or ``jupyter nbconvert
    --execute`` run it) saves its figure and claim into the git-ignored scratch folder of a
    copy of the repository, never into its ``figures/``."""
    import shutil
    import subprocess

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1]
    copy = tmp_path / "repo"
    shutil.copytree(root / "imclib", copy / "imclib", ignore=shutil.ignore_patterns("models", "__pycache__"))
    shutil.copytree(root / "figures", copy / "figures")
    tracked = {p.name: p.read_bytes() for p in (copy / "figures").iterdir()}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "from imclib import plots\n"
        "from imclib.results import record_claim\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([0, 1], [0, 1])\n"
        f"plots.save(fig, {sorted(tracked)[0][:-4]!r})\n"
        "record_claim('C1', 'a hand-run claim', {'x': 1}, True)")])
    monkeypatch.delenv("IMCLIB_FIGURES_DIR", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(copy))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert {p.name: p.read_bytes() for p in (copy / "figures").iterdir()} == tracked
    scratch = copy / ".imclib-figures"
    assert {sorted(tracked)[0], "results.json"} <= {p.name for p in scratch.iterdir()}
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", ".imclib-figures/results.json"])
    assert ignored.returncode == 0, ".imclib-figures/ is not git-ignored"


def test_all_correct_fraction_wilson_interval_hand_computed():
    # 8 of 10 arrays with 4/4 rows at sigma 0.1: Wilson 95 % interval (0.4902, 0.9433) by hand
    rows = [4] * 8 + [3, 2]
    sweep = pd.DataFrame({"programming_sigma": 0.1, "seed": range(10), "rows_correct": rows})
    summary = all_correct_fraction(sweep).iloc[0]
    assert summary.arrays == 10 and summary.fraction == pytest.approx(0.8)
    assert summary.ci95_low == pytest.approx(0.49016, abs=1e-4)
    assert summary.ci95_high == pytest.approx(0.94331, abs=1e-4)


def test_all_correct_fraction_counts_only_full_rows():
    sweep = pd.DataFrame({"programming_sigma": [0.0, 0.0, 0.2, 0.2], "seed": [0, 1, 0, 1],
                          "rows_correct": [4, 4, 4, 3]})
    summary = all_correct_fraction(sweep).set_index("programming_sigma")
    np.testing.assert_allclose(summary.fraction, [1.0, 0.5])
    assert (summary.ci95_low <= summary.fraction).all() and (summary.fraction <= summary.ci95_high).all()


def test_live_widget_updates_on_release_and_shows_busy_label():
    calls = []
    panel = widgets._live(lambda value=1.0: calls.append(value), value=widgets.w.FloatSlider(1.0, min=0, max=2))
    slider, busy = panel.children[0], panel.children[-2]
    assert slider.continuous_update is False
    assert isinstance(busy, widgets.w.Label) and busy.value == ""
    slider.value = 1.5
    assert calls[-1] == 1.5 and busy.value == ""


FIGURES = sorted((Path(__file__).resolve().parents[1] / "figures").glob("*.png"))
MAX_SIDE_PX = 3000  # 15 inches at the 200 dpi of plots.save: larger is a poster, not a paper figure
MAX_ASPECT = 3.0  # wider than 3:1 is an unreadable strip once scaled to a column


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header (IHDR chunk)."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.parametrize("path", FIGURES, ids=[p.stem for p in FIGURES])
def test_committed_figure_has_vector_twin_and_readable_size(path):
    assert path.with_suffix(".svg").exists(), f"{path.name} has no SVG twin (re-run python3 workbook.py reproduce)"
    width, height = _png_size(path)
    assert max(width, height) <= MAX_SIDE_PX, f"{path.name} is {width}x{height} px"
    assert max(width / height, height / width) <= MAX_ASPECT, f"{path.name} is {width}x{height} px"


def test_cost_view_fits_its_axes_to_the_points_and_names_the_selected_configuration():
    table = pd.DataFrame({"layer": "total", "component": ["ADC", "total"], "energy_J": [1e-8, 1.2e-8]})
    paper = {"n_states": 4, "size": 4, "adc_bits": 8, "energy_J": 1.6e-7, "accuracy": 0.965}
    selected = {"n_states": 4, "size": 4, "adc_bits": 10, "energy_J": 6.2e-7, "accuracy": 0.97}
    fig = plots.cost_view(table, paper, selected, (1e-13, 1e-5))
    ax = fig.axes[1]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("selected" in label and "10-bit ADC" in label for label in labels), labels
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for point in (paper, selected):
        assert x0 < point["energy_J"] < x1 and y0 < point["accuracy"] * 100 < y1
    assert x1 / x0 < 1e3 and y1 - y0 < 20  # fitted to the points, not the 1e-13..1e-5 J x 0..1 frame
    plt.close(fig)


def test_optimum_shift_joins_no_point_without_an_interior_optimum():
    table = pd.DataFrame({"parameter": "TMR0", "value": [0.5, 1.0, 2.0], "scheme": "offset/digital",
                          "best_N": [8, 16, 8], "optimum": [8, np.nan, 8]})
    fig = plots.optimum_shift(table)
    ax = fig.axes[0]
    joined = [line for line in ax.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) == 3]
    assert len(joined) == 1
    y = np.asarray(joined[0].get_ydata(), float)
    assert np.isnan(y[1]) and list(y[[0, 2]]) == [8, 8]  # the line breaks at the setting without an optimum
    none = [line for line in ax.get_lines() if line.get_linestyle() == "None" and len(line.get_xdata()) == 1]
    assert [float(line.get_ydata()[0]) for line in none] == [plots.NO_OPTIMUM_ROW]
    assert "none" in [label.get_text() for label in ax.get_yticklabels()]
    plt.close(fig)


def test_states_study_has_no_empty_panel():
    rows = [{"states": n, "seed": s, "component": c, "error": 0.1 / n + 0.01 * s}
            for n in range(2, 17) for s in range(3) for c in ("quantization", "resolution", "total")]
    sweeps = {f"case {i}": pd.DataFrame(rows) for i in range(6)}
    results = {name: {"label": "no interior optimum", "best_N": 16, "value": 0.01} for name in sweeps}
    accuracy = pd.DataFrame([{"states": n, "seed": s, "accuracy": 0.97 - 0.01 * s} for n in range(2, 17) for s in range(3)])
    fig = plots.states_study(sweeps, results, accuracy, {"label": "N = 8", "best_N": 8, "value": 0.97})
    assert len(fig.axes) == 7 and all(ax.get_visible() and ax.has_data() for ax in fig.axes)
    plt.close(fig)


def test_adc_bits_zooms_to_the_points_near_the_best():
    sweep = pd.DataFrame({"adc_bits": [4, 4, 8, 8], "adc_range": ["naive", "calibrated"] * 2, "device_seed": 0,
                          "accuracy": [0.73, 0.92, 0.968, 0.9685]})
    fig = plots.adc_bits(sweep)
    full, zoom = fig.axes
    assert full.get_ylim() == (0, 100)
    low, high = zoom.get_ylim()
    assert low <= 96.8 and high >= 96.85 and high - low <= plots.ADC_ZOOM_SPAN + 1.5  # 0.5 points are visible
    assert any("naive 73.0 %" in text.get_text() for text in zoom.texts)  # the point below the zoom is named
    plt.close(fig)
