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
from ..results import record_claim
from . import mnist
from .verdicts import VERDICT_RULE, verdict as scheme_verdict

COMPONENTS = (16, 32, 64, 128, 256)
"""PCA sizes the validation step chooses from."""
P_MAX = 0.01
"""C3's significance level: the one-sided Welch p-value must be below it."""
NETWORKS = {scheme: ("HWA", "PTQ expert") if scheme == "offset/digital" else ("HWA",) for scheme in mnist.SCHEMES}
"""Networks C3 evaluates per decode scheme: HWA everywhere, expert PTQ (a contrast) under offset/digital only."""
VALIDATION_SEEDS, TEST_SEEDS = range(100, 103), range(10)
"""Device seeds of the choice on the validation split and of the test: distinct programmed instances."""


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
            "ci95_pca": mnist.ci95(with_pca), "ci95_no_pca": mnist.ci95(without),
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


CRITERION = (f"{VERDICT_RULE}. The criterion, per decode scheme: PCA size ({min(COMPONENTS)}-{max(COMPONENTS)}) chosen on the validation split "
             f"(last {mnist.VALIDATION:,} training images, {len(VALIDATION_SEEDS)} device seeds "
             f"{VALIDATION_SEEDS[0]}-{VALIDATION_SEEDS[-1]}) as the smallest software-hardware gap of the hardware-aware "
             f"trained network; on the 10,000 test images its gap is smaller than without PCA by a one-sided Welch t-test "
             f"over {len(TEST_SEEDS)} device seeds, p < {P_MAX}; "
             "expert PTQ (offset/digital) is a contrast only")
"""C3's criterion in one line (stated in notebook 03 before the numbers)."""


def check_c3(tests: pd.DataFrame) -> tuple[dict, str]:
    """Judge C3 and record it (:func:`imclib.results.record_claim`): ``(by_scheme, verdict)``.

    ``tests``: the ``tests`` of :func:`pca_study` of every scheme, with a ``scheme`` column;
    a scheme passes if its HWA row has ``p_value < P_MAX``. The expert-PTQ row (a contrast)
    is recorded, not judged.
    """
    hwa = tests[tests.network == "HWA"].set_index("scheme")
    by_scheme = {scheme: bool(row.p_value < P_MAX) for scheme, row in hwa.iterrows()}
    verdict = scheme_verdict(by_scheme)
    ptq = tests[tests.network == "PTQ expert"].iloc[0]
    measured = {"HWA_size": {s: int(r["size"]) for s, r in hwa.iterrows()},
                "HWA_gap_no_pca": {s: round(r.gap_no_pca, 4) for s, r in hwa.iterrows()},
                "HWA_gap_pca": {s: round(r.gap_pca, 4) for s, r in hwa.iterrows()},
                "PTQ_expert_size": int(ptq["size"]), "PTQ_expert_gap_no_pca": round(ptq.gap_no_pca, 4),
                "PTQ_expert_gap_pca": round(ptq.gap_pca, 4), "PTQ_expert_p_value": float(f"{ptq.p_value:.3g}"),
                "validation": mnist.SPLIT}
    statistics = {"n_seeds": {s: int(r.n_seeds) for s, r in hwa.iterrows()},
                  "p_value": {s: float(f"{r.p_value:.3g}") for s, r in hwa.iterrows()},
                  "ci95": {s: {"gap_no_pca": [round(v, 4) for v in r.ci95_no_pca],
                               "gap_pca": [round(v, 4) for v in r.ci95_pca]} for s, r in hwa.iterrows()}}
    record_claim("C3", "PCA narrows the software-hardware gap", measured, passed=verdict == "reproduced", paper={},
                 verdict=verdict, criterion=CRITERION, by_scheme=by_scheme, statistics=statistics)
    return by_scheme, verdict


def c3_findings(tests: pd.DataFrame, test: pd.DataFrame, by_scheme: dict, verdict: str) -> str:
    """03's "What we found" paragraph (markdown), every number from the arguments: the
    ``tests`` and ``test`` tables of :func:`pca_study` (all schemes, ``scheme`` column) and
    :func:`check_c3`'s result."""
    software = test.groupby(["scheme", "network", "pca"]).software.first().unstack("pca")

    def line(row):
        soft = software.loc[(row.scheme, row.network)]
        return (f"* **{row.scheme}, {row.network}**: chosen size {row['size']} on validation; test gap "
                f"{row.gap_pca * 100:.2f} points ({'narrower' if row.difference < 0 else 'wider'} than without PCA; "
                f"95 % CI {row.ci95_pca[0] * 100:.2f} to {row.ci95_pca[1] * 100:.2f}) vs {row.gap_no_pca * 100:.2f} points "
                f"without PCA (CI {row.ci95_no_pca[0] * 100:.2f} to {row.ci95_no_pca[1] * 100:.2f}); one-sided Welch "
                f"p = {row.p_value:.2g} over {row.n_seeds} device seeds (software {soft[row['size']]:.2%} at "
                f"{row['size']} components, {soft['none']:.2%} without PCA).")

    return ("Under the criterion stated above (size chosen on the validation split, one-sided Welch t-test on the test "
            f"set, p < {P_MAX}), per decode scheme:\n\n" + "\n".join(line(row) for _, row in tests.iterrows()) +
            f"\n\nVerdict on C3: **{verdict}** (the gap of the hardware-aware trained network narrows significantly "
            f"under {', '.join(s for s, ok in by_scheme.items() if ok) or 'no scheme'}; not under "
            f"{', '.join(s for s, ok in by_scheme.items() if not ok) or 'any other scheme'}). The expert-PTQ row is a "
            "contrast: it does not enter the verdict. Each gap is measured against its own size's software accuracy, "
            "listed in each line.")
