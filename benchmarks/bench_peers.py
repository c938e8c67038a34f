"""imclib beside IBM aihwkit on the same network and data, in one process (not run in CI).

Install aihwkit in a separate virtual environment (the combination that installs and runs
here: the aihwkit 1.1.0 wheel needs torch 2.10; torch 2.14, which pip picks by default,
fails at the first layer with "weights must be a CPU tensor"; aihwkit 1.2.0 has no wheel)::

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install "aihwkit==1.1.0" "torch==2.10.*" "torchvision<0.26" pandas numba
    PYTHONPATH=$PWD /work/peers-venv/bin/python benchmarks/bench_peers.py [--out DIR] [--commit]

Network: the cached 784-256-10 float MLP of ``imclib.experiments.mnist`` on the 10,000
MNIST test images, one thread (``torch.set_num_threads(1)``, one BLAS thread). aihwkit:
``AnalogLinear`` layers with ``InferenceRPUConfig`` tiled at most 4 x 4 (as imclib's
arrays) or at its default 512 x 512, either with perfect periphery (``forward.is_perfect``)
or with its default converters (7-bit DAC, 9-bit ADC, output noise) -- its forward pass
only, construction and weight loading excluded. imclib: cases (b) and (d) of
``bench_inference.py`` (programming included). Every case is paired with the plain float64
forward timed just before it; median over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import hardware_config, markdown, workload  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def aihwkit_network(tile: int | None, perfect: bool):
    """The float MLP as an aihwkit analog network (eval mode), and its description."""
    import torch
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.simulator.configs import InferenceRPUConfig

    model, _, _ = workload()
    config = InferenceRPUConfig()
    if tile is not None:
        config.mapping.max_input_size = tile
        config.mapping.max_output_size = tile
    config.forward.is_perfect = perfect
    layers = []
    for weights, bias in zip(model.weights, model.biases):
        layer = AnalogLinear(weights.shape[0], weights.shape[1], bias=True, rpu_config=config)
        layer.set_weights(torch.tensor(weights.T, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32))
        layers.append(layer)
    network = AnalogSequential(layers[0], torch.nn.ReLU(), layers[1]).eval()
    size = f"{tile}x{tile}" if tile else "default (512x512)"
    return network, f"aihwkit {size} tiles, {'perfect periphery' if perfect else 'default converters'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the fast cases (4x4 aihwkit: 1)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--commit", action="store_true", help="also write benchmarks/results/peers.md")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import aihwkit
    import torch

    from imclib.experiments import mnist
    from imclib.network import hardware_logits

    torch.set_num_threads(1)
    model, x_test, y_test = workload()
    calibration = mnist.calibration_inputs()  # deployment (programming + calibration) is timed with imclib
    x64 = np.asarray(x_test, dtype=np.float64)
    x_torch = torch.tensor(x_test, dtype=torch.float32)
    w1, w2 = model.weights
    b1, b2 = model.biases

    def float64():
        return np.maximum(x64 @ w1 + b1, 0.0) @ w2 + b2

    cases = {f"imclib ({case}) {label}":
             (lambda case=case: hardware_logits(model, x_test, hardware_config(case), 0, calibration), args.rounds)
             for case, label in (("b", "ideal Kirchhoff, programming variation"), ("d", "(b) + 8-bit ADC per array"))}
    for tile in (None, 4):
        for perfect in (True, False):
            network, name = aihwkit_network(tile, perfect)

            def forward(network=network):
                with torch.no_grad():
                    return network(x_torch).numpy()

            cases[name] = (forward, 1 if tile == 4 else args.rounds)
    load_before = os.getloadavg()[0]
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        float64()
        for name, (run, rounds) in cases.items():
            if rounds > 1:
                run()  # warm-up
            ratios, seconds = [], []
            for _ in range(rounds):
                start = time.perf_counter()
                float64()
                middle = time.perf_counter()
                logits = run()
                seconds.append(time.perf_counter() - middle)
                ratios.append(seconds[-1] / (middle - start))
            rows.append({"case": name, "rounds": rounds, "median_s": round(float(np.median(seconds)), 3),
                         "x_float64": round(float(np.median(ratios)), 1),
                         "accuracy": round(float(np.mean(np.asarray(logits).argmax(1) == y_test)), 4)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    header = (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, load "
              f"average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after; aihwkit {aihwkit.__version__}, "
              f"torch {torch.__version__} (1 thread), numpy {np.__version__}; 10,000 MNIST test images, "
              "784-256-10 MLP")
    text = f"{header}\n\n{markdown(table)}\n"
    print(text)
    out = args.out or Path(tempfile.mkdtemp(prefix="imclib-bench-"))
    for folder in [out] + ([RESULTS] if args.commit else []):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "peers.md").write_text(text)
        table.to_csv(folder / "peers.csv", index=False)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
