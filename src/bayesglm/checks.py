r"""Model checks for binomial GLMs: deviance residuals and the total deviance.

For a count :math:`y_i` out of :math:`N_i` trials with fitted probability
:math:`p_i`, the deviance residual is

.. math::

    r_i = \mathrm{sign}(y_i - N_i p_i)\,
    \sqrt{2\Big[y_i \log\frac{y_i}{N_i p_i}
    + (N_i - y_i) \log\frac{N_i - y_i}{N_i (1 - p_i)}\Big]},

with :math:`0 \log 0 = 0`. Its square is county :math:`i`'s share of the
deviance :math:`D = 2[\ell_{\text{saturated}} - \ell_{\text{model}}]`, where the
saturated model fits :math:`\hat p_i = y_i / N_i` (McCullagh & Nelder 1989, sec. 2.4).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["deviance_residuals", "total_deviance"]


def _check(y, N, p) -> tuple[Tensor, Tensor, Tensor]:
    for name, value in (("y", y), ("N", N), ("p", p)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    y, N, p = y.to(torch.float64), N.to(torch.float64), p.to(torch.float64)
    try:
        shape = torch.broadcast_shapes(y.shape, N.shape, p.shape)
    except RuntimeError:
        raise ValueError(
            f"y, N and p must broadcast together (e.g. y and N of shape (num_counties,), p of shape "
            f"(*batch, num_counties)); got {tuple(y.shape)}, {tuple(N.shape)} and {tuple(p.shape)}"
        ) from None
    if not (torch.isfinite(y).all() and torch.isfinite(N).all()):
        raise ValueError("y and N must be finite counts; found NaN or inf")
    if (y < 0).any() or (N < 0).any():
        raise ValueError("counts must be non-negative; found a negative y or N")
    if (y > N).any():
        raise ValueError("y must not exceed N (successes out of trials)")
    inside = (p > 0) & (p < 1)  # False for NaN too
    if not inside.all():
        bad = p[~inside][0].item()
        raise ValueError(
            f"p must be a probability strictly between 0 and 1 (e.g. sigmoid of the fitted logits); found {bad}"
        )
    y, N, p = (value.expand(shape) for value in (y, N, p))
    return y, N, p


def deviance_residuals(
    y: Float[Tensor, "*batch num_counties"],
    N: Float[Tensor, "*batch num_counties"],
    p: Float[Tensor, "*batch num_counties"],
) -> Float[Tensor, "*batch num_counties"]:
    r"""Binomial deviance residuals :math:`r_i` (see the module docstring), elementwise.

    ``y``, ``N`` and ``p`` broadcast together, so one call handles a batch of
    fitted probabilities (e.g. one row per posterior draw). Finite at
    :math:`y_i = 0` and :math:`y_i = N_i` (where one of the two logs drops
    out); 0 for counties with :math:`N_i = 0`.
    """
    y, N, p = _check(y, N, p)
    failures = N - y
    has_trials = N > 0
    # The ratios y / (N p) and (N - y) / (N (1 - p)); set to 1 where N = 0 (then y = 0 too).
    ratio_success = torch.where(has_trials, y / (N * p), 1.0)
    ratio_failure = torch.where(has_trials, failures / (N * (1 - p)), 1.0)
    half_deviance = torch.xlogy(y, ratio_success) + torch.xlogy(failures, ratio_failure)
    return torch.sign(y - N * p) * torch.sqrt(2 * half_deviance.clamp_min(0))


def total_deviance(
    y: Float[Tensor, "*batch num_counties"],
    N: Float[Tensor, "*batch num_counties"],
    p: Float[Tensor, "*batch num_counties"],
) -> Float[Tensor, "*batch"]:
    r"""Deviance :math:`D = \sum_i r_i^2 = 2[\ell_{\text{saturated}} - \ell_{\text{model}}]`, summed over the last axis."""
    return (deviance_residuals(y, N, p) ** 2).sum(-1)
