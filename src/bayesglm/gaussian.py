"""The Gaussian conditional that every Gibbs sampler of this package draws from.

In all our conjugate updates the conditional of a weight vector is Gaussian in
*information form*: :math:`p(\\beta \\mid \\cdot) \\propto
\\exp(-\\tfrac12 \\beta^\\top J \\beta + h^\\top \\beta)`, i.e.
:math:`\\beta \\sim N(J^{-1} h, J^{-1})`. This module draws from it for a whole
batch of (J, h) at once with one batched Cholesky factorization.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["sample_gaussian_information", "gaussian_information_moments"]


def _cholesky(precision: Tensor) -> Tensor:
    chol, info = torch.linalg.cholesky_ex(precision)
    if bool((info > 0).any()):
        raise ValueError(
            "precision matrix is not positive definite (Cholesky failed); check that the "
            "prior covariance is symmetric positive definite and the data have no NaN or inf"
        )
    return chol


def gaussian_information_moments(
    precision: Float[Tensor, "*batch dim dim"], linear: Float[Tensor, "*batch dim"]
) -> tuple[Float[Tensor, "*batch dim"], Float[Tensor, "*batch dim dim"]]:
    """Mean :math:`J^{-1}h` and covariance :math:`J^{-1}` of N in information form."""
    chol = _cholesky(precision)
    mean = torch.cholesky_solve(linear.unsqueeze(-1), chol).squeeze(-1)
    cov = torch.cholesky_inverse(chol)
    return mean, cov


def sample_gaussian_information(
    precision: Float[Tensor, "*batch dim dim"],
    linear: Float[Tensor, "*batch dim"],
    *,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "*batch dim"]:
    r"""One draw of :math:`\beta \sim N(J^{-1} h, J^{-1})` per batch entry.

    With :math:`J = L L^\top`: :math:`\beta = L^{-\top}(L^{-1} h + z)`,
    :math:`z \sim N(0, I)`, since :math:`L^{-\top} L^{-1} h = J^{-1} h` and
    :math:`\mathrm{Cov}(L^{-\top} z) = (L L^\top)^{-1}`.
    """
    chol = _cholesky(precision)
    z = torch.randn(linear.shape, dtype=linear.dtype, device=linear.device, generator=generator)
    whitened = torch.linalg.solve_triangular(chol, linear.unsqueeze(-1), upper=False) + z.unsqueeze(-1)
    return torch.linalg.solve_triangular(chol.mT, whitened, upper=True).squeeze(-1)
