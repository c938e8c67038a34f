"""Study 03: PCA as a digital front end (claim C3).

The accuracy tables of every PCA size (:func:`imclib.experiments.mnist.accuracy_table`:
software, PTQ with the calibrated map, PTQ with the naive map at a calibrated clipping
percentile, QAT; converter ranges calibrated on training images) are cached and shipped
like study 02's (:func:`imclib.experiments.mnist.cached_table`), so that re-running the
notebook does not redo the hardware evaluations.
"""

from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from ..config import CrossbarConfig
from . import mnist


def pca_study(config: CrossbarConfig, components=(16, 32, 64, 128, 256, None), seeds=range(5)) -> pd.DataFrame:
    """Accuracy tables for each PCA size (None: raw pixels), with the arrays each needs
    (column ``tiles``)."""
    frames = [mnist.cached_table({"study": "pca-accuracy", "config": repr(config), "seeds": list(seeds), "pca": n},
                                 lambda n=n: mnist.accuracy_table(config, seeds, n)).assign(tiles=mnist.tile_count(n, config))
              for n in tqdm(components, desc="PCA sizes")]
    return pd.concat(frames, ignore_index=True)
