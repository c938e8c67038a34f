"""Linear circuit solve of one large array: ``imclib.circuit.linear_column_currents`` vs
assembling the same nodal network and calling ``scipy.sparse.linalg.spsolve``.

Run by hand (not a test)::

    .venv/bin/python benchmarks/bench_solver.py [--size 256] [--batch 100] [--rounds 5] [--out DIR]

One ``size x size`` array of random conductances (1-10 kOhm cells), 1 ohm wire segments on
rows and columns, ``batch`` random inputs. Both sides include assembling the network. In
each round imclib and spsolve are timed back to back (paired ratio; which goes first
alternates), one BLAS thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from imclib.circuit import WireParasitics, _Topology, linear_column_currents


def spsolve_currents(G: np.ndarray, V: np.ndarray, wires: WireParasitics) -> np.ndarray:
    """The reference: assemble ``A x = B V`` with the same topology, ``spsolve``, sum the cell currents."""
    k, m = G.shape
    topo = _Topology(k, m, wires)
    g = G.ravel()
    x = spla.spsolve(topo.assemble_sparse(g), np.asarray(topo.rhs_matrix_sparse(g) @ V.T))
    v = topo.cell_voltages(x.reshape(topo.n, -1), V.T)
    return np.einsum("ijb,ij->bj", v.reshape(k, m, -1), G)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    G = 1.0 / rng.uniform(1e3, 1e4, size=(args.size, args.size))
    V = rng.uniform(0.0, 0.2, size=(args.batch, args.size))
    wires = WireParasitics(r_row=1.0, r_col=1.0)
    load = os.getloadavg()[0]
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        ours, reference = linear_column_currents(G, V, wires), spsolve_currents(G, V, wires)
        error = float(np.abs(ours - reference).max() / np.abs(reference).max())
        for index in range(args.rounds):  # alternate which goes first
            times = {}
            for name in (("spsolve", "imclib") if index % 2 == 0 else ("imclib", "spsolve")):
                start = time.perf_counter()
                (spsolve_currents if name == "spsolve" else linear_column_currents)(G, V, wires)
                times[f"{name}_s"] = time.perf_counter() - start
            rows.append({"round": index, **times})
    table = pd.DataFrame(rows)
    ratio = table["imclib_s"] / table["spsolve_s"]
    text = (f"{args.size}x{args.size} array, {args.batch} inputs, load average {load:.2f} before / "
            f"{os.getloadavg()[0]:.2f} after: imclib {table['imclib_s'].median():.3f} s, spsolve "
            f"{table['spsolve_s'].median():.3f} s, paired ratio imclib/spsolve median {ratio.median():.2f} "
            f"[IQR {ratio.quantile(0.25):.2f}-{ratio.quantile(0.75):.2f}] over {args.rounds} rounds; "
            f"max relative difference {error:.1e}")
    print(text)
    out = args.out or Path(tempfile.mkdtemp(prefix="imclib-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "solver.csv", index=False)
    (out / "solver.md").write_text(text + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
