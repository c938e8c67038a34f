"""Inference speed of the small CNN (:data:`imclib.sequential.SMALL_CNN`) on the 10,000 MNIST
test images: the default device against the CNN's own float forward, as paired ratios.

Run by hand (not a test)::

    .venv/bin/python benchmarks/bench_cnn.py [--rounds 5] [--images 10000] [--commit]

Network: the cached CNN of training seed 0 (:func:`imclib.experiments.cnn.cnn_model`; trained
on first use). Cases, timed in one process with one BLAS and one numba thread:

float. ``Sequential.forward`` in float64 (im2col in chunks of 64 MiB);
read. the default device, ``CrossbarConfig()`` (bias-dependent 4-state MTJ cells on 4 x 4
   arrays, programming variation, read and sense noise, 8-bit DAC and ADC), deployed once
   for device seed 0, then every call reads all images (fresh read noise);
deploy. :func:`imclib.deploy.deploy_network` for one device seed: programming and
   converter ranges calibrated on the CNN's training images (``cnn.CNN_CALIBRATION``, 500;
   each layer calibrated on all its rows, then read to calibrate the next).

Method: in every round the float forward is timed, then each case right after it; a case's
paired ratio is its time over the float time of the same round, so a change of machine load
between rounds cancels. Reported: the median and the range over rounds of the wall-clock
times and ratios, CPU times (``time.process_time``) beside them, the load average, the BLAS
kernel and peak memory (``ru_maxrss``). Targets (issue 22): the read of 10,000 images
<= 60 s; deployment within one float forward.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402  (after the thread settings)
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

import imclib  # noqa: E402
from imclib.experiments import cnn, mnist  # noqa: E402
from imclib.network import hardware_matmul  # noqa: E402
from imclib.deploy import deploy_network  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(function):
    """``(wall s, cpu s)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--commit", action="store_true", help="write benchmarks/results/cnn.{csv,md}")
    args = parser.parse_args(argv)
    model, _ = cnn.cnn_model(0)
    x = mnist.split()["x_test"][: args.images].astype(np.float64)
    config, calibration = imclib.CrossbarConfig(), cnn.cnn_calibration_inputs()
    layers, _ = deploy_network(model, config, calibration, 0)
    read_rng = np.random.default_rng(1)
    cases = {
        "read": lambda: model.forward(x, hardware_matmul(layers, read_rng)),
        "deploy": lambda: deploy_network(model, config, calibration, 0),
    }
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # calibrated ADC ranges saturate on purpose
        for round_ in range(args.rounds):
            float_wall, float_cpu = _timed(lambda: model.forward(x))
            for case, function in cases.items():
                wall, cpu = _timed(function)
                records.append({"round": round_, "case": case, "wall_s": wall, "cpu_s": cpu, "float_wall_s": float_wall,
                                "float_cpu_s": float_cpu, "ratio": wall / float_wall, "ratio_cpu": cpu / float_cpu,
                                "load": os.getloadavg()[0]})
    rounds = pd.DataFrame(records)
    summary = rounds.groupby("case", sort=False).agg(
        wall_s=("wall_s", "median"), wall_min=("wall_s", "min"), wall_max=("wall_s", "max"),
        cpu_s=("cpu_s", "median"), float_wall_s=("float_wall_s", "median"), ratio=("ratio", "median"),
        ratio_min=("ratio", "min"), ratio_max=("ratio", "max"), ratio_cpu=("ratio_cpu", "median"),
        load_min=("load", "min"), load_max=("load", "max")).reset_index()
    blas = ", ".join(sorted({f"{i.get('internal_api')} {i.get('architecture', '')}".strip() for i in threadpool_info()}))
    header = (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
              f"BLAS {blas}, 1 thread, {args.images} images, {args.rounds} rounds, "
              f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    print(header)
    print(summary.round(3).to_string(index=False))
    read = summary.set_index("case").loc["read"]
    deploy = summary.set_index("case").loc["deploy"]
    print(f"read of {args.images} images: {read.wall_s:.1f} s (target <= 60 s for 10,000: "
          f"{'met' if read.wall_s * 10_000 / args.images <= 60 else 'not met'}); "
          f"deployment {deploy.ratio:.2f} float forwards (target <= 1: {'met' if deploy.ratio <= 1 else 'not met'})")
    if args.commit:
        RESULTS.mkdir(exist_ok=True)
        rounds.to_csv(RESULTS / "cnn.csv", index=False)
        table = summary.round(3).to_string(index=False)
        (RESULTS / "cnn.md").write_text(f"# CNN inference (benchmarks/bench_cnn.py)\n\n{header}\n\n```\n{table}\n```\n",
                                        encoding="utf-8")
    return summary


if __name__ == "__main__":
    main()
