"""The Bayesian binomial GLM: its conditionals, its density, its sampler, its input checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import hessian, jacobian
from torch.distributions import Binomial, MultivariateNormal

from bayesglm.diagnostics import effective_sample_size
from bayesglm.glm import BinomialGLM
from bayesglm.polyagamma import pg_mean, pg_variance

F64 = torch.float64


def _tiny_problem(generator: torch.Generator):
    """6 counties, 2 features, a correlated prior: small enough to check by hand."""
    X = torch.cat([torch.ones(6, 1, dtype=F64), torch.randn(6, 1, generator=generator, dtype=F64)], dim=1)
    N = torch.tensor([5.0, 12.0, 0.0, 30.0, 8.0, 20.0], dtype=F64)
    y = torch.tensor([1.0, 9.0, 0.0, 12.0, 8.0, 0.0], dtype=F64)
    mu = torch.tensor([0.3, -0.2], dtype=F64)
    Sigma = torch.tensor([[1.0, 0.4], [0.4, 2.0]], dtype=F64)
    return y, N, X, mu, Sigma


def _simulate(generator: torch.Generator, n: int = 500):
    """A binomial GLM with known weights: intercept and 3 standard-normal covariates."""
    beta_true = torch.tensor([-0.4, 0.8, -0.5, 0.25], dtype=F64)
    X = torch.cat([torch.ones(n, 1, dtype=F64), torch.randn(n, 3, generator=generator, dtype=F64)], dim=1)
    N = torch.randint(20, 200, (n,), generator=generator).to(F64)
    prob = torch.sigmoid(X @ beta_true)
    # Binomial draws as sums of Bernoulli trials (torch.distributions ignores generators).
    trials = torch.rand(n, 200, generator=generator, dtype=F64) < prob[:, None]
    y = (trials & (torch.arange(200) < N[:, None])).sum(-1).to(F64)
    return y, N, X, beta_true


def _laplace(glm: BinomialGLM, y, N, X, iters: int = 50):
    """Posterior mode and inverse Hessian by Newton's method on the log joint (no augmentation involved)."""
    beta = torch.zeros(X.shape[1], dtype=F64)
    for _ in range(iters):
        grad = jacobian(lambda b: glm.log_prob(y, N, X, b), beta)
        hess = hessian(lambda b: glm.log_prob(y, N, X, b), beta)
        beta = beta - torch.linalg.solve(hess, grad)
    return beta, torch.linalg.inv(-hess)


# ------------------------------------------------------------------ beta | omega
def test_beta_conditional_is_the_closed_form_gaussian(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    glm = BinomialGLM(mu, Sigma)
    omegas = torch.tensor([0.9, 2.5, 0.0, 7.0, 1.3, 4.0], dtype=F64)

    # Closed form: J = Sigma^-1 + X^T diag(omega) X, h = Sigma^-1 mu + X^T (y - N/2).
    J = torch.linalg.inv(Sigma) + X.T @ torch.diag(omegas) @ X
    h = torch.linalg.solve(Sigma, mu) + X.T @ (y - N / 2)
    mean, cov = torch.linalg.solve(J, h), torch.linalg.inv(J)

    # Brute force, independent of the formulas above: the augmented log density
    # log N(beta; mu, Sigma) + sum_i [kappa_i eta_i - omega_i eta_i^2 / 2] is quadratic in beta,
    # so its Hessian is -J and one Newton step from anywhere lands on the mean.
    def log_density(beta):
        eta = X @ beta
        return MultivariateNormal(mu, Sigma).log_prob(beta) + ((y - N / 2) * eta - omegas * eta**2 / 2).sum()

    start = torch.zeros(2, dtype=F64)
    hess = hessian(log_density, start)
    brute_mean = start - torch.linalg.solve(hess, jacobian(log_density, start))
    torch.testing.assert_close(-hess, J)
    torch.testing.assert_close(brute_mean, mean)

    num_draws = 40_000
    draws = glm._gibbs_update_beta(y, N, X, omegas.expand(num_draws, 6), generator=generator)
    assert draws.shape == (num_draws, 2) and draws.dtype == F64
    # Tolerance: 5 Monte Carlo standard errors; sd/sqrt(n) for a mean, and
    # sqrt((C_ii C_jj + C_ij^2) / n) for a Gaussian sample covariance entry.
    sd = cov.diagonal().sqrt()
    assert ((draws.mean(0) - mean).abs() < 5 * sd / math.sqrt(num_draws)).all()
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / num_draws).sqrt()
    assert ((torch.cov(draws.T) - cov).abs() < 5 * se_cov).all()


def test_beta_update_uses_each_batch_entrys_own_omegas(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    glm = BinomialGLM(mu, Sigma)
    # Huge omegas make the conditional nearly a point mass at (X^T W X)^-1 X^T kappa.
    omegas = torch.stack([torch.full((6,), 1e8, dtype=F64), torch.full((6,), 2e8, dtype=F64)])
    draws = glm._gibbs_update_beta(y, N, X, omegas, generator=generator)
    kappa = y - N / 2
    expected = torch.stack([torch.linalg.solve(X.T @ X * w, X.T @ kappa) for w in (1e8, 2e8)])
    torch.testing.assert_close(draws, expected, atol=1e-3, rtol=0)


# ------------------------------------------------------------------ omega | beta
def test_omega_update_has_the_polya_gamma_mean(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    glm = BinomialGLM(mu, Sigma)
    beta = torch.tensor([0.5, -1.2], dtype=F64)
    num_draws = 4000
    omegas = glm._gibbs_update_omegas(N, X, beta.expand(num_draws, 2), generator=generator)
    assert omegas.shape == (num_draws, 6)
    eta = X @ beta
    # 5 Monte Carlo standard errors, sqrt(Var[omega] / n), from the exact PG variance.
    se = (pg_variance(N, eta) / num_draws).sqrt()
    assert ((omegas.mean(0) - pg_mean(N, eta)).abs() <= 5 * se).all()
    assert (omegas[:, N == 0] == 0).all()  # PG(0, c) is a point mass at 0


def test_omega_update_calls_the_chosen_sampler(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    calls = []

    def recording_sampler(b, c, *, generator=None):
        calls.append((b, c))
        return torch.ones_like(c)

    glm = BinomialGLM(mu, Sigma, pg_sampler=recording_sampler)
    beta = torch.tensor([0.5, -1.2], dtype=F64)
    glm._gibbs_update_omegas(N, X, beta)
    (b, c), = calls
    torch.testing.assert_close(b, N)
    torch.testing.assert_close(c, X @ beta)


# ------------------------------------------------------------------ log joint
def test_log_prob_agrees_with_torch_distributions(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    glm = BinomialGLM(mu, Sigma)
    betas = torch.randn(5, 2, generator=generator, dtype=F64)
    expected = torch.stack(
        [MultivariateNormal(mu, Sigma).log_prob(b) + Binomial(N, logits=X @ b).log_prob(y).sum() for b in betas]
    )
    torch.testing.assert_close(glm.log_prob(y, N, X, betas), expected)
    torch.testing.assert_close(glm.log_prob(y, N, X, betas[0]), expected[0])


# ------------------------------------------------------------------ the sampler
@pytest.fixture(scope="module")
def simulated_fit():
    generator = torch.Generator().manual_seed(7)
    y, N, X, beta_true = _simulate(generator)
    glm = BinomialGLM(torch.zeros(4, dtype=F64), torch.eye(4, dtype=F64))
    init = 2 * torch.randn(4, 4, generator=generator, dtype=F64)  # overdispersed starts, one per chain
    samples = glm.gibbs(y, N, X, init, 300, num_chains=4, generator=generator, progress=False)
    return glm, y, N, X, beta_true, samples


def test_gibbs_output_shapes_and_initial_state(simulated_fit):
    glm, y, N, X, _, samples = simulated_fit
    assert samples["betas"].shape == (4, 301, 4) and samples["lp"].shape == (4, 301)
    assert samples["betas"].dtype == F64
    # Draw 0 is the initial state; every recorded lp is the log joint of its draw.
    torch.testing.assert_close(samples["lp"], glm.log_prob(y, N, X, samples["betas"]))


def test_gibbs_recovers_known_weights(simulated_fit):
    glm, y, N, X, beta_true, samples = simulated_fit
    draws = samples["betas"][:, 50:]  # burn-in: 50 of 300
    flat = draws.reshape(-1, 4)
    lower, upper = flat.quantile(0.025, dim=0), flat.quantile(0.975, dim=0)
    covered = (lower <= beta_true) & (beta_true <= upper)
    assert covered.sum() >= 3, f"95% intervals {lower} - {upper} miss too many of {beta_true}"
    z = (flat.mean(0) - beta_true) / flat.std(0)
    assert (z.abs() < 3).all(), z


def test_gibbs_matches_the_laplace_approximation(simulated_fit):
    # With ~55,000 trials the posterior is nearly Gaussian at the mode: an exact
    # answer computed without any Pólya-gamma draw.
    glm, y, N, X, _, samples = simulated_fit
    draws = samples["betas"][:, 50:]
    mode, cov = _laplace(glm, y, N, X)
    flat = draws.reshape(-1, 4)
    mean, sd = flat.mean(0), flat.std(0)
    ess = torch.as_tensor(effective_sample_size(draws))
    assert (ess > 200).all(), ess
    # Mean: 4 Monte Carlo standard errors (sd / sqrt(ESS)) plus 5% of an sd for mean != mode.
    assert ((mean - mode).abs() < (4 / ess.sqrt() + 0.05) * sd).all()
    # SD: the relative standard error of a sample sd is about 1 / sqrt(2 ESS); 4 of them plus 3%.
    assert ((sd / cov.diagonal().sqrt() - 1).abs() < 4 / (2 * ess).sqrt() + 0.03).all()


def test_one_chain_without_chain_axis_equals_num_chains_one():
    generator = torch.Generator().manual_seed(3)
    y, N, X, _ = _simulate(generator, n=50)
    glm = BinomialGLM(torch.zeros(4, dtype=F64), torch.eye(4, dtype=F64))
    init = torch.zeros(4, dtype=F64)
    single = glm.gibbs(y, N, X, init, 5, generator=torch.Generator().manual_seed(11), progress=False)
    batched = glm.gibbs(y, N, X, init, 5, num_chains=1, generator=torch.Generator().manual_seed(11), progress=False)
    assert single["betas"].shape == (6, 4) and single["lp"].shape == (6,)
    torch.testing.assert_close(single["betas"], batched["betas"][0], rtol=0, atol=0)
    torch.testing.assert_close(single["lp"], batched["lp"][0], rtol=0, atol=0)


def test_seeding_reproduces_and_chains_differ():
    generator = torch.Generator().manual_seed(3)
    y, N, X, _ = _simulate(generator, n=50)
    glm = BinomialGLM(torch.zeros(4, dtype=F64), torch.eye(4, dtype=F64))
    init = torch.zeros(4, dtype=F64)

    def run(seed):
        return glm.gibbs(y, N, X, init, 5, num_chains=3, generator=torch.Generator().manual_seed(seed), progress=False)

    first, again, other = run(11), run(11), run(12)
    torch.testing.assert_close(first["betas"], again["betas"], rtol=0, atol=0)
    assert not torch.equal(first["betas"][:, 1:], other["betas"][:, 1:])
    # The same initial state, but the chains draw different random numbers.
    assert (first["betas"][:, 0] == init).all()
    assert not torch.equal(first["betas"][0, 1:], first["betas"][1, 1:])


def test_per_chain_initial_states_and_silent_progress(capsys):
    generator = torch.Generator().manual_seed(3)
    y, N, X, _ = _simulate(generator, n=50)
    glm = BinomialGLM(torch.zeros(4, dtype=F64), torch.eye(4, dtype=F64))
    init = torch.arange(8, dtype=F64).reshape(2, 4)
    samples = glm.gibbs(y, N, X, init, 2, num_chains=2, generator=generator, progress=False)
    torch.testing.assert_close(samples["betas"][:, 0], init)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_float32_inputs_run_in_float64(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    glm = BinomialGLM(mu.float(), Sigma.float())
    samples = glm.gibbs(y.float(), N.float(), X.float(), torch.zeros(2), 3, generator=generator, progress=False)
    assert samples["betas"].dtype == F64 and samples["lp"].dtype == F64


# ------------------------------------------------------------------ bad inputs
def _good(generator):
    y, N, X, mu, Sigma = _tiny_problem(generator)
    return y, N, X, BinomialGLM(mu, Sigma)


@pytest.mark.parametrize(
    ("prior_mean", "prior_cov", "error", "message"),
    [
        (torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]), ValueError, "positive definite"),
        (torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]), ValueError, "symmetric"),
        (torch.zeros(2), torch.eye(3), ValueError, r"prior_cov must have shape .* \(2, 2\)"),
        (torch.zeros(2, 1), torch.eye(2), ValueError, "prior_mean must have shape"),
        (torch.tensor([0.0, float("nan")]), torch.eye(2), ValueError, "finite"),
        ([0.0, 0.0], torch.eye(2), TypeError, "prior_mean must be a torch.Tensor"),
    ],
)
def test_bad_priors_fail_at_construction(prior_mean, prior_cov, error, message):
    with pytest.raises(error, match=message):
        BinomialGLM(prior_mean, prior_cov)


def test_pg_sampler_must_be_callable():
    with pytest.raises(TypeError, match="pg_sampler"):
        BinomialGLM(torch.zeros(2), torch.eye(2), pg_sampler=200)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda y, N, X: (y + N, N, X), "must not exceed N"),
        (lambda y, N, X: (-y - 1, N, X), "non-negative"),
        (lambda y, N, X: (y, N, X.index_put((torch.tensor(2), torch.tensor(1)), torch.tensor(float("nan"), dtype=F64))), "NaN"),
        (lambda y, N, X: (y[:-1], N, X), r"y must have shape \(num_counties,\)"),
        (lambda y, N, X: (y, N, X[:, :1]), "X has 1 columns but the prior has 2"),
        (lambda y, N, X: (y, N, X[:, 0]), "X must have shape"),
        (lambda y, N, X: (y + 0.5, N + 1, X), "whole numbers"),
    ],
)
def test_bad_data_fail_in_every_method(generator, change, message):
    y, N, X, glm = _good(generator)
    y, N, X = change(y, N, X)
    beta = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match=message):
        glm.gibbs(y, N, X, beta, 3, progress=False)
    with pytest.raises(ValueError, match=message):
        glm.log_prob(y, N, X, beta)
    with pytest.raises(ValueError, match=message):
        glm._gibbs_update_beta(y, N, X, torch.ones(X.shape[0], dtype=F64))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(init_beta=torch.zeros(3)), ValueError, r"init_beta must have shape \(2,\)"),
        (dict(init_beta=torch.zeros(4, 2)), ValueError, r"init_beta must have shape \(2,\)"),
        (dict(init_beta=torch.zeros(3, 2), num_chains=4), ValueError, r"\(2,\) or \(4, 2\)"),
        (dict(init_beta=torch.tensor([0.0, float("inf")])), ValueError, "init_beta must be finite"),
        (dict(num_iters=0), ValueError, "num_iters must be at least 1"),
        (dict(num_iters=-5), ValueError, "num_iters must be at least 1"),
        (dict(num_iters=10.0), TypeError, "num_iters must be an int"),
        (dict(num_chains=0), ValueError, "num_chains must be at least 1"),
    ],
)
def test_bad_sampler_arguments(generator, kwargs, error, message):
    y, N, X, glm = _good(generator)
    arguments = dict(init_beta=torch.zeros(2), num_iters=3) | kwargs
    with pytest.raises(error, match=message):
        glm.gibbs(y, N, X, progress=False, **arguments)


def test_bad_conditional_arguments(generator):
    y, N, X, glm = _good(generator)
    with pytest.raises(ValueError, match="omegas must have shape"):
        glm._gibbs_update_beta(y, N, X, torch.ones(5, dtype=F64))
    with pytest.raises(ValueError, match="non-negative"):
        glm._gibbs_update_beta(y, N, X, -torch.ones(6, dtype=F64))
    with pytest.raises(ValueError, match="betas must have shape"):
        glm._gibbs_update_omegas(N, X, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="beta must have shape"):
        glm.log_prob(y, N, X, torch.zeros(2, 3, dtype=F64))
