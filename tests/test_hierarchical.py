"""The hierarchical binomial GLM: conditionals, limits, recovery, batching, input checks.

Statistical tolerances are multiples of the Monte Carlo standard error (MC SE):
sd / sqrt(number of independent draws), or sd / sqrt(ESS) for correlated chains.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from bayesglm.diagnostics import effective_sample_size
from bayesglm.hierarchical import HierarchicalBinomialGLM
from bayesglm.polyagamma import pg_mean

F64 = torch.float64


def _model(S=3, p=2, nu=0.5, mean=None, cov=None):
    mean = torch.zeros(p, dtype=F64) if mean is None else mean
    cov = torch.eye(p, dtype=F64) if cov is None else cov
    return HierarchicalBinomialGLM(S, mean, cov, nu)


def _simulate(generator, *, S, counties_per_state, p, nu, trials=100, global_beta=None):
    """Covariates, states and counts from the model itself (intercept + standard normal columns)."""
    n = S * counties_per_state
    X = torch.cat([torch.ones(n, 1, dtype=F64), torch.randn(n, p - 1, dtype=F64, generator=generator)], 1)
    s = torch.arange(S).repeat_interleave(counties_per_state)
    if global_beta is None:
        global_beta = 0.5 * torch.randn(p, dtype=F64, generator=generator)
    local = global_beta + nu * torch.randn(S, p, dtype=F64, generator=generator)
    N = torch.full((n,), float(trials), dtype=F64)
    prob = torch.sigmoid((X * local[s]).sum(-1))
    y = torch.binomial(N, prob, generator=generator)
    return s, y, N, X, global_beta, local


def _grid_posterior(y, N, X, prior_mean, prior_cov, size=161, width=7.0):
    """Brute-force posterior mean and covariance of a p = 2 binomial GLM by quadrature.

    The grid is laid out in the whitened coordinates of a Laplace approximation
    (MAP by Newton's method), +-width sds in each direction.
    """
    assert X.shape[1] == 2
    precision = torch.linalg.inv(prior_cov)
    beta = prior_mean.clone()
    for _ in range(100):
        prob = torch.sigmoid(X @ beta)
        grad = X.T @ (y - N * prob) - precision @ (beta - prior_mean)
        hess = -(X.T * (N * prob * (1 - prob))) @ X - precision
        beta = beta - torch.linalg.solve(hess, grad)
    chol = torch.linalg.cholesky(torch.linalg.inv(-hess))
    u = torch.linspace(-width, width, size, dtype=F64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    points = beta + grid @ chol.T
    logits = points @ X.T
    loglik = (y * logits - N * torch.nn.functional.softplus(logits)).sum(-1)
    centred = points - prior_mean
    logprior = -0.5 * ((centred @ precision) * centred).sum(-1)
    weights = torch.softmax(loglik + logprior, 0)
    mean = weights @ points
    cov = ((points - mean).T * weights) @ (points - mean)
    return mean, cov, points, weights


def _mc_se(draws: torch.Tensor) -> torch.Tensor:
    """MC SE of the posterior mean from (chains, draws, params), using the effective sample size."""
    ess = torch.as_tensor(effective_sample_size(draws))
    return draws.reshape(-1, draws.shape[-1]).std(0) / ess.sqrt()


# ---------------------------------------------------------------- conditionals
def test_global_update_matches_closed_form(generator):
    S, p, nu = 4, 3, 0.7
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    A = torch.randn(p, p, dtype=F64, generator=generator)
    Sigma = A @ A.T + torch.eye(p, dtype=F64)
    model = HierarchicalBinomialGLM(S, mu, Sigma, nu)
    local = torch.randn(S, p, dtype=F64, generator=generator)
    M = 40_000
    draws = model._gibbs_update_global_beta(local.expand(M, S, p), generator=generator)
    # closed form: precision Sigma^-1 + S nu^-2 I, mean cov (Sigma^-1 mu + nu^-2 sum_s beta_s)
    cov = torch.linalg.inv(torch.linalg.inv(Sigma) + S / nu**2 * torch.eye(p, dtype=F64))
    mean = cov @ (torch.linalg.solve(Sigma, mu) + local.sum(0) / nu**2)
    sd = cov.diagonal().sqrt()
    assert draws.shape == (M, p)
    assert ((draws.mean(0) - mean).abs() < 5 * sd / math.sqrt(M)).all()  # 5 MC SEs
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / M).sqrt()
    assert ((torch.cov(draws.T) - cov).abs() < 5 * se_cov).all()


def test_local_update_matches_closed_form(generator):
    S, p, nu = 4, 2, 0.8
    model = _model(S=S, p=p, nu=nu)
    # state 0: 3 counties, state 1: 1 county, state 2: none, state 3: 2 counties
    s = torch.tensor([0, 3, 0, 1, 3, 0])
    X = torch.randn(6, p, dtype=F64, generator=generator)
    N = torch.tensor([10.0, 4.0, 7.0, 3.0, 9.0, 5.0], dtype=F64)
    y = torch.tensor([3.0, 4.0, 0.0, 2.0, 5.0, 5.0], dtype=F64)
    omegas = torch.rand(6, dtype=F64, generator=generator) * 2
    offset = torch.randn(6, dtype=F64, generator=generator)
    beta0 = torch.tensor([0.3, -0.6], dtype=F64)
    M = 40_000
    draws = model._gibbs_update_local_betas(
        s, y, N, X, omegas.expand(M, 6), beta0, offset=offset, generator=generator
    )
    assert draws.shape == (M, S, p)
    kappa = y - N / 2
    for state in range(S):  # closed form, one state at a time
        mask = s == state
        Xs, ws = X[mask], omegas[mask]
        J = torch.eye(p, dtype=F64) / nu**2 + (Xs.T * ws) @ Xs
        h = beta0 / nu**2 + Xs.T @ (kappa[mask] - ws * offset[mask])
        cov = torch.linalg.inv(J)
        mean = cov @ h
        sd = cov.diagonal().sqrt()
        d = draws[:, state]
        assert ((d.mean(0) - mean).abs() < 5 * sd / math.sqrt(M)).all(), state  # 5 MC SEs
        se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / M).sqrt()
        assert ((torch.cov(d.T) - cov).abs() < 5 * se_cov).all(), state


def test_state_without_data_is_drawn_from_its_prior(generator):
    S, p, nu = 3, 2, 0.4
    model = _model(S=S, p=p, nu=nu)
    s = torch.tensor([0, 0, 2, 2])  # state 1 has no counties; state 2 has counties but N = 0
    X = torch.randn(4, p, dtype=F64, generator=generator)
    N = torch.tensor([50.0, 60.0, 0.0, 0.0], dtype=F64)
    y = torch.tensor([20.0, 40.0, 0.0, 0.0], dtype=F64)
    beta0 = torch.tensor([1.5, -2.0], dtype=F64)
    M = 40_000
    omegas = model._gibbs_update_omegas(s, N.expand(100, 4), X, beta0.expand(100, S, p), generator=generator)
    assert (omegas[:, 2:] == 0).all()  # PG(0, c) = 0
    draws = model._gibbs_update_local_betas(s, y, N, X, omegas[0].expand(M, 4), beta0, generator=generator)
    for state in (1, 2):
        d = draws[:, state]
        assert ((d.mean(0) - beta0).abs() < 5 * nu / math.sqrt(M)).all()  # 5 MC SEs
        # sample variance of a Gaussian: SE = nu^2 sqrt(2 / M)
        assert ((d.var(0) - nu**2).abs() < 5 * nu**2 * math.sqrt(2 / M)).all()
        assert abs(torch.corrcoef(d.T)[0, 1]) < 5 / math.sqrt(M)


def test_omega_update_has_the_polya_gamma_mean(generator):
    S, p = 2, 2
    model = _model(S=S, p=p)
    s = torch.tensor([0, 1, 1])
    X = torch.tensor([[1.0, 0.5], [1.0, -1.0], [1.0, 2.0]], dtype=F64)
    N = torch.tensor([3.0, 8.0, 0.0], dtype=F64)
    local = torch.tensor([[0.2, 1.0], [-0.5, 0.3]], dtype=F64)
    offset = torch.tensor([0.1, -0.4, 0.0], dtype=F64)
    M = 20_000
    draws = model._gibbs_update_omegas(s, N, X, local.expand(M, S, p), offset=offset, generator=generator)
    psi = torch.tensor([0.2 + 0.5 + 0.1, -0.5 - 0.3 - 0.4, -0.5 + 0.6], dtype=F64)
    expected = pg_mean(N, psi)
    sd = draws.std(0)
    assert (draws[:, 2] == 0).all()
    assert ((draws.mean(0)[:2] - expected[:2]).abs() < 5 * sd[:2] / math.sqrt(M)).all()  # 5 MC SEs


def test_log_prob_matches_scipy(generator):
    S, p, nu = 3, 2, 0.3
    mu = torch.tensor([0.1, -0.2], dtype=F64)
    Sigma = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    model = HierarchicalBinomialGLM(S, mu, Sigma, nu)
    s, y, N, X, beta0, local = _simulate(generator, S=S, counties_per_state=4, p=p, nu=nu)
    offset = torch.randn(len(y), dtype=F64, generator=generator)
    expected = stats.multivariate_normal(mu.numpy(), Sigma.numpy()).logpdf(beta0.numpy())
    expected += stats.norm(beta0.numpy(), nu).logpdf(local.numpy()).sum()
    prob = torch.sigmoid((X * local[s]).sum(-1) + offset).numpy()
    expected += stats.binom(N.numpy(), prob).logpmf(y.numpy()).sum()
    lp = model.log_prob(s, y, N, X, local, beta0, offset=offset)
    assert lp.shape == ()
    assert float(lp) == pytest.approx(expected, rel=1e-10)
    # batched weights broadcast against shared data
    lps = model.log_prob(s, y, N, X, torch.stack([local, local + 1]), beta0)
    assert lps.shape == (2,)
    assert float(lps[0]) == pytest.approx(float(model.log_prob(s, y, N, X, local, beta0)), rel=1e-12)


# ------------------------------------------------------------ the whole sampler
def test_gibbs_output_shapes_and_initial_state(generator):
    S, p = 3, 2
    model = _model(S=S, p=p)
    s, y, N, X, *_ = _simulate(generator, S=S, counties_per_state=3, p=p, nu=0.5)
    init = torch.tensor([0.1, 0.2], dtype=F64)
    out = model.gibbs(s, y, N, X, init, 4, progress=False, generator=generator)
    assert out["global_beta"].shape == (5, p)
    assert out["local_betas"].shape == (5, S, p)
    assert out["lp"].shape == (5,)
    torch.testing.assert_close(out["global_beta"][0], init)
    torch.testing.assert_close(out["local_betas"][0], init.expand(S, p))
    torch.testing.assert_close(out["lp"][0], model.log_prob(s, y, N, X, init.expand(S, p), init))
    torch.testing.assert_close(out["lp"][3], model.log_prob(s, y, N, X, out["local_betas"][3], out["global_beta"][3]))
    T, C = 2, 3
    out = model.gibbs(
        s, y.expand(T, -1), N.expand(T, -1), X, init, 4, num_chains=C, progress=False, generator=generator
    )
    assert out["global_beta"].shape == (T, C, 5, p)
    assert out["local_betas"].shape == (T, C, 5, S, p)
    assert out["lp"].shape == (T, C, 5)


def test_gibbs_is_reproducible_with_a_generator():
    S, p = 3, 2
    model = _model(S=S, p=p)
    s, y, N, X, *_ = _simulate(torch.Generator().manual_seed(1), S=S, counties_per_state=3, p=p, nu=0.5)
    runs = [
        model.gibbs(s, y, N, X, torch.zeros(p), 5, progress=False, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    torch.testing.assert_close(runs[0]["local_betas"], runs[1]["local_betas"], rtol=0, atol=0)


def test_recovers_simulated_state_effects(generator):
    S, p, nu = 5, 3, 0.4
    model = _model(S=S, p=p, nu=nu)
    s, y, N, X, beta0, local = _simulate(generator, S=S, counties_per_state=25, p=p, nu=nu, trials=200)
    out = model.gibbs(s, y, N, X, torch.zeros(p), 300, num_chains=4, progress=False, generator=generator)
    draws = out["local_betas"][:, 100:]  # (chains, draws, S, p)
    mean, sd = draws.mean((0, 1)), draws.std((0, 1))
    # the truth is a draw from the prior, so its posterior z-score is ~ N(0, 1): |z| < 4 for all 15
    assert ((mean - local).abs() < 4 * sd).all()
    # 95% intervals cover the truth for most of the 15 local weights (expected 14.25; P(< 11) ~ 0.2%)
    flat = draws.reshape(-1, S, p)
    lo, hi = flat.quantile(0.025, dim=0), flat.quantile(0.975, dim=0)
    assert int(((lo <= local) & (local <= hi)).sum()) >= 11
    g = out["global_beta"][:, 100:]
    assert ((g.mean((0, 1)) - beta0).abs() < 4 * g.std((0, 1))).all()


def test_tiny_dispersion_gives_the_pooled_posterior(generator):
    """nu -> 0: every beta_s = beta_0 and beta_0 has the posterior of one pooled GLM.

    The centred Gibbs sampler moves beta_0 by about nu / sqrt(S) per sweep, so a
    literally tiny nu (1e-3) would never mix; nu = 0.01 is tiny next to the pooled
    posterior sds here (about 0.1, per state about 0.17: the hierarchical posterior
    differs from the pooled one by O(nu^2 / 0.17^2) ~ 0.3% of a variance), yet the
    chains move a posterior sd in ~200 sweeps. We start 200 chains at independent
    draws of the exact pooled posterior (grid quadrature): a correct sampler keeps
    that distribution, a wrong likelihood term drifts away from it.
    """
    S, p, nu = 3, 2, 0.01
    model = _model(S=S, p=p, nu=nu)
    s, y, N, X, *_ = _simulate(generator, S=S, counties_per_state=10, p=p, nu=0.0, trials=40)
    mean, cov, points, weights = _grid_posterior(y, N, X, torch.zeros(p, dtype=F64), torch.eye(p, dtype=F64))
    C = 200
    init = points[torch.multinomial(weights, C, replacement=True, generator=generator)]
    out = model.gibbs(s, y, N, X, init, 150, num_chains=C, progress=False, generator=generator)
    last = out["global_beta"][:, -1]  # (C, p), independent across chains
    sd = cov.diagonal().sqrt()
    assert ((last.mean(0) - mean).abs() < 5 * sd / math.sqrt(C)).all()  # 5 MC SEs
    assert ((last.var(0) / sd**2 - 1).abs() < 5 * math.sqrt(2 / C)).all()  # variance within 5 SEs
    spread = (out["local_betas"][:, -1] - last[:, None]).abs().max()
    assert spread < 6 * nu  # all states share beta_0 up to nu


def test_huge_dispersion_gives_separate_state_fits(generator):
    """nu -> infinity: each beta_s is its own state's GLM, with a prior that no longer binds.

    With nu = 100 the prior of beta_s given everything but its own state's data
    is N(mu, Sigma + nu^2 I) up to O(S / nu^2) = 3e-4 (beta_0 barely learns from
    the states). We compare every state's posterior mean with the brute-force
    posterior of that state alone under that prior.
    """
    S, p, nu = 3, 2, 100.0
    model = _model(S=S, p=p, nu=nu)
    s, y, N, X, *_ = _simulate(generator, S=S, counties_per_state=12, p=p, nu=1.0, trials=60)
    out = model.gibbs(s, y, N, X, torch.zeros(p), 400, num_chains=4, progress=False, generator=generator)
    draws = out["local_betas"][:, 50:]
    se = _mc_se(draws.reshape(*draws.shape[:2], S * p)).reshape(S, p)
    prior_cov = (1 + nu**2) * torch.eye(p, dtype=F64)
    for state in range(S):
        mask = s == state
        mean, cov, *_ = _grid_posterior(y[mask], N[mask], X[mask], torch.zeros(p, dtype=F64), prior_cov)
        post = draws[..., state, :].reshape(-1, p)
        assert ((post.mean(0) - mean).abs() < 5 * se[state]).all(), state  # 5 MC SEs (ESS-based)
        assert ((post.std(0) / cov.diagonal().sqrt() - 1).abs() < 0.15).all(), state


def test_batched_data_match_separate_fits(generator):
    """(T, n) responses: each row is fitted as if on its own (T = 2, the second row with masked counties)."""
    S, p, nu = 3, 2, 0.5
    model = _model(S=S, p=p, nu=nu)
    s, y, N, X, *_ = _simulate(generator, S=S, counties_per_state=10, p=p, nu=nu, trials=80)
    masked = s == 2  # state 2 not yet reported in row 1
    Y = torch.stack([y, torch.where(masked, 0.0, y)])
    NN = torch.stack([N, torch.where(masked, 0.0, N)])
    iters, burn = 400, 50
    batched = model.gibbs(s, Y, NN, X, torch.zeros(p), iters, num_chains=4, progress=False, generator=generator)
    for row in range(2):
        alone = model.gibbs(
            s, Y[row], NN[row], X, torch.zeros(p), iters, num_chains=4, progress=False, generator=generator
        )
        a = batched["local_betas"][row, :, burn:].flatten(-2)
        b = alone["local_betas"][:, burn:].flatten(-2)
        se = torch.sqrt(_mc_se(a) ** 2 + _mc_se(b) ** 2)
        assert ((a.mean((0, 1)) - b.mean((0, 1))).abs() < 5 * se).all(), row  # 5 MC SEs of the difference
    # and row 1's unreported state is drawn from its prior around beta_0
    diff = batched["local_betas"][1, :, burn:, 2] - batched["global_beta"][1, :, burn:]
    assert ((diff.std((0, 1)) / nu - 1).abs() < 0.15).all()


def test_batch_of_one_reproduces_the_unbatched_run():
    S, p = 3, 2
    model = _model(S=S, p=p)
    s, y, N, X, *_ = _simulate(torch.Generator().manual_seed(3), S=S, counties_per_state=4, p=p, nu=0.5)
    a = model.gibbs(s, y, N, X, torch.zeros(p), 5, progress=False, generator=torch.Generator().manual_seed(0))
    b = model.gibbs(s, y[None], N[None], X, torch.zeros(p), 5, progress=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a["local_betas"], b["local_betas"][0])


def test_offset_shifts_the_linear_predictor(generator):
    """A constant offset c moves the intercepts by -c and leaves the other weights alone."""
    S, p, nu = 2, 2, 0.3
    model = _model(S=S, p=p, nu=nu, cov=25 * torch.eye(p, dtype=F64))
    s, y, N, X, *_ = _simulate(generator, S=S, counties_per_state=15, p=p, nu=nu, trials=300)
    c = 0.8
    runs = [
        model.gibbs(s, y, N, X, torch.zeros(p), 300, num_chains=4, offset=offset, progress=False, generator=generator)
        for offset in (None, torch.full_like(y, c))
    ]
    a, b = (r["local_betas"][:, 50:].flatten(-2) for r in runs)
    se = torch.sqrt(_mc_se(a) ** 2 + _mc_se(b) ** 2)
    shift = torch.tensor([c, 0.0] * S, dtype=F64)  # intercept of each state moves by c
    # the prior N(0, 25 I) on beta_0 pulls a little: bias <= c nu^2 / 25-ish, far below the tolerance
    assert ((a.mean((0, 1)) - b.mean((0, 1)) - shift).abs() < 5 * se + 0.01).all()


# ---------------------------------------------------------------- bad inputs
def _data():
    s = torch.tensor([0, 1, 1])
    X = torch.ones(3, 2, dtype=F64)
    y = torch.tensor([1.0, 2.0, 0.0], dtype=F64)
    N = torch.tensor([2.0, 3.0, 1.0], dtype=F64)
    return s, y, N, X


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((0, torch.zeros(2), torch.eye(2), 1.0), ValueError, "num_states"),
        ((3, torch.zeros(2), torch.eye(3), 1.0), ValueError, "prior_cov must have shape"),
        ((3, torch.zeros(2, 1), torch.eye(2), 1.0), ValueError, "prior_mean"),
        ((3, torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]), 1.0), ValueError, "positive definite"),
        ((3, torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]), 1.0), ValueError, "symmetric"),
        ((3, torch.zeros(2), torch.eye(2), 0.0), ValueError, "dispersion"),
        ((3, torch.zeros(2), torch.eye(2), -1.0), ValueError, "dispersion"),
        ((3, torch.zeros(2), torch.eye(2), float("nan")), ValueError, "dispersion"),
        ((3, torch.zeros(2), torch.eye(2), "0.1"), TypeError, "dispersion"),
        ((3, [0.0, 0.0], torch.eye(2), 1.0), TypeError, "prior_mean"),
    ],
)
def test_bad_model_arguments(args, error, match):
    with pytest.raises(error, match=match):
        HierarchicalBinomialGLM(*args)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda s, y, N, X: (torch.tensor([0, 1, 3]), y, N, X), ValueError, r"\[0, num_states\)"),
        (lambda s, y, N, X: (torch.tensor([0, -1, 1]), y, N, X), ValueError, r"\[0, num_states\)"),
        (lambda s, y, N, X: (s.double(), y, N, X), TypeError, "integer state codes"),
        (lambda s, y, N, X: (s[:2], y, N, X), ValueError, "s must have shape"),
        (lambda s, y, N, X: (s, y + 5, N, X), ValueError, "must not exceed N"),
        (lambda s, y, N, X: (s, y, -N, X), ValueError, "non-negative"),
        (lambda s, y, N, X: (s, y, N[:2], X), ValueError, "shape"),
        (lambda s, y, N, X: (s, y, N, X.index_fill(0, torch.tensor([1]), float("nan"))), ValueError, "NaN"),
        (lambda s, y, N, X: (s, y, N, torch.ones(3, 4, dtype=F64)), ValueError, "num_features"),
        (lambda s, y, N, X: (s, y + 0.5, N, X), ValueError, "whole numbers"),
    ],
)
def test_bad_data(change, error, match):
    model = _model(S=3, p=2)
    s, y, N, X = change(*_data())
    with pytest.raises(error, match=match):
        model.gibbs(s, y, N, X, torch.zeros(2), 2, progress=False)
    with pytest.raises(error, match=match):
        model.log_prob(s, y, N, X, torch.zeros(3, 2), torch.zeros(2))


@pytest.mark.parametrize("num_iters", [0, -3, 2.5, True])
def test_bad_num_iters(num_iters):
    with pytest.raises(ValueError, match="num_iters"):
        _model().gibbs(*_data(), torch.zeros(2), num_iters, progress=False)


def test_bad_weights_and_options():
    model = _model(S=3, p=2)
    s, y, N, X = _data()
    with pytest.raises(ValueError, match="local_betas"):
        model.log_prob(s, y, N, X, torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="global_beta"):
        model.log_prob(s, y, N, X, torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="init_beta"):
        model.gibbs(s, y, N, X, torch.zeros(3), 2, progress=False)
    with pytest.raises(ValueError, match="init_beta"):
        model.gibbs(s, y, N, X, torch.zeros(5, 2), 2, num_chains=4, progress=False)
    with pytest.raises(ValueError, match="num_chains"):
        model.gibbs(s, y, N, X, torch.zeros(2), 2, num_chains=0, progress=False)
    with pytest.raises(ValueError, match="offset"):
        model.gibbs(s, y, N, X, torch.zeros(2), 2, offset=torch.zeros(4), progress=False)
    with pytest.raises(ValueError, match="omegas must be non-negative"):
        model._gibbs_update_local_betas(s, y, N, X, -torch.ones(3), torch.zeros(2))
    with pytest.raises(ValueError, match="batch dimensions"):
        model._gibbs_update_local_betas(s, y.expand(2, 3), N.expand(2, 3), X, torch.ones(4, 3), torch.zeros(2))
