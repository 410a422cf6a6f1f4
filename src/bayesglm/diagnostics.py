"""Convergence diagnostics over several chains: split R-hat and effective sample size.

Both follow Gelman et al., *Bayesian Data Analysis* (3rd ed., sec. 11.4-11.5)
as implemented in Stan: each chain is split in half, so that a trend within a
chain shows up as disagreement between halves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

__all__ = ["split_rhat", "effective_sample_size", "summarize_draws"]


def _as_chains(draws: Float[Tensor, "num_chains num_draws *params"] | np.ndarray) -> np.ndarray:
    arr = draws.detach().cpu().double().numpy() if isinstance(draws, Tensor) else np.asarray(draws, float)
    if arr.ndim < 2:
        raise ValueError(f"draws must have shape (num_chains, num_draws, ...); got shape {arr.shape}")
    if arr.shape[1] < 4:
        raise ValueError(f"need at least 4 draws per chain for split diagnostics; got {arr.shape[1]}")
    half = arr.shape[1] // 2
    # (2 * chains, half, ...): first and second halves of every chain (the middle draw of an odd length is dropped)
    return np.concatenate([arr[:, :half], arr[:, arr.shape[1] - half:]], axis=0)


def split_rhat(draws: Float[Tensor, "num_chains num_draws *params"]) -> np.ndarray:
    r"""Split :math:`\hat R` per parameter: :math:`\sqrt{\hat V / W}` with
    :math:`\hat V = \frac{n-1}{n} W + \frac{1}{n} B` over the split chains.

    Values near 1 (below 1.01 is the usual bar) mean the chains agree.
    """
    chains = _as_chains(draws)
    n = chains.shape[1]
    within = chains.var(axis=1, ddof=1).mean(axis=0)
    between = n * chains.mean(axis=1).var(axis=0, ddof=1)
    pooled = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(pooled / within)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Autocovariance along axis 1 by FFT, for every chain and parameter."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 2 ** int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :n] / n


def effective_sample_size(draws: Float[Tensor, "num_chains num_draws *params"]) -> np.ndarray:
    r"""Effective sample size per parameter, :math:`M n / \hat\tau`.

    :math:`\hat\tau = -1 + 2\sum_t \hat\rho_t` with the autocorrelations
    :math:`\hat\rho_t = 1 - (W - \bar\gamma_t)/\hat V` combined over split chains,
    summed in pairs while positive and made monotone (Geyer's initial monotone
    sequence).
    """
    chains = _as_chains(draws)
    m, n = chains.shape[:2]
    acov = _autocovariance(chains)
    within = acov[:, 0].mean(axis=0) * n / (n - 1)
    between = n * chains.mean(axis=1).var(axis=0, ddof=1)
    pooled = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within - acov.mean(axis=0)) / pooled  # (n, *params)
    rho[0] = 1.0
    num_pairs = n // 2
    pairs = rho[: 2 * num_pairs].reshape(num_pairs, 2, *rho.shape[1:]).sum(axis=1)
    positive = np.cumprod(pairs > 0, axis=0).astype(bool)  # stop at the first non-positive pair
    monotone = np.minimum.accumulate(np.where(positive, pairs, np.inf), axis=0)
    tau = -1.0 + 2.0 * np.where(positive, monotone, 0.0).sum(axis=0)
    tau = np.maximum(tau, 1.0 / np.log10(m * n))  # Stan's cap for antithetic chains
    ess = m * n / tau
    return np.where(np.isfinite(ess), ess, np.nan)


def summarize_draws(
    draws: Float[Tensor, "num_chains num_draws num_params"],
    names: list[str] | None = None,
    *,
    interval: float = 0.94,
    decimals: int = 3,
) -> pd.DataFrame:
    """A table per parameter: mean, sd, central interval, split R-hat and ESS.

    Rounded to ``decimals`` places (ESS to integers) so that it prints the same
    from run to run.
    """
    _as_chains(draws)  # validates the shape
    flat = draws.detach().cpu().double().numpy() if isinstance(draws, Tensor) else np.asarray(draws, float)
    flat = flat.reshape(flat.shape[0] * flat.shape[1], -1)
    num_params = flat.shape[1]
    names = list(names) if names is not None else [f"param[{j}]" for j in range(num_params)]
    if len(names) != num_params:
        raise ValueError(f"names has {len(names)} entries but draws have {num_params} parameters")
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    pct = f"{round(100 * interval)}%"
    table = pd.DataFrame(
        {
            "mean": flat.mean(axis=0),
            "sd": flat.std(axis=0, ddof=1),
            f"{pct} lower": np.quantile(flat, lo, axis=0),
            f"{pct} upper": np.quantile(flat, hi, axis=0),
            "r_hat": split_rhat(draws).reshape(-1),
            "ess": effective_sample_size(draws).reshape(-1),
        },
        index=pd.Index(names, name="parameter"),
    )
    table = table.round(decimals)
    table["ess"] = table["ess"].round(0).astype(int)
    return table
