"""README.md and the pages of docs/ work as written.

Every ```python block of a page runs, the blocks of one page in order in one namespace (as a
reader pastes them into one session), in a fresh interpreter with one BLAS thread, from a
temporary folder (so nothing is written into the repository). Each block asserts or prints
what it shows; the blocks are kept to a few seconds each (small data, few device seeds, a
one-worker in-process Dask cluster); the longest, the sweep example of docs/api.md, runs
eight hardware evaluations of 1,000 MNIST images, about 10-15 s. ```bash blocks are not run (they install, train or
benchmark for minutes); the files and notebooks they name, and every relative link of the
pages, must exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH_TOKEN = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.(?:py|ipynb|yml|toml))\b")
BLOCK_TIMEOUT_S = 600
"""Per page, a safety net: the first hardware read of a fresh checkout compiles numba kernels."""


def blocks(page: Path, language: str) -> list[str]:
    """The fenced blocks of ``page`` in ``language``, in order."""
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


PYTHON_PAGES = [page for page in PAGES if blocks(page, "python")]


def test_the_readme_and_the_api_page_carry_python_examples():
    assert {ROOT / "README.md", ROOT / "docs" / "api.md"} <= set(PYTHON_PAGES)


RUNNER = """
import sys
namespace = {"__name__": "__main__"}
for index, path in enumerate(sys.argv[1:], 1):
    source = open(path).read()
    print(f"--- block {index}", flush=True)
    exec(compile(source, f"block {index} ({path})", "exec"), namespace)
"""


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_python_blocks_run_in_order(page, tmp_path):
    paths = []
    for index, body in enumerate(blocks(page, "python"), 1):
        path = tmp_path / f"{page.stem}_{index}.py"
        path.write_text(body)
        paths.append(str(path))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", RUNNER, *paths], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"{page.name}: a python block failed\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert done.stdout.count("--- block") == len(paths)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_and_the_files_bash_blocks_name_exist(page):
    targets = [page.parent / link for link in LINK.findall(page.read_text()) if "://" not in link]
    named = [ROOT / token for body in blocks(page, "bash") for token in PATH_TOKEN.findall(body)]
    missing = [str(path) for path in targets + named if not path.resolve().exists()]
    assert not missing, f"{page.name} names files that do not exist: {missing}"
