"""Study 03: PCA as a digital front end (claim C3).

The claim: reducing the input dimension with PCA narrows the software-hardware accuracy
gap. The test, per decode scheme (:data:`imclib.experiments.mnist.SCHEMES`):

1. on the validation split (last 5,000 training images), measure the gap
   ``software - hardware`` of every PCA size (:data:`COMPONENTS`) and choose the size with
   the smallest mean gap (:func:`choose_size`): the choice an expert makes, never on test data;
2. on the 10,000 test images, compare the gap at that size with the gap without PCA
   (raw 784 pixels) over device seeds by a one-sided Welch t-test (:func:`welch_gap_test`).

The software network of each size is the float network of training seed 0 trained on that
size's inputs; the hardware network is either the hardware-aware trained one
(:func:`imclib.experiments.mnist.hwa_model` with ``n_components``) or, as a contrast, the
float network deployed with the calibrated map (expert PTQ). Every evaluation goes through
:func:`imclib.experiments.mnist.network_accuracy` and is cached per device seed, so the
no-PCA test evaluations are shared with study 02.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from ..config import CrossbarConfig
from . import mnist

COMPONENTS = (16, 32, 64, 128, 256)
"""PCA sizes the validation step chooses from."""


def gap_table(config: CrossbarConfig, components=(*COMPONENTS, None), networks=("HWA", "PTQ expert"),
              device_seeds=range(3), subset: str = "val", train_seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Software minus hardware accuracy per PCA size, network and device seed.

    ``gap = A_software(p) - A_hardware(p, seed)``: both networks see the same ``p``
    principal components (``None``: raw pixels) of the ``subset`` (``val`` or ``test``)
    images; ``A_software`` is the float network's floating-point accuracy. Columns:
    ``pca`` (an int, or ``"none"``), ``tiles`` (arrays the network occupies), ``network``,
    ``device_seed``, ``software``, ``accuracy``, ``gap`` (fractions, not points).
    """
    frames = []
    jobs = [(p, network) for p in components for network in networks]
    for p, network in tqdm(jobs, desc=f"PCA gaps ({subset})", disable=not progress):
        software = mnist.network_accuracy("software", config, train_seed, (), p, subset).accuracy.iloc[0]
        hardware = mnist.network_accuracy(network, config, train_seed, device_seeds, p, subset)
        frames.append(hardware.assign(pca="none" if p is None else p, tiles=mnist.tile_count(p, config),
                                      software=software, gap=software - hardware.accuracy))
    return pd.concat(frames, ignore_index=True)[["pca", "tiles", "network", "device_seed", "software", "accuracy", "gap"]]


def choose_size(gaps: pd.DataFrame, network: str) -> int:
    """The PCA size (not ``"none"``) with the smallest mean gap of ``network`` in ``gaps``
    (a :func:`gap_table` on the validation split); ties go to the smaller size."""
    rows = gaps[(gaps.network == network) & (gaps.pca != "none")]
    if rows.empty:
        raise ValueError(f"gaps has no PCA rows for network {network!r}")
    means = rows.groupby("pca").gap.mean().sort_index()
    return int(means.idxmin())


def _ci95(values: np.ndarray) -> list[float]:
    """95 % Student-t interval of the mean of ``values``."""
    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return [float(values.mean() - half), float(values.mean() + half)]


def welch_gap_test(gaps: pd.DataFrame, network: str, size: int) -> dict:
    """One-sided Welch t-test of ``gap(size) < gap(no PCA)`` over device seeds.

    ``t = (m_p - m_0) / sqrt(s_p^2 / n_p + s_0^2 / n_0)`` with Welch-Satterthwaite degrees
    of freedom; ``p_value`` is ``P(T <= t)`` under equal means (small when PCA narrows the
    gap). Returns ``gap_pca``, ``gap_no_pca`` (means), their ``ci95`` intervals,
    ``difference`` (``gap_pca - gap_no_pca``), ``p_value`` and ``n_seeds`` (the smaller count).
    """
    rows = gaps[gaps.network == network]
    with_pca = rows[rows.pca == size].gap.to_numpy(float)
    without = rows[rows.pca == "none"].gap.to_numpy(float)
    if len(with_pca) < 2 or len(without) < 2:
        raise ValueError(f"need >= 2 device seeds at pca={size!r} and without PCA for {network!r}, "
                         f"got {len(with_pca)} and {len(without)}")
    if np.ptp(np.concatenate([with_pca, without])) == 0:
        p_value = 1.0  # identical constant samples: no evidence of a difference
    else:
        p_value = float(stats.ttest_ind(with_pca, without, equal_var=False, alternative="less").pvalue)
    return {"size": int(size), "gap_pca": float(with_pca.mean()), "gap_no_pca": float(without.mean()),
            "ci95_pca": _ci95(with_pca), "ci95_no_pca": _ci95(without),
            "difference": float(with_pca.mean() - without.mean()), "p_value": p_value,
            "n_seeds": int(min(len(with_pca), len(without)))}


def pca_study(config: CrossbarConfig, networks=("HWA", "PTQ expert"), components=COMPONENTS,
              validation_seeds=range(100, 103), test_seeds=range(10), progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """C3 for one decode scheme: ``(validation, test, tests)``.

    ``validation``: :func:`gap_table` of every PCA size on the validation split
    (``validation_seeds``; no-PCA rows are not needed for the choice and left out); ``test``: the gaps on the test set (``test_seeds``) of no PCA
    and of the size each network chose on validation; ``tests``: one row per network with
    :func:`welch_gap_test`'s fields.
    """
    validation = gap_table(config, components, networks, validation_seeds, "val", progress=progress)
    chosen = {network: choose_size(validation, network) for network in networks}
    test = pd.concat([gap_table(config, (chosen[network], None), (network,), test_seeds, "test", progress=False)
                      for network in networks], ignore_index=True)
    tests = pd.DataFrame([{"network": network, **welch_gap_test(test, network, chosen[network])}
                          for network in networks])
    return validation, test, tests
