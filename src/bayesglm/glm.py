"""The Bayesian binomial GLM and its Pólya-gamma Gibbs sampler.

(Foundation seed: the shared likelihood and input checks. BinomialGLM lands in
the Pólya-gamma/GLM issue.)
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["binomial_log_likelihood", "check_binomial_data"]


def binomial_log_likelihood(
    y: Float[Tensor, "*batch num_counties"],
    N: Float[Tensor, "*batch num_counties"],
    logits: Float[Tensor, "*batch num_counties"],
) -> Float[Tensor, "*batch"]:
    r"""Sum over counties of :math:`\log\binom{N_i}{y_i} + y_i \eta_i - N_i \log(1 + e^{\eta_i})`.

    Summed over the last axis; counties with :math:`N_i = 0` contribute 0.
    """
    log_choose = torch.lgamma(N + 1) - torch.lgamma(y + 1) - torch.lgamma(N - y + 1)
    return (log_choose + y * logits - N * torch.nn.functional.softplus(logits)).sum(-1)


def check_binomial_data(
    y: Tensor, N: Tensor, X: Tensor, *, batch_ok: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate binomial regression data and return float tensors of X's dtype.

    Requires ``X`` of shape (n, p) with finite entries and ``y``, ``N`` of shape
    (n,) (or (*batch, n) when ``batch_ok``) with 0 <= y <= N, whole numbers.
    """
    for name, value in (("y", y), ("N", N), ("X", X)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if X.ndim != 2:
        raise ValueError(f"X must have shape (num_counties, num_features); got shape {tuple(X.shape)}")
    dtype = X.dtype if X.dtype.is_floating_point else torch.get_default_dtype()
    X, y, N = X.to(dtype), y.to(dtype), N.to(dtype)
    n = X.shape[0]
    for name, value in (("y", y), ("N", N)):
        ok_shape = value.shape[-1:] == (n,) and (batch_ok or value.ndim == 1)
        if value.ndim == 0 or not ok_shape:
            expected = "(*batch, num_counties)" if batch_ok else "(num_counties,)"
            raise ValueError(f"{name} must have shape {expected} with num_counties = {n} (rows of X); got {tuple(value.shape)}")
    if y.shape != N.shape:
        raise ValueError(f"y and N must have the same shape; got {tuple(y.shape)} and {tuple(N.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError("X has NaN or inf entries; impute or drop those counties first")
    if not (torch.isfinite(y).all() and torch.isfinite(N).all()):
        raise ValueError("y and N must be finite counts; found NaN or inf")
    if (y < 0).any() or (N < 0).any():
        raise ValueError("counts must be non-negative; found a negative y or N")
    if (y > N).any():
        i = int((y > N).nonzero()[0, -1])
        raise ValueError(f"y must not exceed N (successes out of trials); county {i} has y > N")
    if ((y != y.round()) | (N != N.round())).any():
        raise ValueError("y and N must be whole numbers (vote counts)")
    return y, N, X
