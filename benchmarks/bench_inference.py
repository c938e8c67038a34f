"""Inference speed on the 10,000 MNIST test images: simulated crossbars vs float forward
passes, as paired ratios measured in one process.

Run by hand (not a test)::

    .venv/bin/python benchmarks/bench_inference.py [--rounds 7] [--threads 1 2] [--out DIR]
    .venv/bin/python benchmarks/bench_inference.py --scaling      # time vs batch, width, tile
    .venv/bin/python benchmarks/bench_inference.py --sweep        # (g) with n_jobs 1 and 2
    .venv/bin/python benchmarks/bench_inference.py --cases --sweep      # (g) only
    .venv/bin/python benchmarks/bench_inference.py --commit ...   # also refresh benchmarks/results/

Network: the cached 784-256-10 float MLP (:func:`imclib.experiments.mnist.float_model`).
Hardware: 4-state MTJ cells (binary stack) on 4 x 4 arrays, one device seed. Cases:

b. tiled hardware, ideal Kirchhoff, static programming variation (3 %) and nothing else;
c. (b) with read noise (0.5 %) redrawn at every read;
d. (b) with an 8-bit ADC on every array's partial sums;
e. (b) with 1 ohm per wire segment, solved by nodal analysis (linear cells);
f. (b) with bias-dependent MTJ conductance (ideal wires);
default. the default device, ``CrossbarConfig()``: (f) with read noise (0.5 %), sense noise
   (10 nA) and 8-bit DAC and ADC per array (the one-pass noisy read of :mod:`imclib.kernels`);
deploy. ``deploy_network`` of the default device for one device seed (programming, DAC and
   ADC ranges calibrated on 1,000 training images, the noisy read of those images through
   layer 1): timed per call like a read;
g. a Monte-Carlo sweep of 100 device seeds of (b) (``--sweep``): ``imclib.sweep`` with
   ``n_jobs=1`` and ``n_jobs=2`` (each task deploys its seed and reads all images; the two
   workers are started by a warm-up call before the timed runs).

A hardware case is timed as inference only: the network is deployed once per case before
the rounds (device seed 0: programming, and converter ranges calibrated on 1,000 training
images, :func:`imclib.deploy.deploy_network`), as a chip is programmed and calibrated once
and then read; every timed call reads all 10,000 images through the programmed layers
(fresh read noise each call). The one-off deployment time is reported beside the ratios
(``deploy_s``, not in them), and (g) includes deployment in every task. References: ``float64``, the plain forward ``relu(x W1 + b1) W2 + b2`` on inputs
already cast to float64; ``float32``, the same in float32; ``package``,
``MLP.forward`` (casts and checks its input). Method: every case is timed right after each
of the three references, in one process, in rounds (the order of the cases rotates from
round to round); the paired ratio of a round is the case's time over the reference's time
measured just before it, so that a change of machine load between rounds cancels. Reported:
median and interquartile range (IQR) of the paired ratios over the rounds, for each thread
count (BLAS through threadpoolctl, and the read kernels' numba threads); ``x_float64_cpu`` is the same ratio of CPU times
(``time.process_time``), less sensitive to other processes competing for the cores (with
2 threads it adds both threads' time). Targets are checked on the wall-clock ratio. The BLAS
kernel (threadpoolctl) and the range of the load average over the rounds are written beside
every number (``blas``, ``load``; per round in the raw rounds), the machine in the header.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "b": "ideal Kirchhoff, programming variation",
    "c": "(b) + read noise redrawn every read",
    "d": "(b) + 8-bit ADC on every array's partial sums",
    "e": "(b) + 1 Ω wire segments, nodal analysis (linear cells)",
    "f": "(b) + bias-dependent MTJ conductance",
    "default": "CrossbarConfig(): (f) + read and sense noise, 8-bit DAC and ADC per array",
    "deploy": "deploy_network(CrossbarConfig()), one device seed",
}
# paired ratio to the float64 forward; a dict gives the target per thread count
TARGETS = {"b": 1.5, "c": 2.5, "d": 5.0, "e": 2.5, "f": 5.0, "default": {1: 8.0, 2: 5.0}, "deploy": 2.0}
DEPLOY_TARGETS = {"default": 2.0}  # one-off deployment (deploy_s) over the float64 forward; 1.0 otherwise
SWEEP_SPEEDUP_TARGET = 1.7
REFERENCES = ("float64", "float32", "package")


def hardware_config(case: str):
    """The CrossbarConfig of a hardware case."""
    from imclib import CrossbarConfig, Nonidealities, Periphery, defaults
    from imclib.circuit import WireParasitics

    if case in ("default", "deploy"):
        return CrossbarConfig()
    base = CrossbarConfig.quantization_only().with_(nonideal=Nonidealities(programming_sigma=defaults.PROGRAMMING_SIGMA))
    changes = {
        "b": {},
        "c": {"nonideal": Nonidealities(programming_sigma=defaults.PROGRAMMING_SIGMA, read_sigma=defaults.READ_SIGMA)},
        "d": {"periphery": Periphery(adc_bits=8)},
        "e": {"wires": WireParasitics(r_row=1.0, r_col=1.0)},
        "f": {"nonideal": Nonidealities(programming_sigma=defaults.PROGRAMMING_SIGMA, bias_dependence=True)},
        "g": {},
    }[case]
    return base.with_(**changes)


@functools.lru_cache(maxsize=1)
def workload():
    """``(model, x_test float32, y_test)``, loaded once per process."""
    from imclib.experiments import mnist

    model, _ = mnist.float_model()
    _, _, x_test, y_test = mnist.features(None)
    return model, x_test, y_test


def runners(cases) -> dict:
    """Every timed function, by name: the three references and the hardware cases (reads of
    a network deployed once per case, device seed 0; the deployment times are in
    ``runners.deploy_s``)."""
    from imclib.deploy import deploy_network
    from imclib.experiments import mnist
    from imclib.network import hardware_matmul

    model, x_test, _ = workload()
    x64 = np.asarray(x_test, dtype=np.float64)
    w1, w2 = model.weights
    b1, b2 = model.biases
    x32, w1f, w2f, b1f, b2f = (np.asarray(a, dtype=np.float32) for a in (x_test, w1, w2, b1, b2))
    run = {
        "float64": lambda: np.maximum(x64 @ w1 + b1, 0.0) @ w2 + b2,
        "float32": lambda: np.maximum(x32 @ w1f + b1f, 0.0) @ w2f + b2f,
        "package": lambda: model.forward(x_test),
    }
    calibration = mnist.calibration_inputs()  # converter ranges set on 1,000 training images, as the studies do
    runners.deploy_s = {}
    for case in cases:
        # warm-up: weight-map memo, JIT; another device seed, so that the timed deployment
        # solves its own wired arrays (transfer matrices are memoised by conductances)
        deploy_network(model, hardware_config(case), calibration, 2)
        if case == "deploy":
            run[case] = functools.partial(deploy_network, model, hardware_config(case), calibration, 1)
            continue
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        layers, _ = deploy_network(model, hardware_config(case), calibration, rng)
        runners.deploy_s[case] = time.perf_counter() - start
        run[case] = functools.partial(model.forward, x_test, hardware_matmul(layers, rng))
    return run


def _seconds(function) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all threads) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - cpu


def paired_rounds(cases: list, rounds: int, threads: int) -> pd.DataFrame:
    """Per round and case: the case's time and the references' times just before it."""
    import numba

    run = runners(cases)
    rows = []
    numba.set_num_threads(threads)  # the read kernels' threads
    with threadpool_limits(limits=threads, user_api="blas"):
        for name in (*REFERENCES, *cases):  # warm-up: caches, lazy imports, JIT, page faults
            run[name]()
        for index in range(rounds):
            order = cases[index % len(cases):] + cases[: index % len(cases)]
            for case in order:
                row = {"threads": threads, "round": index, "case": case, "load": os.getloadavg()[0],
                       "blas": blas_kernel()}
                for reference in REFERENCES:
                    row[f"{reference}_s"], row[f"{reference}_cpu_s"] = _seconds(run[reference])
                row["case_s"], row["case_cpu_s"] = _seconds(run[case])
                rows.append(row)
    return pd.DataFrame(rows)


def summarize(raw: pd.DataFrame) -> pd.DataFrame:
    """Median and IQR of the paired ratios per thread count and case."""
    rows = []
    for (threads, case), group in raw.groupby(["threads", "case"], sort=True):
        row = {"threads": threads, "case": case, "what": CASES[case], "rounds": len(group),
               "median_s": round(group["case_s"].median(), 4)}
        for reference in REFERENCES:
            ratio = group["case_s"] / group[f"{reference}_s"]
            q1, q3 = np.percentile(ratio, [25, 75])
            row[f"x_{reference}"] = round(float(ratio.median()), 2)
            row[f"x_{reference}_IQR"] = f"{q1:.2f}-{q3:.2f}"
        cpu_ratio = group["case_cpu_s"] / group["float64_cpu_s"]
        row["x_float64_cpu"] = round(float(cpu_ratio.median()), 2)
        target = TARGETS[case][threads] if isinstance(TARGETS[case], dict) else TARGETS[case]
        row["target"] = f"<= {target:g}x float64"
        row["met"] = "yes" if row["x_float64"] <= target else "NO"
        if case in runners.deploy_s:  # one-off deployment of a read case, over the median float64 forward
            deploy_x = runners.deploy_s[case] / group["float64_s"].median()
            row["deploy_s"] = round(runners.deploy_s[case], 3)
            row["deploy_x_float64"] = f"{deploy_x:.2f} (<= {DEPLOY_TARGETS.get(case, 1.0):g})"
        row["load"] = f"{group['load'].min():.1f}-{group['load'].max():.1f}"
        row["blas"] = "; ".join(sorted(set(group["blas"])))
        rows.append(row)
    table = pd.DataFrame(rows)
    references = raw.drop_duplicates(["threads", "round", "case"]).groupby("threads")
    table.attrs["reference_s"] = {
        threads: {ref: round(float(group[f"{ref}_s"].median()), 4) for ref in REFERENCES}
        for threads, group in references
    }
    return table


def seeds_accuracy(seed: int) -> dict:
    """One task of case (g): accuracy of the float model on hardware (b) with ``seed``."""
    from imclib.experiments import mnist
    from imclib.network import hardware_logits

    model, x_test, y_test = workload()
    logits = hardware_logits(model, x_test, hardware_config("g"), seed, mnist.calibration_inputs())
    return {"accuracy": float(np.mean(logits.argmax(1) == y_test))}


def sweep_case(seeds: int = 100) -> pd.DataFrame:
    """Case (g): the device-seed Monte Carlo with ``n_jobs=1`` and ``n_jobs=2``, alternated."""
    from imclib import sweep

    # workers import this file as a module (by name, so each loads the data set once)
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, here)
    task = __import__("bench_inference").seeds_accuracy
    rows, tables = [], {}
    # warm-up: start the two loky workers (imports, data set, JIT cache) before timing;
    # joblib reuses them for the timed n_jobs=2 runs, so start-up is not in the ratio
    sweep(task, {"seed": range(4)}, n_jobs=2, progress=False)
    for n_jobs in (1, 2, 1, 2):
        with threadpool_limits(limits=1, user_api="blas"):
            load = os.getloadavg()[0]
            start = time.perf_counter()
            tables[n_jobs] = sweep(task, {"seed": range(seeds)}, n_jobs=n_jobs, progress=False)
            rows.append({"n_jobs": n_jobs, "seconds": time.perf_counter() - start, "load_before": load})
    if not tables[1].equals(tables[2]):
        raise AssertionError("n_jobs=1 and n_jobs=2 gave different accuracies")
    table = pd.DataFrame(rows)
    table.attrs["accuracy"] = tables[1]["accuracy"]
    return table


def scaling(threads: int = 1, rounds: int = 5) -> pd.DataFrame:
    """One layer's read time (cases b and d) vs batch, output width and tile size, paired
    with the float64 matmul of the same shape: time per unit of work."""
    from imclib import program_layer

    rng = np.random.default_rng(0)
    shapes = ([("batch", n, 784, 256, 4) for n in (1250, 2500, 5000, 10000)]
              + [("width", 5000, 784, n, 4) for n in (64, 128, 256, 512)]
              + [("tile", 5000, 784, 256, k) for k in (4, 8, 16, 32, 64)])
    rows = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for axis, batch, n_in, n_out, k in shapes:
            x = rng.uniform(size=(batch, n_in))
            weights = rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)
            for case in "bd":
                config = hardware_config(case).with_(rows=k, cols=k)
                layer = program_layer(weights, config, 0)
                layer.mvm(x[:64])
                ratios, seconds = [], []
                for _ in range(rounds):
                    reference = _seconds(lambda: x @ weights)[0]
                    seconds.append(_seconds(lambda: layer.mvm(x))[0])
                    ratios.append(seconds[-1] / reference)
                rows.append({"axis": axis, "batch": batch, "n_in": n_in, "n_out": n_out, "tile": k,
                             "case": case, "median_s": round(statistics.median(seconds), 4),
                             "ns_per_cell_read": round(1e9 * statistics.median(seconds) / (batch * n_in * n_out), 3),
                             "x_float64_matmul": round(statistics.median(ratios), 2)})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A pandas DataFrame as a GitHub markdown table."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def blas_kernel() -> str:
    """The BLAS library, version and kernel in use (threadpoolctl), e.g. ``openblas 0.3.27 SkylakeX``."""
    return "; ".join(f"{info['internal_api']} {info.get('version')} {info.get('architecture')}"
                     for info in threadpool_info() if info["user_api"] == "blas")


def machine(load_before, load_after) -> str:
    """The machine, BLAS and load, one line."""
    blas = [f"{info['internal_api']} {info.get('version')} ({info.get('architecture')}, "
            f"{info.get('threading_layer')})" for info in threadpool_info() if info["user_api"] == "blas"]
    import numba

    numba_threads = f"numba {numba.__version__} ({numba.config.THREADING_LAYER} threading layer, up to {numba.config.NUMBA_NUM_THREADS} threads)"
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()}), load average {load_before:.2f} before / "
            f"{load_after:.2f} after, BLAS: {'; '.join(blas)}, Python {platform.python_version()}, "
            f"numpy {np.__version__}, {numba_threads}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds per case (>= 7 recommended)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS thread counts")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES),
                        help="hardware cases, e.g. 'b d default' (none, with --sweep: (g) only)")
    parser.add_argument("--sweep", action="store_true", help="also time case (g), n_jobs 1 and 2")
    parser.add_argument("--scaling", action="store_true", help="time vs batch, width and tile size only")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: a new temporary folder)")
    parser.add_argument("--commit", action="store_true", help="also write the tables to benchmarks/results/")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)  # case d: the ADC saturates on a few reads
    out = args.out or Path(tempfile.mkdtemp(prefix="imclib-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    folders = [out] + ([RESULTS] if args.commit else [])
    load_before = os.getloadavg()[0]
    sections = []
    if args.scaling:
        table = scaling()
        files = {"scaling.csv": table}
        sections.append(("Read time of one layer vs batch, width and tile size (1 BLAS thread)", table))
    else:
        files = {}
        if args.cases:
            raw = pd.concat([paired_rounds(args.cases, args.rounds, threads) for threads in args.threads])
            table = summarize(raw)
            files = {"inference.csv": table, "inference_rounds.csv": raw}
            reference = "; ".join(f"{threads} thread(s): " + ", ".join(f"{k} {v:.4f} s" for k, v in refs.items())
                                  for threads, refs in table.attrs["reference_s"].items())
            sections.append((f"Paired ratios, {args.rounds} rounds (references, median: {reference})", table))
        if args.sweep:
            g = sweep_case()
            files["sweep.csv"] = g
            files["inference_seeds.csv"] = pd.DataFrame({"seed": range(100), "accuracy": g.attrs["accuracy"]})
            median = g.groupby("n_jobs")["seconds"].median()
            speedup = median[1] / median[2]
            sections.append((f"(g) 100 device seeds of (b) with imclib.sweep: speedup n_jobs=2 over 1 = "
                             f"{speedup:.2f}x (target >= {SWEEP_SPEEDUP_TARGET}x: "
                             f"{'met' if speedup >= SWEEP_SPEEDUP_TARGET else 'NOT met'}); accuracy "
                             f"{g.attrs['accuracy'].mean():.4f} ± {g.attrs['accuracy'].std():.4f}", g.round(3)))
    header = machine(load_before, os.getloadavg()[0])
    text = header + "\n\n" + "\n\n".join(f"{title}\n\n{markdown(table)}" for title, table in sections) + "\n"
    print(text)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in files.items():
            frame.to_csv(folder / name, index=False)
        (folder / ("scaling.md" if args.scaling else "inference.md" if args.cases else "sweep.md")).write_text(text)
    print(f"written to {', '.join(map(str, folders))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
