"""What the cost model adds to a hardware inference (target: < 10 %).

Run by hand (not a test), when the machine is quiet::

    .venv/bin/python benchmarks/bench_cost.py [--repeats 7] [--threads 1]

Network: the cached 784-256-10 float MLP on the 10,000 MNIST test images, 4-state MTJ cells
(binary stack) on 4 x 4 arrays, one device seed. For each hardware case, two timings:

* ``inference``: program the network and infer every image
  (:func:`imclib.network.program_network` and ``model.forward`` with the hardware matmul);
* ``inference + cost``: the same, keeping each layer's inputs
  (:func:`imclib.cost.network_inputs`), then :func:`imclib.cost.cost_table` and
  :func:`imclib.cost.efficiency` on every image.

Cases: (b) ideal Kirchhoff with programming variation, (d) (b) + an 8-bit ADC, (f) (b) +
bias-dependent MTJ conductance, (x) the default device (bias dependence, variation, read and
sense noise) with an 8-bit ADC. Each case runs in its own subprocess with
``OPENBLAS_NUM_THREADS`` etc. set to ``--threads``; each timing is the median of
``--repeats`` runs after a warm-up, the two timings interleaved. Writes
``benchmarks/results/cost.csv`` and ``cost.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "b": "ideal Kirchhoff, programming variation",
    "d": "(b) + 8-bit ADC",
    "f": "(b) + bias-dependent MTJ conductance",
    "x": "default device (bias dependence, variation, read and sense noise) + 8-bit ADC",
}
TARGET = 0.10
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def hardware_config(case: str):
    """The CrossbarConfig of a case."""
    from imclib import CrossbarConfig, Nonidealities, Periphery, defaults

    variation = Nonidealities(programming_sigma=defaults.PROGRAMMING_SIGMA)
    base = CrossbarConfig.quantization_only().with_(nonideal=variation)
    if case == "x":
        default = CrossbarConfig()
        return default.with_(periphery=Periphery(adc_bits=8, sense_noise=default.periphery.sense_noise))
    changes = {
        "b": {},
        "d": {"periphery": Periphery(adc_bits=8)},
        "f": {"nonideal": Nonidealities(programming_sigma=defaults.PROGRAMMING_SIGMA, bias_dependence=True)},
    }[case]
    return base.with_(**changes)


def run_case(case: str, repeats: int) -> dict:
    """Time one case in this process: seconds per run with and without the cost model."""
    import warnings

    import numpy as np

    from imclib.cost import cost_table, efficiency, network_inputs
    from imclib.experiments import mnist
    from imclib.network import hardware_matmul, program_network

    warnings.filterwarnings("ignore", message="ADC saturated", category=RuntimeWarning)
    model, _ = mnist.float_model()
    _, _, x_test, y_test = mnist.features(None)
    config = hardware_config(case)

    def inference():
        rng = np.random.default_rng(0)
        layers = program_network(model, config, rng)
        return model.forward(x_test, matmul=hardware_matmul(layers, rng)), None

    def inference_and_cost():
        rng = np.random.default_rng(0)
        layers = program_network(model, config, rng)
        logits, inputs = network_inputs(model, layers, x_test, rng)
        return logits, efficiency(cost_table(layers, inputs), layers)

    runs = {"inference": [], "inference + cost": []}
    for function in (inference, inference_and_cost):  # warm-up
        function()
    for _ in range(repeats):
        for name, function in (("inference", inference), ("inference + cost", inference_and_cost)):
            start = time.perf_counter()
            logits, summary = function()
            runs[name].append(time.perf_counter() - start)
    base, with_cost = statistics.median(runs["inference"]), statistics.median(runs["inference + cost"])
    return {"case": case, "what": CASES[case], "inference_s": base, "with_cost_s": with_cost,
            "overhead": with_cost / base - 1.0, "accuracy": float(np.mean(logits.argmax(1) == y_test)),
            "energy_nJ": summary["energy_J"] * 1e9, "TOPS_per_W": summary["TOPS_per_W"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repeats)))
        return 0
    import pandas as pd

    env = {**os.environ, **{name: str(args.threads) for name in THREAD_VARIABLES}}
    load_before = os.getloadavg()[0]
    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--repeats", str(args.repeats)], env=env,
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    table = pd.DataFrame(rows)
    table["met"] = table.overhead < TARGET
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "cost.csv", index=False)
    import numpy

    lines = [
        f"Median of {args.repeats} runs after a warm-up, {args.threads} thread(s), 10,000 MNIST test images, "
        f"4-state MTJ cells on 4x4 arrays; load average {load_before:.2f} before / {load_after:.2f} after, "
        f"{platform.machine()}, Python {platform.python_version()}, numpy {numpy.__version__}.",
        "",
        "| case | what | inference (s) | inference + cost (s) | overhead | target | met | energy (nJ/inference) | TOPS/W |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(f"| {row.case} | {row.what} | {row.inference_s:.3f} | {row.with_cost_s:.3f} | {row.overhead:+.1%} | "
                     f"< {TARGET:.0%} | {'yes' if row.met else 'no'} | {row.energy_nJ:.1f} | {row.TOPS_per_W:.2f} |")
    (RESULTS / "cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if table.met.all() else 1


if __name__ == "__main__":
    sys.exit(main())
