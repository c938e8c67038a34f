"""Run every study notebook top to bottom, headless, and regenerate the figures.

``python -m imclib.reproduce [NOTEBOOK ...] [--output DIR] [--retrain]`` executes
``notebooks/NN_*.ipynb`` in order with nbclient (a per-cell and an overall timeout).

Without ``--output`` it regenerates the repository in place: the executed notebooks replace
``notebooks/*.ipynb`` (so a reader sees outputs without a kernel), the figures and
``results.json`` go to ``figures/``, and the headline table of README.md is rewritten.
With ``--output DIR`` the repository is not touched: the executed notebooks go to
``DIR/notebooks/``, figures and ``results.json`` to ``DIR/figures/`` and the table to
``DIR/results.md``. Either way ``models-used.jsonl`` (in ``DIR``, or ``figures/``' parent
``.reproduce/`` in place) lists every trained model the run used and where it came from.

``--retrain`` ignores the shipped model store and the user cache (``IMCLIB_RETRAIN=1`` in
the kernels), retrains every model, and then rewrites the shipped entries
(``imclib/models/``) with the models the run used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import cache
from .results import read_results

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- results:start -->", "<!-- results:end -->"


def execute(path: Path, cell_timeout: int, destination: Path | None = None) -> float:
    """Execute one notebook (working directory: its own folder) and write it to
    ``destination`` (default: in place); return the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, destination or path)
    return time.perf_counter() - start


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_table(results: dict) -> str:
    """Markdown table of ``results.json``: claim, statement, measured, paper, verdict."""
    lines = ["| claim | statement | measured | paper | verdict |", "|---|---|---|---|---|"]
    for claim, entry in results.items():
        measured = "; ".join(f"{k} = {_format(v)}" for k, v in entry["measured"].items())
        paper = "; ".join(f"{k} = {_format(v)}" for k, v in entry["paper"].items()) or "–"
        verdict = "reproduced" if entry["passed"] else "**not reproduced**"
        lines.append(f"| {claim} | {entry['statement']} | {measured} | {paper} | {verdict} |")
    return "\n".join(lines)


def update_readme(results: dict, readme: Path = README) -> None:
    """Replace the text between the results markers in README.md with the table."""
    text = readme.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise RuntimeError(f"README.md lacks the markers {TABLE_START} ... {TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    readme.write_text(f"{head}{TABLE_START}\n{results_table(results)}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="write notebooks, figures, results.json and results.md under DIR "
                             "instead of rewriting the repository")
    parser.add_argument("--retrain", action="store_true",
                        help="ignore the shipped models and the user cache, retrain, and rewrite "
                             "the shipped entries (imclib/models/) with the models used")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may take")
    parser.add_argument("--total-timeout", type=int, default=3600, help="seconds all notebooks may take")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.output is None:
        if os.environ.get("IMCLIB_FIGURES_DIR"):
            print("IMCLIB_FIGURES_DIR is set, but reproduce without --output rewrites the repository's "
                  "notebooks, figures/ and README together: pass --output DIR instead", file=sys.stderr)
            return 2
        figures, notebooks_out, log = ROOT / "figures", None, ROOT / ".reproduce" / "models-used.jsonl"
    else:
        output = args.output.resolve()
        figures, notebooks_out, log = output / "figures", output / "notebooks", output / "models-used.jsonl"
        notebooks_out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    # The kernels nbclient starts inherit these.
    os.environ["IMCLIB_FIGURES_DIR"] = str(figures)
    os.environ["IMCLIB_MODEL_LOG"] = str(log)
    if args.retrain:
        os.environ["IMCLIB_RETRAIN"] = "1"
    deadline = time.perf_counter() + args.total_timeout
    for path in paths:
        if time.perf_counter() > deadline:
            print(f"total timeout of {args.total_timeout} s reached before {path.name}", file=sys.stderr)
            return 124
        print(f"running {path.name} ...", flush=True)
        destination = None if notebooks_out is None else notebooks_out / path.name
        print(f"  done in {execute(path.resolve(), args.cell_timeout, destination):.0f} s", flush=True)
    if not (figures / "results.json").exists():
        print(f"the notebooks recorded no claim ({figures / 'results.json'} is missing)", file=sys.stderr)
        return 1
    results = read_results(figures / "results.json")
    if notebooks_out is None:
        update_readme(results)
    else:
        (args.output / "results.md").write_text(results_table(results) + "\n")
    print(results_table(results))
    if args.retrain:
        shipped = cache.ship_models(log)
        print(f"rewrote {len(shipped)} shipped models in {cache.shipped_store_dir()}")
    print(f"models used: {log} (ship them with python -m imclib.cache --ship-models {log})")
    return 0 if all(entry["passed"] for entry in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
