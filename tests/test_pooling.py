"""Tests for bayesglm.pooling: full, no and partial pooling of a grouped Gaussian regression.

Monte Carlo tolerances are 4 Monte Carlo standard errors (MC SE = posterior SD /
sqrt(effective sample size)) unless a comment says otherwise.
"""

from __future__ import annotations

import math

import pytest
import torch

from bayesglm.diagnostics import effective_sample_size, split_rhat
from bayesglm.pooling import (
    MultilevelRegression,
    _inverse_gamma,
    full_pooling,
    no_pooling,
    simulate_grouped_data,
)

DTYPE = torch.float64


def _mc_se(draws: torch.Tensor) -> torch.Tensor:
    """MC standard error of the posterior mean per parameter; draws (chains, draws, params)."""
    ess = torch.as_tensor(effective_sample_size(draws), dtype=DTYPE)
    return draws.reshape(-1, draws.shape[-1]).std(0) / ess.sqrt()


def _centred_data(generator, sizes, *, tau=1.0, sigma=2.0, beta=0.7):
    """Grouped data whose x sums to zero within every group (so intercepts and slope separate)."""
    data = simulate_grouped_data(group_sizes=sizes, tau_alpha=tau, sigma=sigma, beta=beta, generator=generator)
    J = len(sizes)
    g = data.g
    xbar = torch.zeros(J, dtype=DTYPE).index_add_(0, g, data.x) / sizes.clamp_min(1)
    x = data.x - xbar[g]
    y = data.truth["alpha"][g] + beta * x + sigma * torch.randn(len(g), dtype=DTYPE, generator=generator)
    return g, x, y


# ----------------------------------------------------------------------------- simulation


def test_simulation_has_groups_of_very_different_sizes_and_is_reproducible():
    a = simulate_grouped_data(80, min_size=2, max_size=400, generator=torch.Generator().manual_seed(3))
    b = simulate_grouped_data(80, min_size=2, max_size=400, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.y, b.y) and torch.equal(a.sizes, b.sizes)
    assert a.num_groups == 80 and a.sizes.min() >= 2 and a.sizes.max() <= 400
    assert a.sizes.max() >= 30 * a.sizes.min()  # log-uniform sizes span two orders of magnitude
    assert torch.equal(torch.bincount(a.g, minlength=80), a.sizes)
    assert a.x.shape == a.y.shape == a.g.shape == (int(a.sizes.sum()),)
    assert set(a.truth) == {"alpha", "beta", "mu_alpha", "tau_alpha", "sigma"}


def test_simulation_honours_given_sizes_and_intercepts():
    sizes = torch.tensor([0, 3, 500])
    alpha = torch.tensor([1.0, 2.0, 3.0], dtype=DTYPE)
    d = simulate_grouped_data(group_sizes=sizes, alpha=alpha, sigma=0.1, beta=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(d.sizes, sizes)
    assert torch.equal(d.truth["alpha"], alpha)
    # sample mean of group 2 (500 obs, noise SD 0.1): within 4 SEs of its intercept
    assert abs(d.y[d.g == 2].mean() - 3.0) < 4 * 0.1 / math.sqrt(500)


# ----------------------------------------------------------------------------- full and no pooling


def test_full_and_no_pooling_agree_with_least_squares_and_the_t_posterior(generator):
    data = simulate_grouped_data(12, min_size=3, max_size=40, generator=generator)
    J, n = data.num_groups, len(data.y)
    num_draws = 4000
    # no pooling, common slope: compare with least squares on explicit group indicators
    design = torch.cat([torch.nn.functional.one_hot(data.g, J).to(DTYPE), data.x[:, None]], dim=1)
    coef = torch.linalg.lstsq(design, data.y[:, None]).solution.squeeze(-1)
    fit = no_pooling(data.g, data.x, data.y, J, num_draws=num_draws, generator=generator)
    torch.testing.assert_close(fit.estimates["alpha"], coef[:J])
    torch.testing.assert_close(fit.estimates["beta"], coef[J])
    assert fit.df == n - J - 1
    rss = ((data.y - design @ coef) ** 2).sum()
    torch.testing.assert_close(fit.estimates["sigma"], (rss / fit.df).sqrt())
    # posterior: coefficients ~ multivariate t(df) around LS with scale s^2 (D^T D)^{-1}
    scale = (rss / fit.df * torch.linalg.inv(design.T @ design).diagonal()).sqrt()
    post_sd = scale * math.sqrt(fit.df / (fit.df - 2))
    draws = torch.cat([fit.draws["alpha"], fit.draws["beta"][:, None]], dim=1)
    assert ((draws.mean(0) - coef).abs() < 4 * post_sd / math.sqrt(num_draws)).all()
    # SD of a sample SD ~ sd / sqrt(2 N) (near-normal for these df): 4 SEs
    assert ((draws.std(0) / post_sd - 1).abs() < 4 / math.sqrt(2 * num_draws)).all()
    # sigma^2 = RSS / chi^2_df: E[sigma^2] = RSS / (df - 2), SD = E * sqrt(2 / (df - 4))
    mean_s2 = rss / (fit.df - 2)
    assert abs(fit.draws["sigma"].pow(2).mean() - mean_s2) < 4 * mean_s2 * math.sqrt(2 / (fit.df - 4) / num_draws)

    # full pooling: one intercept and slope
    full = full_pooling(data.x, data.y, num_draws=num_draws, generator=generator)
    design1 = torch.stack([torch.ones(n, dtype=DTYPE), data.x], dim=1)
    coef1 = torch.linalg.lstsq(design1, data.y[:, None]).solution.squeeze(-1)
    torch.testing.assert_close(torch.stack([full.estimates["alpha"], full.estimates["beta"]]), coef1)
    assert full.df == n - 2 and full.draws["alpha"].shape == (num_draws,)


def test_no_pooling_with_separate_slopes_matches_per_group_least_squares(generator):
    data = simulate_grouped_data(6, min_size=4, max_size=30, varying_slopes=True, generator=generator)
    fit = no_pooling(data.g, data.x, data.y, 6, varying_slopes=True, num_draws=10, generator=generator)
    for j in range(6):  # a loop in the test only, to build the reference one group at a time
        mask = data.g == j
        Mj = torch.stack([torch.ones(int(mask.sum()), dtype=DTYPE), data.x[mask]], dim=1)
        cj = torch.linalg.lstsq(Mj, data.y[mask, None]).solution.squeeze(-1)
        torch.testing.assert_close(fit.estimates["alpha"][j], cj[0])
        torch.testing.assert_close(fit.estimates["beta"][j], cj[1])
    assert fit.draws["beta"].shape == (10, 6) and fit.df == len(data.y) - 12


# ----------------------------------------------------------------------------- partial pooling


@pytest.fixture(scope="module")
def recovery():
    gen = torch.Generator().manual_seed(11)
    data = simulate_grouped_data(60, min_size=2, max_size=200, tau_alpha=1.0, sigma=2.0, beta=0.5, generator=gen)
    model = MultilevelRegression(data.num_groups, intercept_prior=(0.0, 10.0), group_sd_scale=2.0, noise_sd_scale=5.0)
    draws = model.gibbs(data.g, data.x, data.y, 1200, num_chains=4, generator=gen, progress=False)
    return data, {key: value[:, 200:] for key, value in draws.items()}


def test_partial_pooling_recovers_group_effects_and_the_group_sd(recovery):
    data, draws = recovery
    alpha = draws["alpha"].reshape(-1, data.num_groups)
    lo, hi = alpha.quantile(0.03, dim=0), alpha.quantile(0.97, dim=0)
    covered = ((lo <= data.truth["alpha"]) & (data.truth["alpha"] <= hi)).sum()
    # 94% intervals: expect 56.4 of 60 covered (binomial SD 1.8); require >= 51 (3 SDs below)
    assert covered >= 51, f"only {int(covered)} of 60 intervals cover the true intercept"
    # scalars: the truth lies in the central 99% interval
    for name in ("tau_alpha", "sigma", "beta", "mu_alpha"):
        flat = draws[name].reshape(-1)
        lo, hi = flat.quantile(0.005), flat.quantile(0.995)
        assert lo <= data.truth[name] <= hi, f"{name}: truth {float(data.truth[name]):.3f} outside [{lo:.3f}, {hi:.3f}]"
    stacked = torch.stack([draws[k] for k in ("tau_alpha", "sigma", "beta", "mu_alpha")], dim=-1)
    assert (split_rhat(stacked) < 1.01).all()
    assert (effective_sample_size(stacked) > 400).all()


def test_small_groups_are_pulled_more_than_large_ones(recovery):
    """Shrinkage factor (partial - population) / (no pooling - population): small groups well below large ones."""
    data, draws = recovery
    nopool = no_pooling(data.g, data.x, data.y, data.num_groups, num_draws=10, generator=torch.Generator().manual_seed(0))
    mu = draws["mu_alpha"].mean()
    partial = draws["alpha"].mean(dim=(0, 1))
    gap = nopool.estimates["alpha"] - mu
    far = gap.abs() > 0.5  # a ratio is only meaningful where the no-pooling estimate is away from mu
    ratio = ((partial - mu) / gap)[far]
    sizes = data.sizes[far]
    # every group moves toward the population mean and none overshoots it (ratio in [0, 1], 0.05 slack for MC error)
    assert (ratio > -0.05).all() and (ratio < 1.05).all()
    # expected factor n tau^2 / (n tau^2 + sigma^2): ~0.2 for n <= 2, ~0.96 for n >= 100
    assert ratio[sizes <= 3].mean() < 0.5 < ratio[sizes >= 100].min()


def test_partial_pooling_equals_the_precision_weighted_average_and_lies_between():
    r"""With tau, sigma fixed and x centred within groups, the posterior is Gaussian and known:

    E[mu | y] = (sum_j v_j ybar_j + m/s^2) / (sum_j v_j + 1/s^2), v_j = 1 / (tau^2 + sigma^2 / n_j),
    E[alpha_j | y] = w_j ybar_j + (1 - w_j) E[mu | y], w_j = (n_j / sigma^2) / (n_j / sigma^2 + 1 / tau^2).

    So the partial-pooling estimate lies exactly between the no-pooling estimate ybar_j and the
    population mean E[mu | y]. It lies between no pooling and *full* pooling (the grand mean,
    which weights groups by size rather than by v_j) for every group except those whose own
    estimate falls between the grand mean and E[mu | y].
    """
    gen = torch.Generator().manual_seed(5)
    sizes = torch.cat([torch.tensor([1, 1, 2, 3, 5, 8, 400, 600]), torch.randint(1, 60, (32,), generator=gen)])
    tau, sigma, prior_sd = 1.0, 2.0, 10.0
    g, x, y = _centred_data(gen, sizes, tau=tau, sigma=sigma)
    J = len(sizes)
    model = MultilevelRegression(J, intercept_prior=(0.0, prior_sd), group_sd=tau, noise_sd=sigma)
    draws = model.gibbs(g, x, y, 1500, num_chains=4, generator=gen, progress=False)  # exact iid draws
    alpha = draws["alpha"]

    n = sizes.to(DTYPE)
    ybar = torch.zeros(J, dtype=DTYPE).index_add_(0, g, y) / n
    v = 1 / (tau**2 + sigma**2 / n)
    mu_hat = (v * ybar).sum() / (v.sum() + prior_sd**-2)
    var_mu = 1 / (v.sum() + prior_sd**-2)
    w = (n / sigma**2) / (n / sigma**2 + 1 / tau**2)
    exact_mean = w * ybar + (1 - w) * mu_hat
    exact_sd = (1 / (n / sigma**2 + 1 / tau**2) + (1 - w) ** 2 * var_mu).sqrt()

    mc_mean = alpha.mean(dim=(0, 1))
    se = exact_sd / math.sqrt(alpha.shape[0] * alpha.shape[1])
    assert ((mc_mean - exact_mean).abs() < 4 * se).all()
    assert ((alpha.reshape(-1, J).std(0) / exact_sd - 1).abs() < 4 / math.sqrt(2 * 6004)).all()
    assert abs(draws["mu_alpha"].mean() - mu_hat) < 4 * math.sqrt(var_mu / 6004)

    nopool = no_pooling(g, x, y, J, num_draws=10, generator=gen).estimates["alpha"]
    torch.testing.assert_close(nopool, ybar)  # with centred x, no pooling is the group mean
    full = full_pooling(x, y, num_draws=10, generator=gen).estimates["alpha"]

    def between(value, a, b, slack):
        return (value >= torch.minimum(a, b) - slack) & (value <= torch.maximum(a, b) + slack)

    assert between(exact_mean, nopool, mu_hat.expand(J), 1e-12).all()
    assert between(mc_mean, nopool, mu_hat.expand(J), 4 * se).all()
    # between no and full pooling: all groups but those whose no- or partial-pooling estimate falls
    # in the gap between the grand mean and mu_hat (there the two anchors disagree)
    in_gap = lambda value: between(value, full.expand(J), mu_hat.expand(J), 0.0)  # noqa: E731
    exempt = in_gap(nopool) | in_gap(exact_mean)
    assert exempt.sum() <= 0.25 * J  # the gap is narrow: mu_hat and the grand mean are close
    assert between(exact_mean, nopool, full.expand(J), 1e-12)[~exempt].all()
    assert between(mc_mean, nopool, full.expand(J), 4 * se)[~exempt].all()


def test_tiny_group_sd_is_full_pooling_and_huge_is_no_pooling():
    gen = torch.Generator().manual_seed(8)
    data = simulate_grouped_data(15, min_size=3, max_size=80, tau_alpha=1.5, generator=gen)
    J = data.num_groups

    full = full_pooling(data.x, data.y, num_draws=10, generator=gen)
    tiny = MultilevelRegression(J, group_sd=1e-4, noise_sd_scale=5.0).gibbs(
        data.g, data.x, data.y, 600, num_chains=4, generator=gen, progress=False
    )
    tiny = {k: v[:, 100:] for k, v in tiny.items()}
    assert (tiny["alpha"] - tiny["mu_alpha"][..., None]).abs().max() < 1e-3  # every group sits on the population
    pars = torch.stack([tiny["mu_alpha"], tiny["beta"]], dim=-1)
    target = torch.stack([full.estimates["alpha"], full.estimates["beta"]])
    # prior N(0, 10^2) on the population mean moves it by ~ sd^2 / 10^2: negligible against the MC SE
    assert ((pars.mean(dim=(0, 1)) - target).abs() < 4 * _mc_se(pars)).all()

    nopool = no_pooling(data.g, data.x, data.y, J, num_draws=10, generator=gen)
    huge = MultilevelRegression(J, group_sd=1e3, noise_sd_scale=5.0, intercept_prior=(0.0, 1e3)).gibbs(
        data.g, data.x, data.y, 600, num_chains=4, generator=gen, progress=False
    )
    huge = {k: v[:, 100:] for k, v in huge.items()}
    pars = torch.cat([huge["alpha"], huge["beta"][..., None]], dim=-1)
    target = torch.cat([nopool.estimates["alpha"], nopool.estimates["beta"][None]])
    assert ((pars.mean(dim=(0, 1)) - target).abs() < 4 * _mc_se(pars)).all()


def test_varying_slopes_recover_slope_spread():
    gen = torch.Generator().manual_seed(21)
    data = simulate_grouped_data(
        40, min_size=5, max_size=150, varying_slopes=True, beta=0.5, tau_beta=0.6, sigma=1.0, generator=gen
    )
    model = MultilevelRegression(40, varying_slopes=True, noise_sd_scale=5.0)
    draws = model.gibbs(data.g, data.x, data.y, 800, num_chains=4, generator=gen, progress=False)
    assert draws["beta"].shape == (4, 801, 40) and draws["tau_beta"].shape == (4, 801)
    draws = {k: v[:, 200:] for k, v in draws.items()}
    for name in ("tau_alpha", "tau_beta", "mu_beta", "sigma"):
        flat = draws[name].reshape(-1)
        assert flat.quantile(0.005) <= data.truth[name] <= flat.quantile(0.995), name
    beta = draws["beta"].reshape(-1, 40)
    covered = ((beta.quantile(0.03, 0) <= data.truth["beta"]) & (data.truth["beta"] <= beta.quantile(0.97, 0))).sum()
    assert covered >= 33  # expect 37.6 of 40 (binomial SD 1.5): 3 SDs below


def test_an_empty_group_is_drawn_from_the_population():
    gen = torch.Generator().manual_seed(2)
    sizes = torch.tensor([20, 0, 35, 50, 10, 0, 40])
    data = simulate_grouped_data(group_sizes=sizes, generator=gen)
    draws = MultilevelRegression(7, noise_sd_scale=5.0).gibbs(
        data.g, data.x, data.y, 1500, num_chains=2, generator=gen, progress=False
    )
    z = ((draws["alpha"][:, 1:, [1, 5]] - draws["mu_alpha"][:, 1:, None]) / draws["tau_alpha"][:, 1:, None])
    # (alpha_empty - mu) / tau is N(0, 1) given mu, tau, at every draw: its mean is 0 and variance 1
    assert z.mean().abs() < 4 / math.sqrt(z.numel())
    assert (z.pow(2).mean() - 1).abs() < 4 * math.sqrt(2 / z.numel())
    with pytest.raises(ValueError, match="without observations; groups \\[1, 5\\]"):
        no_pooling(data.g, data.x, data.y, 7)


def test_half_cauchy_by_auxiliary_inverse_gamma():
    """tau^2 | a ~ IG(1/2, 1/a), a ~ IG(1/2, 1/A^2) gives tau ~ half-Cauchy(0, A): P(tau <= A tan(pi p / 2)) = p."""
    gen = torch.Generator().manual_seed(4)
    A, m = 2.5, 40000
    aux = _inverse_gamma(torch.full((m,), 0.5, dtype=DTYPE), torch.tensor(A**-2, dtype=DTYPE), gen)
    tau = _inverse_gamma(torch.full((m,), 0.5, dtype=DTYPE), 1 / aux, gen).sqrt()
    for p in (0.1, 0.25, 0.5, 0.75, 0.9):
        frac = (tau <= A * math.tan(math.pi * p / 2)).to(DTYPE).mean()
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / m)


@pytest.mark.parametrize("which", ["group", "noise"])
def test_sd_updates_leave_their_exact_conditional_invariant(which):
    r"""Steps 3 and 4 (auxiliary variable, then variance) target p(sd | rest), known up to a constant:

    p(s | SS) \propto (1 + s^2 / A^2)^{-1} s^{-m} exp(-SS / (2 s^2)) for m deviations with sum of squares SS.
    Many independent chains of the two-step kernel are run from s = 1; their end states are compared
    with this density's CDF (numerical integration) at its quartiles: binomial SE, 4 SEs.
    """
    gen = torch.Generator().manual_seed(9)
    chains, steps, A, m = 20000, 60, 1.5, 5
    deviations = torch.tensor([0.3, -1.2, 0.8, 2.0, -0.4], dtype=DTYPE)  # m = 5 values
    ss = float((deviations**2).sum())
    model = MultilevelRegression(m, group_sd_scale=A, noise_sd_scale=A)
    var = torch.ones(chains, 1, dtype=DTYPE) if which == "group" else torch.ones(chains, dtype=DTYPE)
    for _ in range(steps):
        if which == "group":
            theta = deviations[None, :, None].expand(chains, m, 1)
            var = model._update_group_sd(theta, torch.zeros(chains, 1, dtype=DTYPE), var, gen)
        else:
            var = model._update_noise_sd(deviations.expand(chains, m), var, gen)
    sd = var.reshape(-1).sqrt()
    grid = torch.linspace(1e-3, 60.0, 400001, dtype=DTYPE)
    log_density = -torch.log1p(grid**2 / A**2) - m * grid.log() - ss / (2 * grid**2)
    cdf = torch.cumsum((log_density - log_density.max()).exp(), 0)
    cdf = cdf / cdf[-1]
    for p in (0.25, 0.5, 0.75):
        q = grid[torch.searchsorted(cdf, torch.tensor(p, dtype=DTYPE))]
        frac = float((sd <= q).to(DTYPE).mean())
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / chains), f"P(sd <= {float(q):.3f}) = {frac:.4f}, not {p}"


def test_chains_shapes_init_and_reproducibility():
    data = simulate_grouped_data(10, generator=torch.Generator().manual_seed(0))
    model = MultilevelRegression(10)
    a = model.gibbs(data.g, data.x, data.y, 5, num_chains=3, generator=torch.Generator().manual_seed(1), progress=False)
    b = model.gibbs(data.g, data.x, data.y, 5, num_chains=3, generator=torch.Generator().manual_seed(1), progress=False)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["alpha"].shape == (3, 6, 10) and a["beta"].shape == (3, 6) and a["sigma"].shape == (3, 6)
    assert not torch.equal(a["sigma"][0, 0], a["sigma"][1, 0])  # chains start apart
    one = model.gibbs(data.g, data.x, data.y, 0, generator=torch.Generator().manual_seed(1), progress=False)
    assert one["alpha"].shape == (1, 10) and one["tau_alpha"].shape == (1,)
    fixed = MultilevelRegression(10, group_sd=0.3).gibbs(data.g, data.x, data.y, 3, progress=False)
    assert torch.allclose(fixed["tau_alpha"], torch.tensor(0.3, dtype=DTYPE))
    x2 = torch.stack([data.x, data.x**2], dim=1)
    two = MultilevelRegression(10, varying_slopes=True).gibbs(data.g, x2, data.y, 2, num_chains=2, progress=False)
    assert two["beta"].shape == (2, 3, 10, 2) and two["mu_beta"].shape == (2, 3, 2)


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_are_refused_with_a_clear_message():
    data = simulate_grouped_data(5, min_size=3, generator=torch.Generator().manual_seed(0))
    g, x, y = data.g, data.x, data.y
    model = MultilevelRegression(5)
    run = lambda *args, **kw: model.gibbs(*args, 2, progress=False, **kw)  # noqa: E731
    bad_g = g.clone()
    bad_g[3] = 5
    with pytest.raises(ValueError, match="out of range.*0 .. 4"):
        run(bad_g, x, y)
    bad_g[3] = -1
    with pytest.raises(ValueError, match="out of range"):
        no_pooling(bad_g, x, y, 5)
    with pytest.raises(TypeError, match="integer group indices"):
        run(g.to(DTYPE), x, y)
    with pytest.raises(ValueError, match="same number of observations"):
        run(g, x[:-1], y)
    with pytest.raises(ValueError, match="like y"):
        run(g[:-1], x, y)
    with pytest.raises(ValueError, match="same number of observations"):
        full_pooling(x, y[1:])
    y_nan = y.clone()
    y_nan[0] = float("nan")
    with pytest.raises(ValueError, match="y has NaN"):
        run(g, x, y_nan)
    x_inf = x.clone()
    x_inf[1] = float("inf")
    with pytest.raises(ValueError, match="x has NaN or inf"):
        no_pooling(g, x_inf, y, 5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        run(g, x.tolist(), y)
    with pytest.raises(ValueError, match="num_groups"):
        MultilevelRegression(0)
    with pytest.raises(ValueError, match="group_sd"):
        MultilevelRegression(5, group_sd=-1.0)
    with pytest.raises(ValueError, match="intercept_prior"):
        MultilevelRegression(5, intercept_prior=(0.0, 0.0))
    with pytest.raises(ValueError, match="num_chains"):
        run(g, x, y, num_chains=0)
    with pytest.raises(TypeError, match="generator"):
        run(g, x, y, generator=0)
    one_obs = torch.tensor([0, 1, 1, 1, 1]), torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 2.5, 4.0, 4.0])
    with pytest.raises(ValueError, match="not identified in groups \\[0\\]"):
        no_pooling(*one_obs, 2, varying_slopes=True)
