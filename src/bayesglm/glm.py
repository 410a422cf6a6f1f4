r"""The Bayesian binomial GLM and its Pólya-gamma Gibbs sampler.

The model, for counties :math:`i = 1, \dots, n` with covariates :math:`x_i \in \mathbb{R}^p`:

.. math::

    \beta \sim N(\mu, \Sigma), \qquad
    y_i \mid \beta \sim \mathrm{Bin}\big(N_i, \sigma(x_i^\top \beta)\big).

Pólya-gamma augmentation (Polson, Scott & Windle 2013) adds one
:math:`\omega_i \ge 0` per county and makes both conditionals standard:

* :math:`\omega_i \mid \beta \sim \mathrm{PG}(N_i, x_i^\top \beta)`, independently;
* :math:`\beta \mid \omega \sim N(J^{-1} h, J^{-1})` with
  :math:`J = \Sigma^{-1} + X^\top \mathrm{diag}(\omega) X` and
  :math:`h = \Sigma^{-1} \mu + X^\top \kappa`, :math:`\kappa_i = y_i - N_i / 2`.

:class:`BinomialGLM` keeps the homework's methods and runs several chains in
one batched program (no Python loop over counties or chains).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral

import torch
from fastprogress.fastprogress import progress_bar
from jaxtyping import Float
from torch import Tensor

from .gaussian import sample_gaussian_information
from .polyagamma import sample_pg

__all__ = ["BinomialGLM", "binomial_log_likelihood", "check_binomial_data"]

DTYPE = torch.float64

#: A Pólya-gamma sampler, called as ``pg_sampler(b, c, generator=generator)``.
PGSampler = Callable[..., Tensor]


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


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def _check_prior(prior_mean, prior_cov) -> tuple[Tensor, Tensor, Tensor]:
    """Validate (mu, Sigma) and return them in float64 with Sigma's Cholesky factor."""
    for name, value in (("prior_mean", prior_mean), ("prior_cov", prior_cov)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    mu, cov = prior_mean.to(DTYPE), prior_cov.to(DTYPE)
    if mu.ndim != 1 or mu.shape[0] == 0:
        raise ValueError(f"prior_mean must have shape (num_features,); got {tuple(mu.shape)}")
    p = mu.shape[0]
    if cov.shape != (p, p):
        raise ValueError(
            f"prior_cov must have shape (num_features, num_features) = ({p}, {p}) to match prior_mean; "
            f"got {tuple(cov.shape)}"
        )
    if not (torch.isfinite(mu).all() and torch.isfinite(cov).all()):
        raise ValueError("prior_mean and prior_cov must be finite; found NaN or inf")
    asymmetry = (cov - cov.T).abs().max()
    if asymmetry > 1e-10 * cov.abs().max():
        raise ValueError(f"prior_cov must be symmetric; max |Sigma - Sigma^T| = {asymmetry.item():.3g}")
    chol, info = torch.linalg.cholesky_ex(cov)
    if info > 0:
        smallest = torch.linalg.eigvalsh(cov)[0].item()
        raise ValueError(f"prior_cov must be positive definite; its smallest eigenvalue is {smallest:.3g}")
    return mu, cov, chol


class BinomialGLM:
    r"""Bayesian binomial GLM :math:`y_i \sim \mathrm{Bin}(N_i, \sigma(x_i^\top\beta))`,
    :math:`\beta \sim N(\mu, \Sigma)`, sampled by Pólya-gamma Gibbs.

    Args:
        prior_mean: :math:`\mu`, shape (p,).
        prior_cov: :math:`\Sigma`, shape (p, p), symmetric positive definite.
        pg_sampler: the PG(b, c) sampler used by the ω-update, called as
            ``pg_sampler(b, c, generator=generator)``;
            :func:`~bayesglm.polyagamma.sample_pg` by default (pass
            :func:`~bayesglm.polyagamma.sample_pg_naive` to see what the
            truncated series does to the posterior).

    The update methods take a leading batch (e.g. chains) of betas or omegas:
    ``betas`` of shape (*batch, p), ``omegas`` of shape (*batch, n). Draws are
    float64; ``generator`` (keyword) makes them reproducible.
    """

    prior_mean: Float[Tensor, " num_features"]
    prior_cov: Float[Tensor, "num_features num_features"]

    def __init__(
        self,
        prior_mean: Float[Tensor, " num_features"],
        prior_cov: Float[Tensor, "num_features num_features"],
        *,
        pg_sampler: PGSampler = sample_pg,
    ) -> None:
        if not callable(pg_sampler):
            raise TypeError(f"pg_sampler must be a function pg_sampler(b, c, generator=...); got {pg_sampler!r}")
        self.prior_mean, self.prior_cov, self._prior_chol = _check_prior(prior_mean, prior_cov)
        self.pg_sampler = pg_sampler
        # Constant across iterations: Sigma^{-1} and Sigma^{-1} mu.
        self.prior_precision = torch.cholesky_inverse(self._prior_chol)
        self.prior_linear = self.prior_precision @ self.prior_mean

    @property
    def num_features(self) -> int:
        return self.prior_mean.shape[0]

    # ---------------------------------------------------------------- checks
    def _check_data(self, y: Tensor, N: Tensor, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, N, X = check_binomial_data(y, N, X)
        if X.shape[1] != self.num_features:
            raise ValueError(
                f"X has {X.shape[1]} columns but the prior has {self.num_features} features; "
                "prior_mean must have one entry per column of X"
            )
        return y.to(DTYPE), N.to(DTYPE), X.to(DTYPE)

    def _check_weights(self, beta, name: str) -> Tensor:
        if not isinstance(beta, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(beta).__name__}")
        if beta.ndim == 0 or beta.shape[-1] != self.num_features:
            raise ValueError(
                f"{name} must have shape (*batch, num_features) with num_features = {self.num_features}; "
                f"got {tuple(beta.shape)}"
            )
        if not torch.isfinite(beta).all():
            raise ValueError(f"{name} must be finite; found NaN or inf")
        return beta.to(DTYPE)

    def _check_omegas(self, omegas, n: int) -> Tensor:
        if not isinstance(omegas, Tensor):
            raise TypeError(f"omegas must be a torch.Tensor; got {type(omegas).__name__}")
        if omegas.ndim == 0 or omegas.shape[-1] != n:
            raise ValueError(f"omegas must have shape (*batch, num_counties) with num_counties = {n}; got {tuple(omegas.shape)}")
        if not torch.isfinite(omegas).all() or (omegas < 0).any():
            raise ValueError("omegas must be finite and non-negative (Pólya-gamma draws)")
        return omegas.to(DTYPE)

    # ---------------------------------------------------------- the density
    def _log_prior(self, beta: Float[Tensor, "*batch num_features"]) -> Float[Tensor, "*batch"]:
        r""":math:`\log N(\beta; \mu, \Sigma)` with :math:`\Sigma = L L^\top`."""
        centred = (beta - self.prior_mean).unsqueeze(-1)
        white = torch.linalg.solve_triangular(self._prior_chol, centred, upper=False).squeeze(-1)
        log_det = 2 * self._prior_chol.diagonal().log().sum()
        return -0.5 * (white**2).sum(-1) - 0.5 * log_det - 0.5 * self.num_features * math.log(2 * math.pi)

    def log_prob(
        self,
        y: Float[Tensor, " num_counties"],
        N: Float[Tensor, " num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        beta: Float[Tensor, "*batch num_features"],
    ) -> Float[Tensor, "*batch"]:
        r"""Log joint :math:`\log N(\beta; \mu, \Sigma) + \sum_i \log \mathrm{Bin}(y_i; N_i, \sigma(x_i^\top\beta))`."""
        y, N, X = self._check_data(y, N, X)
        beta = self._check_weights(beta, "beta")
        return self._log_prior(beta) + binomial_log_likelihood(y, N, beta @ X.T)

    # ------------------------------------------------------ the conditionals
    def _sample_beta(
        self, X: Tensor, Xt_kappa: Tensor, omegas: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        precision = self.prior_precision + X.T @ (omegas.unsqueeze(-1) * X)  # J = Sigma^-1 + X^T diag(w) X
        linear = (self.prior_linear + Xt_kappa).expand(precision.shape[:-1])  # h = Sigma^-1 mu + X^T kappa
        return sample_gaussian_information(precision, linear, generator=generator)

    def _gibbs_update_beta(
        self,
        y: Float[Tensor, " num_counties"],
        N: Float[Tensor, " num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        omegas: Float[Tensor, "*batch num_counties"],
        *,
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "*batch num_features"]:
        r"""Draw :math:`\beta \mid \omega, y \sim N(J^{-1}h, J^{-1})`, one draw per batch entry of ``omegas``."""
        y, N, X = self._check_data(y, N, X)
        omegas = self._check_omegas(omegas, X.shape[0])
        return self._sample_beta(X, X.T @ (y - N / 2), omegas, generator)

    def _gibbs_update_omegas(
        self,
        N: Float[Tensor, " num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        betas: Float[Tensor, "*batch num_features"],
        *,
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "*batch num_counties"]:
        r"""Draw :math:`\omega_i \mid \beta \sim \mathrm{PG}(N_i, x_i^\top \beta)` for every county and batch entry."""
        _, N, X = self._check_data(N, N, X)
        betas = self._check_weights(betas, "betas")
        return self.pg_sampler(N, betas @ X.T, generator=generator)

    # ------------------------------------------------------------- the chain
    def gibbs(
        self,
        y: Float[Tensor, " num_counties"],
        N: Float[Tensor, " num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        init_beta: Float[Tensor, "*chains num_features"],
        num_iters: int,
        *,
        num_chains: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> dict[str, Tensor]:
        r"""Run the Pólya-gamma Gibbs sampler; all chains advance together.

        Each iteration draws :math:`\omega \mid \beta`, then :math:`\beta \mid \omega`,
        then records the log joint :math:`\log p(y, \beta \mid X)`.

        Args:
            init_beta: the initial weights, shape (p,), or (num_chains, p) for
                one starting point per chain.
            num_iters: number of Gibbs iterations (>= 1).
            num_chains: ``None`` for one chain without a chain axis, else the
                number of chains.
            generator: seeds every draw.
            progress: show a progress bar.

        Returns:
            ``{"betas": ..., "lp": ...}`` with the initial state as draw 0:
            shapes (num_iters + 1, p) and (num_iters + 1,), or
            (num_chains, num_iters + 1, p) and (num_chains, num_iters + 1).
        """
        y, N, X = self._check_data(y, N, X)
        num_iters = _check_count(num_iters, "num_iters")
        chains = 1 if num_chains is None else _check_count(num_chains, "num_chains")
        allowed = [(self.num_features,)] if num_chains is None else [(self.num_features,), (chains, self.num_features)]
        if isinstance(init_beta, Tensor) and tuple(init_beta.shape) not in allowed:
            raise ValueError(f"init_beta must have shape {' or '.join(map(str, allowed))}; got {tuple(init_beta.shape)}")
        beta = self._check_weights(init_beta, "init_beta").expand(chains, self.num_features).clone()

        Xt_kappa = X.T @ (y - N / 2)  # constant across iterations
        betas = beta.new_empty(chains, num_iters + 1, self.num_features)
        lps = beta.new_empty(chains, num_iters + 1)
        betas[:, 0] = beta
        lps[:, 0] = self._log_prior(beta) + binomial_log_likelihood(y, N, beta @ X.T)
        iterations = progress_bar(range(1, num_iters + 1)) if progress else range(1, num_iters + 1)
        for m in iterations:
            omegas = self.pg_sampler(N, beta @ X.T, generator=generator)  # omega | beta
            beta = self._sample_beta(X, Xt_kappa, omegas, generator)  # beta | omega
            betas[:, m] = beta
            lps[:, m] = self._log_prior(beta) + binomial_log_likelihood(y, N, beta @ X.T)
        if num_chains is None:
            return {"betas": betas[0], "lp": lps[0]}
        return {"betas": betas, "lp": lps}
