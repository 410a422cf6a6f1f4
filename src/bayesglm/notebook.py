"""One call at the top of every notebook, so that stored outputs reproduce."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import torch

__all__ = ["setup"]


def setup(seed: int = 0, *, threads: int = 1) -> torch.Generator:
    """Fix what changes a notebook's printed numbers, and return a seeded generator.

    - torch's thread count (it changes the last bits of Cholesky factors and
      large sums, hence of everything downstream);
    - torch's global seed, for any draw that does not take our generator;
    - pandas' display precision and matplotlib's figure defaults.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 100)
    plt.rcParams.update({"figure.figsize": (8, 4.5), "figure.dpi": 96, "axes.grid": True, "grid.alpha": 0.3})
    return torch.Generator().manual_seed(seed)
