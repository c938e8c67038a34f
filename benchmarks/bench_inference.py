"""Inference speed on the 10,000 MNIST test images: float numpy vs simulated crossbars.

Run by hand (not a test), when the machine is quiet::

    .venv/bin/python benchmarks/bench_inference.py [--repeats 5] [--threads 1]

Network: the cached 784-256-10 float MLP (:func:`imclib.experiments.mnist.float_model`).
Hardware: 4-state MTJ cells (binary stack) on 4 x 4 arrays, one device seed. Cases:

a. float numpy forward pass;
b. tiled hardware, ideal Kirchhoff, static programming variation (3 %) and nothing else;
c. (b) with read noise (0.5 %) redrawn at every read;
d. (b) with an 8-bit ADC on every array's partial sums;
e. (b) with 1 ohm per wire segment, solved by nodal analysis (linear cells);
f. (b) with bias-dependent MTJ conductance (ideal wires);
g. a Monte-Carlo sweep of 100 device seeds of (b): accuracy per seed.

A hardware run programs the network for its device seed and infers all images (programming
included in the time). Each case runs in its own subprocess (so peak memory is per case)
with ``OPENBLAS_NUM_THREADS`` etc. set to ``--threads``; times are the median of
``--repeats`` runs after one warm-up run (case g: one run). Peak memory: the subprocess's
peak resident set (``ru_maxrss``, data and interpreter included) and the peak of the
numpy allocations during one run (tracemalloc). Ratios are to case (a) of the same run.
Writes ``benchmarks/results/inference.csv`` and ``inference.md`` (with the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "a": "float numpy forward",
    "b": "hardware: ideal Kirchhoff, programming variation",
    "c": "(b) + read noise redrawn every read",
    "d": "(b) + 8-bit ADC on every array's partial sums",
    "e": "(b) + 1 Ω wire segments, nodal analysis (linear cells)",
    "f": "(b) + bias-dependent MTJ conductance",
    "g": "(b) over 100 device seeds (accuracy per seed)",
}
TARGETS = {"b": 2.0, "c": 4.0, "d": 20.0, "e": 3.0, "f": 8.0}  # ratio to (a)
SWEEP_TARGET_S = 60.0
MEMORY_TARGET_MB = 2048.0
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def hardware_config(case: str):
    """The CrossbarConfig of a hardware case."""
    from imclib import CrossbarConfig, Nonidealities, Periphery, defaults
    from imclib.circuit import WireParasitics

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


def run_case(case: str, repeats: int) -> dict:
    """Time one case in this process; return seconds per run, accuracy and memory."""
    import numpy as np

    from imclib.experiments import mnist
    from imclib.network import hardware_logits

    model, _ = mnist.float_model()
    _, _, x_test, y_test = mnist.features(None)
    if case == "a":
        def once():
            return [float(np.mean(model.forward(x_test).argmax(1) == y_test))]
    elif case == "g":
        config = hardware_config(case)
        repeats = 1

        def once():
            return [float(np.mean(hardware_logits(model, x_test, config, seed).argmax(1) == y_test))
                    for seed in range(100)]
    else:
        config = hardware_config(case)

        def once():
            return [float(np.mean(hardware_logits(model, x_test, config, 0).argmax(1) == y_test))]

    if case != "g":
        once()  # warm-up: caches, lazy imports, page faults
    seconds = []
    tracemalloc.start()
    for _ in range(repeats):
        tracemalloc.reset_peak()
        start = time.perf_counter()
        accuracy = once()
        seconds.append(time.perf_counter() - start)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "case": case, "seconds": seconds, "accuracy": accuracy,
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_traced_MB": traced_peak / 2**20,
    }


def markdown(table) -> str:
    """A pandas DataFrame as a GitHub markdown table."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def in_subprocess(case: str, repeats: int, threads: int) -> dict:
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    done = subprocess.run([sys.executable, __file__, "--case", case, "--repeats", str(repeats)],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (OPENBLAS_NUM_THREADS) per case")
    parser.add_argument("--cases", default="".join(CASES), help="which cases to run, e.g. 'abd'")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print JSON
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.repeats)))
        return 0

    load_before = os.getloadavg()
    runs = {}
    for case in args.cases:
        runs[case] = in_subprocess(case, args.repeats, args.threads)
        print(f"{case}: median {statistics.median(runs[case]['seconds']):.3f} s", flush=True)
    load_after = os.getloadavg()

    import pandas as pd

    base = statistics.median(runs["a"]["seconds"]) if "a" in runs else float("nan")
    rows = []
    for case, run in runs.items():
        median = statistics.median(run["seconds"])
        images = 10_000 * (100 if case == "g" else 1)
        ratio = median / base
        if case == "g":
            target, met = f"< {SWEEP_TARGET_S:.0f} s", median < SWEEP_TARGET_S
        elif case in TARGETS:
            target, met = f"<= {TARGETS[case]:g}x", ratio <= TARGETS[case]
        else:
            target, met = "", True
        met = met and run["peak_rss_MB"] < MEMORY_TARGET_MB
        accuracy = run["accuracy"]
        rows.append({
            "case": case, "what": CASES[case], "median_s": round(median, 3), "runs": len(run["seconds"]),
            "images_per_s": round(images / median), "ratio_to_a": round(ratio, 2),
            "target": target, "met": "yes" if met else "NO",
            "peak_rss_MB": round(run["peak_rss_MB"]), "peak_numpy_MB": round(run["peak_traced_MB"]),
            "accuracy": (f"{statistics.mean(accuracy):.4f} ± {statistics.stdev(accuracy):.4f} (100 seeds)"
                         if len(accuracy) > 1 else f"{accuracy[0]:.4f}"),
        })
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "inference.csv", index=False)
    if "g" in runs:
        pd.DataFrame({"seed": range(100), "accuracy": runs["g"]["accuracy"]}).to_csv(
            RESULTS / "inference_seeds.csv", index=False)
    import numpy as np

    header = (f"OPENBLAS_NUM_THREADS={args.threads}, {os.cpu_count()} CPUs, load average "
              f"{load_before[0]:.2f} before / {load_after[0]:.2f} after, {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}, numpy {np.__version__}, "
              f"median of {args.repeats} runs after a warm-up (g: one run)")
    (RESULTS / "inference.md").write_text(f"{header}\n\n{markdown(table)}\n")
    print(header)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
