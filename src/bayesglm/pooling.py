r"""Full, no and partial pooling for a Gaussian linear regression on grouped data.

Observation :math:`i = 0, \dots, n-1` belongs to group :math:`g_i \in \{0, \dots, J-1\}`
and has a response :math:`y_i` and covariates :math:`x_i \in \R^k` (usually
:math:`k = 1`). Three ways to fit a straight line per group:

* **full pooling** (:func:`full_pooling`): groups are ignored,
  :math:`y_i = \alpha + x_i^\top \beta + \varepsilon_i`;
* **no pooling** (:func:`no_pooling`): every group gets its own intercept (and,
  optionally, its own slopes), fitted as if the groups had nothing in common,
  :math:`y_i = \alpha_{g_i} + x_i^\top \beta_{(g_i)} + \varepsilon_i`;
* **partial pooling** (:class:`MultilevelRegression`): the group intercepts are
  themselves drawn from a population, :math:`\alpha_j \sim N(\mu_\alpha, \tau_\alpha^2)`,
  whose mean and spread are learned from the data.

In all three, :math:`\varepsilon_i \sim N(0, \sigma^2)` with one noise SD for all groups.

The full- and no-pooling fits are Bayesian with the flat prior
:math:`p(\text{coefficients}, \sigma^2) \propto \sigma^{-2}`. Their posterior is
known in closed form and sampled *exactly* (independent draws, no Markov chain):
:math:`\sigma^2 \mid y = \mathrm{RSS} / \chi^2_{n - d}` and the coefficients given
:math:`\sigma^2` are normal around the least-squares estimate with covariance
:math:`\sigma^2 (M^\top M)^{-1}` (:math:`M` the design, :math:`d` its number of
columns). So the posterior mean is the least-squares estimate and the central
posterior interval is the classical :math:`t` interval with :math:`n - d` degrees of freedom.

Every Gaussian draw goes through :func:`bayesglm.gaussian.sample_gaussian_information`,
batched over groups and chains; no Python loop runs over groups, observations or chains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch
from fastprogress.fastprogress import progress_bar
from jaxtyping import Float, Int
from torch import Tensor

from .gaussian import sample_gaussian_information
from .random import standard_gamma

__all__ = [
    "GroupedData",
    "PooledFit",
    "MultilevelRegression",
    "full_pooling",
    "no_pooling",
    "simulate_grouped_data",
]

DTYPE = torch.float64


# ----------------------------------------------------------------------------- input checks


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_positive(value, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        expected = "a finite number > 0" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return float(value)


def _check_normal_prior(value, name: str) -> tuple[float, float]:
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    if ok:
        mean, sd = value
        ok = all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in value) and sd > 0
    if not ok:
        raise ValueError(f"{name} must be a pair (mean, sd) of finite numbers with sd > 0; got {value!r}")
    return float(mean), float(sd)


def _check_xy(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Float64 copies of x as (n, k) and y as (n,), checked for shape and finiteness."""
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (num_obs,); got {tuple(y.shape)}")
    if x.ndim not in (1, 2):
        raise ValueError(f"x must have shape (num_obs,) or (num_obs, num_covariates); got {tuple(x.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of observations; got {x.shape[0]} and {y.shape[0]}")
    if y.shape[0] == 0:
        raise ValueError("no observations: x and y are empty")
    x2 = (x[:, None] if x.ndim == 1 else x).to(DTYPE)
    y = y.to(DTYPE)
    if not torch.isfinite(x2).all():
        raise ValueError("x has NaN or inf entries; drop or impute those observations first")
    if not torch.isfinite(y).all():
        raise ValueError("y has NaN or inf entries; drop or impute those observations first")
    return x2, y


def _check_groups(g: Tensor, num_obs: int, num_groups: int) -> Tensor:
    if not isinstance(g, Tensor):
        raise TypeError(f"g must be a torch.Tensor of group indices; got {type(g).__name__}")
    if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
        raise TypeError(f"g must hold integer group indices (e.g. torch.long); got dtype {g.dtype}")
    if g.ndim != 1 or g.shape[0] != num_obs:
        raise ValueError(f"g must have shape (num_obs,) = ({num_obs},) like y; got {tuple(g.shape)}")
    g = g.long()
    bad = (g < 0) | (g >= num_groups)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"group index out of range: g[{i}] = {int(g[i])}, but groups are numbered 0 .. {num_groups - 1} "
            f"(num_groups = {num_groups})"
        )
    return g


def _design(x2: Tensor) -> Tensor:
    """The design ``[1, x]``: an intercept column, then the covariates."""
    return torch.cat([torch.ones_like(x2[:, :1]), x2], dim=1)


def _group_statistics(g: Tensor, M: Tensor, y: Tensor, num_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per group: size n_j, cross-products G_j = M_j^T M_j and h_j = M_j^T y_j (one scatter-add each)."""
    d = M.shape[1]
    counts = torch.bincount(g, minlength=num_groups).to(DTYPE)
    G = torch.zeros(num_groups, d, d, dtype=DTYPE).index_add_(0, g, M[:, :, None] * M[:, None, :])
    h = torch.zeros(num_groups, d, dtype=DTYPE).index_add_(0, g, M * y[:, None])
    return counts, G, h


def _inverse_gamma(shape: Tensor, scale: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Draws of :math:`\mathrm{IG}(a, b)` (density :math:`\propto v^{-a-1} e^{-b/v}`) as :math:`b / \mathrm{Ga}(a, 1)`."""
    shape, scale = torch.broadcast_tensors(torch.as_tensor(shape, dtype=DTYPE), torch.as_tensor(scale, dtype=DTYPE))
    return scale / standard_gamma(shape.contiguous(), generator=generator)


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")


# ----------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class GroupedData:
    """Simulated grouped data and the truth behind it.

    ``g`` (n,) long group index, ``x`` (n,) covariate, ``y`` (n,) response,
    ``sizes`` (J,) observations per group, ``truth`` a dict with ``alpha`` (J,),
    ``beta`` (scalar, or (J,) with varying slopes), ``mu_alpha``, ``tau_alpha``,
    ``sigma`` (and ``mu_beta``, ``tau_beta`` with varying slopes), as 0-d tensors.
    """

    g: Int[Tensor, " num_obs"]
    x: Float[Tensor, " num_obs"]
    y: Float[Tensor, " num_obs"]
    sizes: Int[Tensor, " num_groups"]
    truth: dict[str, Tensor]

    @property
    def num_groups(self) -> int:
        return int(self.sizes.shape[0])


def simulate_grouped_data(
    num_groups: int = 60,
    *,
    group_sizes: Int[Tensor, " num_groups"] | None = None,
    min_size: int = 1,
    max_size: int = 300,
    mu_alpha: float = 0.0,
    tau_alpha: float = 1.0,
    beta: float = 0.5,
    sigma: float = 2.0,
    varying_slopes: bool = False,
    tau_beta: float = 0.3,
    alpha: Float[Tensor, " num_groups"] | None = None,
    generator: torch.Generator | None = None,
) -> GroupedData:
    r"""Grouped data from the multilevel model, with groups of very different sizes.

    Group sizes are log-uniform between ``min_size`` and ``max_size`` (so many small
    groups and a few large ones) unless ``group_sizes`` gives them (zeros allowed).
    Then :math:`\alpha_j \sim N(\mu_\alpha, \tau_\alpha^2)` (or the given ``alpha``),
    with varying slopes :math:`\beta_j \sim N(\beta, \tau_\beta^2)` (else :math:`\beta_j = \beta`),
    :math:`x_i \sim N(0, 1)` and :math:`y_i = \alpha_{g_i} + \beta_{g_i} x_i + \varepsilon_i`,
    :math:`\varepsilon_i \sim N(0, \sigma^2)`. Observations are ordered by group.
    """
    _check_generator(generator)
    for name, value in (("tau_alpha", tau_alpha), ("sigma", sigma), ("tau_beta", tau_beta)):
        _check_positive(value, name)
    for name, value in (("mu_alpha", mu_alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}")
    if group_sizes is None:
        num_groups = _check_count(num_groups, "num_groups")
        min_size = _check_count(min_size, "min_size")
        max_size = _check_count(max_size, "max_size", minimum=min_size)
        u = torch.rand(num_groups, dtype=DTYPE, generator=generator)
        log_size = math.log(min_size) + u * (math.log(max_size + 1) - math.log(min_size))
        sizes = log_size.exp().floor().long().clamp(min_size, max_size)
    else:
        if not isinstance(group_sizes, Tensor) or group_sizes.ndim != 1 or group_sizes.dtype.is_floating_point:
            raise ValueError("group_sizes must be a 1-d integer tensor of observations per group")
        if (group_sizes < 0).any() or group_sizes.sum() == 0:
            raise ValueError("group_sizes must be >= 0 with at least one observation in all")
        sizes = group_sizes.long()
        num_groups = int(sizes.shape[0])
    if alpha is None:
        alpha = mu_alpha + tau_alpha * torch.randn(num_groups, dtype=DTYPE, generator=generator)
    else:
        if not isinstance(alpha, Tensor) or alpha.shape != (num_groups,) or not torch.isfinite(alpha).all():
            raise ValueError(f"alpha must be a finite tensor of shape ({num_groups},) (one intercept per group)")
        alpha = alpha.to(DTYPE)
    if varying_slopes:
        slopes = beta + tau_beta * torch.randn(num_groups, dtype=DTYPE, generator=generator)
    else:
        slopes = torch.full((num_groups,), float(beta), dtype=DTYPE)
    g = torch.repeat_interleave(torch.arange(num_groups), sizes)
    n = int(g.shape[0])
    x = torch.randn(n, dtype=DTYPE, generator=generator)
    y = alpha[g] + slopes[g] * x + sigma * torch.randn(n, dtype=DTYPE, generator=generator)
    truth = {
        "alpha": alpha,
        "beta": slopes if varying_slopes else torch.tensor(float(beta), dtype=DTYPE),
        "mu_alpha": torch.tensor(float(mu_alpha), dtype=DTYPE),
        "tau_alpha": torch.tensor(float(tau_alpha), dtype=DTYPE),
        "sigma": torch.tensor(float(sigma), dtype=DTYPE),
    }
    if varying_slopes:
        truth["mu_beta"] = torch.tensor(float(beta), dtype=DTYPE)
        truth["tau_beta"] = torch.tensor(float(tau_beta), dtype=DTYPE)
    return GroupedData(g=g, x=x, y=y, sizes=sizes, truth=truth)


# ----------------------------------------------------------------------------- full and no pooling


@dataclass(frozen=True)
class PooledFit:
    r"""A full- or no-pooling fit: least-squares estimates and exact flat-prior posterior draws.

    ``estimates`` and ``draws`` have the keys ``alpha`` (intercept: scalar, or (J,)
    per group), ``beta`` (slope: scalar or (k,); (J,) or (J, k) with separate slopes)
    and ``sigma`` (noise SD; the estimate is :math:`\sqrt{\mathrm{RSS}/\mathrm{df}}`).
    Draws carry a leading ``num_draws`` axis. ``df`` is :math:`n - d`, the residual
    degrees of freedom.
    """

    estimates: dict[str, Tensor]
    draws: dict[str, Tensor]
    df: int


def _squeeze_k(t: Tensor, squeeze: bool) -> Tensor:
    return t.squeeze(-1) if squeeze else t


def _check_num_draws(num_draws) -> int:
    return _check_count(num_draws, "num_draws")


def full_pooling(
    x: Float[Tensor, "num_obs *num_covariates"],
    y: Float[Tensor, " num_obs"],
    *,
    num_draws: int = 1000,
    generator: torch.Generator | None = None,
) -> PooledFit:
    r"""One line for everybody: :math:`y_i = \alpha + x_i^\top\beta + \varepsilon_i`.

    Least squares with design :math:`M = [1, x]`, plus exact draws from the posterior
    under :math:`p(\alpha, \beta, \sigma^2) \propto \sigma^{-2}`:
    :math:`\sigma^2 = \mathrm{RSS}/\chi^2_{n-d}`, then
    :math:`(\alpha, \beta) \sim N\big((M^\top M)^{-1} M^\top y,\ \sigma^2 (M^\top M)^{-1}\big)`.
    """
    _check_generator(generator)
    num_draws = _check_num_draws(num_draws)
    squeeze = x.ndim == 1 if isinstance(x, Tensor) else False
    x2, y = _check_xy(x, y)
    M = _design(x2)
    n, d = M.shape
    df = n - d
    if df < 1:
        raise ValueError(f"full pooling needs more observations ({n}) than coefficients ({d})")
    gram, rhs = M.T @ M, M.T @ y
    chol, info = torch.linalg.cholesky_ex(gram)
    if info > 0:
        raise ValueError("the columns of [1, x] are collinear (a covariate is constant or a copy of another)")
    coef = torch.cholesky_solve(rhs[:, None], chol).squeeze(-1)
    rss = ((y - M @ coef) ** 2).sum()
    sigma2 = rss / (2.0 * standard_gamma(torch.full((num_draws,), df / 2.0, dtype=DTYPE), generator=generator))
    draws = sample_gaussian_information(
        gram / sigma2[:, None, None], rhs / sigma2[:, None], generator=generator
    )  # (num_draws, d)
    estimates = {"alpha": coef[0], "beta": _squeeze_k(coef[1:], squeeze), "sigma": (rss / df).sqrt()}
    samples = {"alpha": draws[:, 0], "beta": _squeeze_k(draws[:, 1:], squeeze), "sigma": sigma2.sqrt()}
    return PooledFit(estimates=estimates, draws=samples, df=df)


def no_pooling(
    g: Int[Tensor, " num_obs"],
    x: Float[Tensor, "num_obs *num_covariates"],
    y: Float[Tensor, " num_obs"],
    num_groups: int,
    *,
    varying_slopes: bool = False,
    num_draws: int = 1000,
    generator: torch.Generator | None = None,
) -> PooledFit:
    r"""A separate intercept per group (and separate slopes if ``varying_slopes``), one noise SD.

    Least squares with one indicator column per group, and exact draws under the
    flat prior :math:`p(\cdot) \propto \sigma^{-2}`, :math:`\sigma^2 = \mathrm{RSS}/\chi^2_{n-d}`.

    * Common slope (:math:`d = J + k`): the slope comes from the within-group
      deviations :math:`\tilde x_i = x_i - \bar x_{g_i}`, :math:`\tilde y_i = y_i - \bar y_{g_i}`
      (Frisch-Waugh-Lovell), :math:`\beta \mid \sigma^2 \sim N\big((\tilde X^\top \tilde X)^{-1}
      \tilde X^\top \tilde y, \sigma^2 (\tilde X^\top\tilde X)^{-1}\big)`, then
      :math:`\alpha_j \mid \beta, \sigma^2 \sim N(\bar y_j - \bar x_j^\top \beta, \sigma^2 / n_j)`.
    * Separate slopes (:math:`d = J (1 + k)`): :math:`(\alpha_j, \beta_j) \mid \sigma^2 \sim
      N(G_j^{-1} h_j, \sigma^2 G_j^{-1})` with :math:`G_j = M_j^\top M_j`, :math:`h_j = M_j^\top y_j`.

    A group without observations has no no-pooling estimate: it is an error (use
    :class:`MultilevelRegression`, which draws such a group from the population).
    So is a group whose line is not identified (separate slopes with fewer than
    :math:`1 + k` observations or no spread in ``x``).
    """
    _check_generator(generator)
    num_draws = _check_num_draws(num_draws)
    num_groups = _check_count(num_groups, "num_groups")
    squeeze = x.ndim == 1 if isinstance(x, Tensor) else False
    x2, y = _check_xy(x, y)
    g = _check_groups(g, y.shape[0], num_groups)
    M = _design(x2)
    n, d = M.shape
    k = d - 1
    counts, G, h = _group_statistics(g, M, y, num_groups)
    empty = (counts == 0).nonzero().squeeze(-1)
    if empty.numel():
        raise ValueError(
            f"no pooling has no estimate for a group without observations; groups {empty.tolist()[:10]} are empty. "
            "Drop them (renumber the groups) or use MultilevelRegression, which draws them from the population"
        )
    num_coefs = num_groups * d if varying_slopes else num_groups + k
    df = n - num_coefs
    if df < 1:
        raise ValueError(f"no pooling needs more observations ({n}) than coefficients ({num_coefs})")
    eps = 1e-10
    if varying_slopes:
        chol, info = torch.linalg.cholesky_ex(G)
        # Relative pivot check: a group with one observation or constant x has a singular G_j.
        diag = torch.diagonal(G, dim1=-2, dim2=-1)
        tiny = (torch.diagonal(chol, dim1=-2, dim2=-1) ** 2 <= eps * diag.clamp_min(1.0)).any(-1)
        bad = ((info > 0) | tiny).nonzero().squeeze(-1)
        if bad.numel():
            raise ValueError(
                f"separate slopes are not identified in groups {bad.tolist()[:10]} (fewer than {d} observations "
                "or no spread in x); use a common slope or partial pooling"
            )
        coef = torch.cholesky_solve(h[..., None], chol).squeeze(-1)  # (J, d)
        rss = ((y - (M * coef[g]).sum(-1)) ** 2).sum()
        sigma2 = rss / (2.0 * standard_gamma(torch.full((num_draws,), df / 2.0, dtype=DTYPE), generator=generator))
        s2 = sigma2[:, None, None, None]
        draws = sample_gaussian_information(G / s2, h / s2[..., 0], generator=generator)  # (draws, J, d)
        alpha_hat, beta_hat = coef[:, 0], coef[:, 1:]
        alpha_draws, beta_draws = draws[..., 0], draws[..., 1:]
    else:
        xbar = G[:, 0, 1:] / counts[:, None]  # (J, k)
        ybar = h[:, 0] / counts
        xt = x2 - xbar[g]
        yt = y - ybar[g]
        within, within_rhs = xt.T @ xt, xt.T @ yt
        chol, info = torch.linalg.cholesky_ex(within)
        if info > 0 or (torch.diagonal(chol) ** 2 <= eps * torch.diagonal(within).clamp_min(1.0)).any():
            raise ValueError("the slope is not identified: x does not vary within groups (or covariates are collinear)")
        beta_hat = torch.cholesky_solve(within_rhs[:, None], chol).squeeze(-1)  # (k,)
        alpha_hat = ybar - xbar @ beta_hat
        rss = ((yt - xt @ beta_hat) ** 2).sum()
        sigma2 = rss / (2.0 * standard_gamma(torch.full((num_draws,), df / 2.0, dtype=DTYPE), generator=generator))
        beta_draws = sample_gaussian_information(
            within / sigma2[:, None, None], within_rhs / sigma2[:, None], generator=generator
        )  # (draws, k)
        # alpha_j | beta, sigma^2: precision n_j / sigma^2, linear (sum_j y - (sum_j x)^T beta) / sigma^2
        prec = (counts / sigma2[:, None])[..., None, None]  # (draws, J, 1, 1)
        lin = (h[:, 0, None] - G[:, 0, 1:] @ beta_draws.T).T / sigma2[:, None]  # (draws, J)
        alpha_draws = sample_gaussian_information(prec, lin[..., None], generator=generator)[..., 0]
    estimates = {"alpha": alpha_hat, "beta": _squeeze_k(beta_hat, squeeze), "sigma": (rss / df).sqrt()}
    samples = {"alpha": alpha_draws, "beta": _squeeze_k(beta_draws, squeeze), "sigma": sigma2.sqrt()}
    return PooledFit(estimates=estimates, draws=samples, df=df)


# ----------------------------------------------------------------------------- partial pooling


class MultilevelRegression:
    r"""Partial pooling: a Gaussian linear regression whose intercepts (and optionally slopes) vary by group.

    **Model** (observation :math:`i` in group :math:`j = g_i`, covariates :math:`x_i \in \R^k`):

    .. math::

        y_i \sim N(\alpha_j + x_i^\top \beta_j, \sigma^2), \qquad
        \alpha_j \sim N(\mu_\alpha, \tau_\alpha^2) \ \text{independently over } j,

    with a common slope :math:`\beta_j = \beta` (default) or, when ``varying_slopes``,
    :math:`\beta_{jl} \sim N(\mu_{\beta l}, \tau_{\beta l}^2)` independently over groups,
    covariates *and independently of the intercepts* (no intercept-slope correlation).

    **Priors** (conditionally conjugate, so every Gibbs step is an exact draw):

    * :math:`\mu_\alpha \sim N(m_\alpha, s_\alpha^2)` with ``intercept_prior = (m_alpha, s_alpha)``;
    * :math:`\beta` (common) or :math:`\mu_\beta` (varying) :math:`\sim N(m_\beta, s_\beta^2)`
      per covariate, ``slope_prior = (m_beta, s_beta)``;
    * every group SD :math:`\tau \sim \text{half-Cauchy}(0, A_\tau)` (``group_sd_scale``)
      and :math:`\sigma \sim \text{half-Cauchy}(0, A_\sigma)` (``noise_sd_scale``),
      as recommended by Gelman (2006). Each half-Cauchy is written with an auxiliary
      variable (Wand et al. 2011): :math:`\tau^2 \mid a \sim \mathrm{IG}(\tfrac12, 1/a)`,
      :math:`a \sim \mathrm{IG}(\tfrac12, 1/A^2)` gives :math:`\tau \sim \text{half-Cauchy}(0, A)`,
      and both conditionals are inverse-gamma.

    ``group_sd`` or ``noise_sd`` fix :math:`\tau` (all components) or :math:`\sigma` at a
    value instead: ``group_sd`` near 0 forces full pooling, a huge one gives no pooling.

    **Gibbs sweep.** Collect the population means and common slopes in
    :math:`\phi = (\mu, \gamma)`, aligned with the columns of :math:`M = [1, x]`; let
    :math:`Z` be the columns whose coefficients vary by group (:math:`q` of them) with
    deviations :math:`\delta_j = \theta_j - \mu \sim N(0, D)`, :math:`D = \mathrm{diag}(\tau^2)`,
    and :math:`G_j = M_j^\top M_j`, :math:`h_j = M_j^\top y_j` per group.

    1. :math:`\phi \mid \tau, \sigma, y` with the group coefficients integrated out
       (so that :math:`\phi` and :math:`\theta` are drawn jointly and do not slow each
       other down): :math:`y_j \sim N(M_j \phi, \sigma^2 I + Z_j D Z_j^\top)`, whence
       :math:`\phi \sim N(J^{-1} h, J^{-1})` with, by Woodbury and
       :math:`K_j = \sigma^2 D^{-1} + Z_j^\top Z_j`,

       .. math::

           J = S^{-1} + \sigma^{-2} \sum_j \big(G_j - M_j^\top Z_j K_j^{-1} Z_j^\top M_j\big), \quad
           h = S^{-1} m + \sigma^{-2} \sum_j \big(h_j - M_j^\top Z_j K_j^{-1} Z_j^\top y_j\big),

       :math:`S, m` the prior covariance and mean of :math:`\phi`.
    2. :math:`\theta_j \mid \phi, \tau, \sigma, y`, independently over groups:
       precision :math:`Z_j^\top Z_j / \sigma^2 + D^{-1}`, linear term
       :math:`Z_j^\top (y_j - W_j \gamma) / \sigma^2 + D^{-1} \mu` (:math:`W` the common-slope
       columns). A group with no observations is drawn from the population :math:`N(\mu, D)`.
    3. For each varying coefficient :math:`l`: :math:`a_l \mid \tau_l \sim \mathrm{IG}(1, \tau_l^{-2} + A_\tau^{-2})`,
       then :math:`\tau_l^2 \mid \cdot \sim \mathrm{IG}\big(\tfrac{J+1}{2}, \tfrac12 \sum_j (\theta_{jl} - \mu_l)^2 + 1/a_l\big)`.
    4. :math:`b \mid \sigma \sim \mathrm{IG}(1, \sigma^{-2} + A_\sigma^{-2})`, then
       :math:`\sigma^2 \mid \cdot \sim \mathrm{IG}\big(\tfrac{n+1}{2}, \tfrac12 \mathrm{RSS} + 1/b\big)`.

    A sweep runs steps 3 and 4 (given the current coefficients), then 1 and 2, which
    together are one joint draw of all coefficients given :math:`(\tau, \sigma)`. Fixed
    SDs skip their step; with both fixed the draws are independent and exact.
    """

    def __init__(
        self,
        num_groups: int,
        *,
        varying_slopes: bool = False,
        intercept_prior: tuple[float, float] = (0.0, 10.0),
        slope_prior: tuple[float, float] = (0.0, 10.0),
        group_sd_scale: float = 1.0,
        noise_sd_scale: float = 1.0,
        group_sd: float | None = None,
        noise_sd: float | None = None,
    ) -> None:
        self.num_groups = _check_count(num_groups, "num_groups")
        if not isinstance(varying_slopes, bool):
            raise TypeError(f"varying_slopes must be True or False; got {varying_slopes!r}")
        self.varying_slopes = varying_slopes
        self.intercept_prior = _check_normal_prior(intercept_prior, "intercept_prior")
        self.slope_prior = _check_normal_prior(slope_prior, "slope_prior")
        self.group_sd_scale = _check_positive(group_sd_scale, "group_sd_scale")
        self.noise_sd_scale = _check_positive(noise_sd_scale, "noise_sd_scale")
        self.group_sd = _check_positive(group_sd, "group_sd", allow_none=True)
        self.noise_sd = _check_positive(noise_sd, "noise_sd", allow_none=True)

    def __repr__(self) -> str:
        return (
            f"MultilevelRegression(num_groups={self.num_groups}, varying_slopes={self.varying_slopes}, "
            f"intercept_prior={self.intercept_prior}, slope_prior={self.slope_prior}, "
            f"group_sd_scale={self.group_sd_scale}, noise_sd_scale={self.noise_sd_scale}, "
            f"group_sd={self.group_sd}, noise_sd={self.noise_sd})"
        )

    # -- the four Gibbs steps; shapes: C chains, J groups, d = 1 + k columns, q varying columns

    def _update_population(self, G, h, tau2, sigma2, generator):
        r"""Step 1: :math:`\phi = (\mu, \gamma) \mid \tau, \sigma, y`, group coefficients integrated out."""
        q = tau2.shape[-1]
        s2 = sigma2[:, None, None, None]  # (C, 1, 1, 1)
        K = torch.diag_embed(sigma2[:, None] / tau2)[:, None] + G[None, :, :q, :q]  # (C, J, q, q)
        # K^{-1} Z^T [M, y] for every group and chain at once
        rhs = torch.cat([G[:, :q, :], h[:, :q, None]], dim=-1).expand(K.shape[0], -1, -1, -1)  # (C, J, q, d+1)
        solved = torch.cholesky_solve(rhs, torch.linalg.cholesky(K))
        correction = G[None, :, :, :q] @ solved  # (C, J, d, d+1): M^T Z K^{-1} Z^T [M, y]
        precision = ((G[None] - correction[..., :-1]) / s2).sum(1)
        linear = ((h[None] - correction[..., -1]) / s2[..., 0]).sum(1)
        precision = 0.5 * (precision + precision.mT) + torch.diag(1.0 / self._prior_var)
        linear = linear + self._prior_mean / self._prior_var
        return sample_gaussian_information(precision, linear, generator=generator)  # (C, d)

    def _update_groups(self, G, h, phi, tau2, sigma2, generator):
        r"""Step 2: :math:`\theta_j \mid \phi, \tau, \sigma, y` for all groups (a prior draw for empty ones)."""
        q = tau2.shape[-1]
        mu, gamma = phi[:, :q], phi[:, q:]
        s2 = sigma2[:, None, None]
        precision = G[None, :, :q, :q] / s2[..., None] + torch.diag_embed(1.0 / tau2)[:, None]
        data = h[None, :, :q] - (G[None, :, :q, q:] @ gamma[:, None, :, None]).squeeze(-1)
        linear = data / s2 + (mu / tau2)[:, None, :]
        return sample_gaussian_information(precision, linear, generator=generator)  # (C, J, q)

    def _update_group_sd(self, theta, mu, tau2, generator):
        """Step 3: auxiliary a, then tau^2 (inverse-gamma both)."""
        num_groups = theta.shape[1]
        aux = _inverse_gamma(torch.ones_like(tau2), 1.0 / tau2 + self.group_sd_scale**-2, generator)
        ss = ((theta - mu[:, None, :]) ** 2).sum(1)
        return _inverse_gamma(torch.full_like(tau2, (num_groups + 1) / 2), 0.5 * ss + 1.0 / aux, generator)

    def _update_noise_sd(self, residuals, sigma2, generator):
        """Step 4: auxiliary b, then sigma^2 (inverse-gamma both)."""
        num_obs = residuals.shape[-1]
        aux = _inverse_gamma(torch.ones_like(sigma2), 1.0 / sigma2 + self.noise_sd_scale**-2, generator)
        rss = (residuals**2).sum(-1)
        return _inverse_gamma(torch.full_like(sigma2, (num_obs + 1) / 2), 0.5 * rss + 1.0 / aux, generator)

    def gibbs(
        self,
        g: Int[Tensor, " num_obs"],
        x: Float[Tensor, "num_obs *num_covariates"],
        y: Float[Tensor, " num_obs"],
        num_iters: int,
        *,
        num_chains: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> dict[str, Tensor]:
        r"""Run the Gibbs sampler; return the stacked draws, the starting state as draw 0.

        Args:
            g: group of each observation, integers in ``0 .. num_groups - 1`` (groups may be empty).
            x: covariate(s), shape (n,) or (n, k). Centre them (e.g. subtract the mean)
                so that the intercepts are the group means at a typical x.
            y: responses, shape (n,).
            num_iters: number of Gibbs sweeps.
            num_chains: run this many independent chains side by side (a leading chain axis).
            generator: a seeded ``torch.Generator`` for reproducible draws.
            progress: show a progress bar.

        Returns:
            dict with ``alpha`` ([C,] T+1, J), ``beta`` ([C,] T+1[, k]) or with varying slopes
            ([C,] T+1, J[, k]), ``mu_alpha`` and ``tau_alpha`` ([C,] T+1), with varying slopes
            also ``mu_beta`` and ``tau_beta`` ([C,] T+1[, k]), and ``sigma`` ([C,] T+1);
            the ``k`` axis is absent when ``x`` is 1-d. The start: :math:`\sigma` and
            :math:`\tau` (unless fixed) spread around the SD of ``y`` at random per chain
            (a factor :math:`e^{z}`, :math:`z \sim N(0, 0.5^2)`), the coefficients drawn
            from their conditional given those.
        """
        _check_generator(generator)
        num_iters = _check_count(num_iters, "num_iters", minimum=0)
        if num_chains is not None:
            num_chains = _check_count(num_chains, "num_chains")
        squeeze = x.ndim == 1 if isinstance(x, Tensor) else False
        x2, y = _check_xy(x, y)
        g = _check_groups(g, y.shape[0], self.num_groups)
        M = _design(x2)
        n, d = M.shape
        k = d - 1
        q = d if self.varying_slopes else 1
        _, G, h = _group_statistics(g, M, y, self.num_groups)
        (m_a, s_a), (m_b, s_b) = self.intercept_prior, self.slope_prior
        self._prior_mean = torch.tensor([m_a] + [m_b] * k, dtype=DTYPE)
        self._prior_var = torch.tensor([s_a**2] + [s_b**2] * k, dtype=DTYPE)

        C = 1 if num_chains is None else num_chains
        scale = y.std() if n > 1 and y.std() > 0 else torch.tensor(1.0, dtype=DTYPE)

        def spread(shape):
            return scale * torch.exp(0.5 * torch.randn(shape, dtype=DTYPE, generator=generator))

        tau2 = (spread((C, q)) if self.group_sd is None else torch.full((C, q), self.group_sd, dtype=DTYPE)) ** 2
        sigma2 = (spread((C,)) if self.noise_sd is None else torch.full((C,), self.noise_sd, dtype=DTYPE)) ** 2

        def coefficients(tau2, sigma2):
            phi = self._update_population(G, h, tau2, sigma2, generator)
            theta = self._update_groups(G, h, phi, tau2, sigma2, generator)
            return phi, theta

        phi, theta = coefficients(tau2, sigma2)
        trace = {"phi": [phi], "theta": [theta], "tau2": [tau2], "sigma2": [sigma2]}
        iterations = progress_bar(range(num_iters)) if progress else range(num_iters)
        for _ in iterations:
            if self.group_sd is None:
                tau2 = self._update_group_sd(theta, phi[:, :q], tau2, generator)
            if self.noise_sd is None:
                coef = torch.cat([theta, phi[:, None, q:].expand(-1, self.num_groups, -1)], dim=-1)  # (C, J, d)
                residuals = y - (M * coef[:, g]).sum(-1)
                sigma2 = self._update_noise_sd(residuals, sigma2, generator)
            phi, theta = coefficients(tau2, sigma2)
            for key, value in (("phi", phi), ("theta", theta), ("tau2", tau2), ("sigma2", sigma2)):
                trace[key].append(value)

        stacked = {key: torch.stack(values, dim=1) for key, values in trace.items()}  # chains first
        phi, theta = stacked["phi"], stacked["theta"]
        tau = stacked["tau2"].sqrt()
        out = {"alpha": theta[..., 0], "mu_alpha": phi[..., 0], "tau_alpha": tau[..., 0]}
        if self.varying_slopes:
            out["beta"] = _squeeze_k(theta[..., 1:], squeeze)
            out["mu_beta"] = _squeeze_k(phi[..., 1:], squeeze)
            out["tau_beta"] = _squeeze_k(tau[..., 1:], squeeze)
        else:
            out["beta"] = _squeeze_k(phi[..., 1:], squeeze)
        out["sigma"] = stacked["sigma2"].sqrt()
        if num_chains is None:
            out = {key: value[0] for key, value in out.items()}
        return out
