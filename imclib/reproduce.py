"""Run every study notebook top to bottom, headless, and regenerate the figures.

``python -m imclib.reproduce [NOTEBOOK ...]`` executes ``notebooks/NN_*.ipynb`` in order
with nbclient (a per-cell and an overall timeout), stores the executed notebooks (so a
reader sees outputs without a kernel), writes ``figures/*.png`` and
``figures/results.json``, and rewrites the headline table of README.md from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- results:start -->", "<!-- results:end -->"


def execute(path: Path, cell_timeout: int) -> float:
    """Execute one notebook in place; return the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)
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


def update_readme(results: dict) -> None:
    """Replace the text between the results markers in README.md with the table."""
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise RuntimeError(f"README.md lacks the markers {TABLE_START} ... {TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{results_table(results)}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may take")
    parser.add_argument("--total-timeout", type=int, default=3600, help="seconds all notebooks may take")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    os.environ.pop("IMCLIB_FIGURES_DIR", None)  # the full run writes the repository's figures/
    deadline = time.perf_counter() + args.total_timeout
    for path in paths:
        if time.perf_counter() > deadline:
            print(f"total timeout of {args.total_timeout} s reached before {path.name}", file=sys.stderr)
            return 124
        print(f"running {path.name} ...", flush=True)
        print(f"  done in {execute(path, args.cell_timeout):.0f} s", flush=True)
    results = json.loads((ROOT / "figures" / "results.json").read_text())
    update_readme(results)
    print(results_table(results))
    return 0 if all(entry["passed"] for entry in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
