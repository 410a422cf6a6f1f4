"""Pólya-gamma random variables PG(b, c): moments and samplers.

(Skeleton from the foundation commit: sample_pg is replaced by the fast exact
sampler in the Pólya-gamma issue.)
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from .random import standard_gamma

__all__ = ["sample_pg", "sample_pg_naive", "pg_mean", "pg_variance"]


def _check(name: str, value: Tensor, *, nonnegative: bool) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} must be finite; got NaN or inf")
    if nonnegative and (value < 0).any():
        raise ValueError(f"{name} must be >= 0 (the PG shape); got a negative value {value.min().item()}")


def _params(b, c) -> tuple[Tensor, Tensor]:
    b = torch.as_tensor(b)
    c = torch.as_tensor(c)
    dtype = torch.promote_types(b.dtype, c.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    b, c = torch.broadcast_tensors(b.to(dtype), c.to(device=b.device, dtype=dtype))
    _check("b", b, nonnegative=True)
    _check("c", c, nonnegative=False)
    return b, c


def pg_mean(b: Float[Tensor, "..."], c: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    r"""E[ω] for ω ~ PG(b, c): :math:`\frac{b}{2c}\tanh\frac{c}{2}` (b/4 at c = 0)."""
    b, c = _params(b, c)
    c = c.abs()
    small = c < 1e-3
    safe = torch.where(small, torch.ones_like(c), c)
    exact = b / (2 * safe) * torch.tanh(safe / 2)
    series = b * (0.25 - c**2 / 48)
    return torch.where(small, series, exact)


def pg_variance(b: Float[Tensor, "..."], c: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    r"""Var[ω] for ω ~ PG(b, c): :math:`\frac{b}{4c^3}\frac{\sinh c - c}{\cosh^2(c/2)}` (b/24 at c = 0)."""
    b, c = _params(b, c)
    u = c.abs() / 2
    small = u < 1e-2
    safe = torch.where(small, torch.ones_like(u), u)
    exact = b * (torch.tanh(safe) - safe / torch.cosh(safe) ** 2) / (16 * safe**3)
    series = b * (1.0 / 24 - u**2 / 30)
    return torch.where(small, series, exact)


def sample_pg_naive(
    b: Float[Tensor, "..."],
    c: Float[Tensor, "..."],
    trunc: int = 200,
    *,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "..."]:
    r"""PG(b, c) by the truncated series :math:`\frac{1}{2\pi^2}\sum_{k=1}^{K}
    \frac{g_k}{(k-1/2)^2 + c^2/(4\pi^2)}`, :math:`g_k \sim \mathrm{Ga}(b, 1)`.

    Biased low: the dropped terms carry about :math:`b/(2\pi^2 K)` of the mean.
    """
    b, c = _params(b, c)
    k = torch.arange(1, trunc + 1, dtype=b.dtype, device=b.device)
    g = standard_gamma(b.unsqueeze(-1).expand(*b.shape, trunc), generator=generator)
    weights = 1.0 / ((k - 0.5) ** 2 + c.unsqueeze(-1) ** 2 / (4 * math.pi**2))
    return (g * weights).sum(-1) / (2 * math.pi**2)


def sample_pg(
    b: Float[Tensor, "..."], c: Float[Tensor, "..."], *, generator: torch.Generator | None = None
) -> Float[Tensor, "..."]:
    """PG(b, c) draws (placeholder until the fast sampler lands: the naive one)."""
    return sample_pg_naive(b, c, generator=generator)
