"""Run every study notebook top to bottom, headless, and regenerate the figures.

``python -m imclib.reproduce [NOTEBOOK ...] [--output DIR] [--retrain] [--jobs N]`` executes
``notebooks/NN_*.ipynb`` with nbclient (a per-cell and an overall timeout), in order, or
``N`` at a time, each in its own kernel (every notebook only reads the trained models and
tables it needs, training them if missing; concurrent runs store cache entries atomically).

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
import concurrent.futures
import json
import os
import re
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
FINDINGS_START, FINDINGS_END = "<!-- findings:start -->", "<!-- findings:end -->"


KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
"""What JupyterLab writes for the default kernel: stored as is, opening a notebook does not dirty it."""
WIDGET_NOTE = "Run this cell to get the interactive controls (ipywidgets)."
_PROGRESS = re.compile(r"\d+%\|")


def _clean_output(output: dict) -> dict | None:
    """An output as users should see it stored: progress bars dropped (their saved text is
    the 0 % they started at), a widget's text fallback replaced by a note, machine paths
    made relative (the repository) or home-relative (``~``)."""
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:
        if _PROGRESS.search(data.get("text/plain", "")):
            return None
        data["text/plain"] = WIDGET_NOTE
    for key, value in [*data.items(), ("text", output.get("text"))]:
        if isinstance(value, str):
            cleaned = value.replace(f"{ROOT}/", "").replace(str(ROOT), ".").replace(str(Path.home()), "~")
            if key == "text":
                output["text"] = cleaned
            else:
                data[key] = cleaned
    return output


def clean_for_storage(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Normalise an executed notebook for the repository (see :func:`_clean_output`), and
    give it the kernelspec JupyterLab writes, so that opening it does not mark it modified."""
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [kept for kept in map(_clean_output, cell.outputs) if kept is not None]
    return notebook


def execute(path: Path, cell_timeout: int, destination: Path | None = None) -> float:
    """Execute one notebook (working directory: its own folder) and write it, cleaned for
    storage (:func:`clean_for_storage`), to ``destination`` (default: in place); return the
    seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(clean_for_storage(notebook), destination or path)
    return time.perf_counter() - start


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _verdict(entry: dict) -> str:
    """The entry's verdict (``reproduced``, ``partly``, ``not reproduced``), else its pass flag."""
    verdict = entry.get("verdict") or ("reproduced" if entry["passed"] else "not reproduced")
    return verdict if verdict == "reproduced" else f"**{verdict}**"


def results_table(results: dict) -> str:
    """Markdown table of ``results.json``: claim, statement, criterion, measured, paper,
    verdict per decode scheme and overall verdict."""
    lines = ["| claim | statement | criterion | measured | paper | by decode scheme | verdict |",
             "|---|---|---|---|---|---|---|"]
    for claim, entry in results.items():
        measured = "; ".join(f"{k} = {_format(v)}" for k, v in entry["measured"].items())
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


def _replace_between(text: str, start: str, end: str, body: str) -> str:
    if start not in text or end not in text:
        raise RuntimeError(f"README.md lacks the markers {start} ... {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def update_readme(results: dict, readme: Path = README, notebooks: list[Path] | None = None) -> None:
    """Replace the text between the results markers in README.md with the table, and (given
    executed ``notebooks``) the text between the findings markers with their "What we found"
    paragraphs."""
    text = _replace_between(readme.read_text(), TABLE_START, TABLE_END, results_table(results))
    if notebooks is not None and FINDINGS_START in text:
        text = _replace_between(text, FINDINGS_START, FINDINGS_END, findings_text(notebooks))
    readme.write_text(text)


def _run_all(paths: list[Path], notebooks_out: Path | None, cell_timeout: int, total_timeout: int, jobs: int) -> int:
    """Execute ``paths`` (in order, or ``jobs`` at a time in worker processes); 124 when the
    total timeout passes before a notebook starts."""
    deadline = time.perf_counter() + total_timeout

    def destination(path: Path) -> Path | None:
        return None if notebooks_out is None else notebooks_out / path.name

    if jobs == 1:
        for path in paths:
            if time.perf_counter() > deadline:
                print(f"total timeout of {total_timeout} s reached before {path.name}", file=sys.stderr)
                return 124
            print(f"running {path.name} ...", flush=True)
            print(f"  done in {execute(path.resolve(), cell_timeout, destination(path)):.0f} s", flush=True)
        return 0
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futures = {pool.submit(execute, path.resolve(), cell_timeout, destination(path)): path for path in paths}
        print(f"running {len(paths)} notebooks, {jobs} at a time ...", flush=True)
        remaining = max(1.0, deadline - time.perf_counter())
        try:
            for future in concurrent.futures.as_completed(futures, timeout=remaining):
                print(f"  {futures[future].name} done in {future.result():.0f} s", flush=True)
        except concurrent.futures.TimeoutError:
            print(f"total timeout of {total_timeout} s reached", file=sys.stderr)
            for future in futures:
                future.cancel()
            return 124
    return 0


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
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks executed at once, each in its own kernel (default 1: in order)")
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
    if args.jobs < 1:
        print(f"--jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    status = _run_all(paths, notebooks_out, args.cell_timeout, args.total_timeout, args.jobs)
    if status:
        return status
    if not (figures / "results.json").exists():
        print(f"the notebooks recorded no claim ({figures / 'results.json'} is missing)", file=sys.stderr)
        return 1
    results = read_results(figures / "results.json")
    if notebooks_out is None:
        update_readme(results, notebooks=sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
    else:
        (args.output / "results.md").write_text(results_table(results) + "\n")
    print(results_table(results))
    if args.retrain:
        shipped = cache.ship_models(log)
        print(f"rewrote {len(shipped)} shipped models in {cache.shipped_store_dir()}")
    print(f"models used: {log} (ship them with python -m imclib.cache --ship-models {log})")
    return 0  # every notebook ran; an honest "not reproduced" verdict is a result, not a failure


if __name__ == "__main__":
    sys.exit(main())
