"""MRP: the simulation's stated facts, the Gaussian block, the scale conditional,
poststratification, recovery on simulated data, and bad inputs.

The expected values below are written out from the stated simulation facts
(population shares, response propensities, effects), not imported from the
module, so that a typo in either place makes a test fail.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from bayesglm.mrp import (
    SENSIBLE_PRIORS,
    WIDE_PRIORS,
    MRPPriors,
    MultilevelLogisticModel,
    aggregate_sample,
    check_sample,
    check_table,
    poststratification_weights,
    poststratify,
    sample_halfnormal_scale_conditional,
    simulate,
)

# ----------------------------------------------------------------------------- stated facts
FACTORS = ["sex", "eth", "age", "income", "state"]
NUM_LEVELS = {"sex": 2, "eth": 3, "age": 7, "income": 3, "state": 50}
SHARE = {
    "sex": np.array([0.52, 0.48]),
    "eth": np.array([0.5, 0.2, 0.3]),
    "age": np.array([0.2, 0.1, 0.2, 0.2, 0.1, 0.1, 0.1]),
    "income": np.array([0.50, 0.35, 0.15]),
}
PROPENSITY = {
    "sex": np.array([2, 0.8]),
    "eth": np.array([1, 1.2, 2.5]),
    "age": np.array([1, 0.4, 1, 1.5, 3, 5, 7]),
    "income": np.array([1, 0.9, 0.8]),
}
EFFECT = {
    "sex": np.array([0, -0.3]),
    "eth": np.array([0, 0.6, 0.9]),
    "age": np.array([0, -0.2, -0.3, 0.4, 0.5, 0.7, 0.8]),
    "income": np.array([0, -0.2, 0.6]),
}
SEX_AGE = np.array([[0, 0.1, 0.23, 0.3, 0.43, 0.5, 0.6], [0, -0.1, -0.23, -0.5, -0.43, -0.5, -0.6]])
TOTAL = 250e6
NUM_PEOPLE = 1200


@pytest.fixture(scope="module")
def sim():
    return simulate(generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def fit(sim):
    """One fit shared by the recovery tests: 2 chains x 1000 sweeps, first 200 dropped."""
    torch.set_num_threads(1)
    model = MultilevelLogisticModel(SENSIBLE_PRIORS)
    draws = model.gibbs(sim.sample, 1000, num_chains=2, generator=torch.Generator().manual_seed(11), progress=False)
    return model, {k: v[:, 200:] for k, v in draws.items()}


# ----------------------------------------------------------------------------- simulation
def test_table_lists_every_cell_once_in_order(sim):
    table = sim.poststrat
    assert len(table) == 2 * 3 * 7 * 3 * 50 == 6300
    assert not table.duplicated(FACTORS).any()
    for f in FACTORS:
        assert sorted(table[f].unique()) == list(range(NUM_LEVELS[f]))
    # state varies fastest, sex slowest
    assert table["state"].iloc[:50].tolist() == list(range(50))
    assert (table["sex"].iloc[:3150] == 0).all() and (table["sex"].iloc[3150:] == 1).all()


def test_population_counts_follow_the_stated_shares(sim):
    share = dict(SHARE, state=sim.state_share.numpy())
    # state sizes are Uniform(10, 20) draws, normalized: shares within a factor 2 of each other
    assert share["state"].sum() == pytest.approx(1.0)
    assert share["state"].max() / share["state"].min() <= 2.0
    expected = TOTAL * np.ones(len(sim.poststrat))
    for f in FACTORS:
        expected = expected * share[f][sim.poststrat[f].to_numpy()]
    np.testing.assert_array_equal(sim.poststrat["N"].to_numpy(), np.round(expected))
    # rounding moves each of the 6300 counts by at most 0.5
    assert abs(sim.poststrat["N"].sum() - TOTAL) <= 0.5 * 6300
    for f in ("sex", "eth", "age", "income"):
        marginal = sim.poststrat.groupby(f)["N"].sum() / sim.poststrat["N"].sum()
        np.testing.assert_allclose(marginal.to_numpy(), SHARE[f], atol=1e-6)


def test_sample_composition_follows_size_times_propensity(sim):
    # The joint factorizes, so a sampled person's level of f has probability
    # proportional to share_f * propensity_f (state: its share times its Beta(1,1) propensity).
    pop = sim.population
    for f in ("sex", "eth", "age", "income"):
        expected = SHARE[f] * PROPENSITY[f] / (SHARE[f] * PROPENSITY[f]).sum()
        np.testing.assert_allclose(pop.groupby(f)["p_sample"].sum().to_numpy(), expected, atol=1e-6)
        # observed counts: binomial(1200, expected) per level; 4.5 standard errors
        observed = sim.sample[f].value_counts().reindex(range(NUM_LEVELS[f]), fill_value=0).to_numpy()
        se = np.sqrt(NUM_PEOPLE * expected * (1 - expected))
        assert (np.abs(observed - NUM_PEOPLE * expected) < 4.5 * se).all(), f
    # a person's response chance = 0.01 x the normalized propensities of the cell's levels
    state_resp = pop.groupby("state")["p_response"].first()  # any cell of the state
    row = pop.iloc[0]  # sex = eth = age = income = 0
    factor = np.prod([PROPENSITY[f][0] / PROPENSITY[f].sum() for f in ("sex", "eth", "age", "income")])
    assert 0 < row["p_response"] / (0.01 * factor) < 1  # the state's normalized Beta draw
    assert len(sim.sample) == NUM_PEOPLE and state_resp.notna().all()


def test_true_preferences_follow_the_stated_effects(sim):
    state = sim.effects["state"].numpy()
    assert state[0] == 0.0
    np.testing.assert_allclose(state * 10, np.round(state * 10), atol=1e-9)  # one decimal
    # 49 N(0, 1) draws: their sd lies in [0.6, 1.4] except with probability < 1e-4
    assert 0.6 < state[1:].std() < 1.4
    pop = sim.population
    logit = SEX_AGE[pop["sex"], pop["age"]] + state[pop["state"]]
    for f in ("sex", "eth", "age", "income"):
        logit = logit + EFFECT[f][pop[f]]
    np.testing.assert_allclose(pop["true_pref"].to_numpy(), 1 / (1 + np.exp(-logit)), rtol=1e-12)
    # one cell by hand: sex 1, eth 2, age 5, income 2, state 0 -> -0.3 + 0.9 + 0.7 + 0.6 - 0.5 = 1.4
    cell = pop.query("sex == 1 and eth == 2 and age == 5 and income == 2 and state == 0")
    assert cell["true_pref"].item() == pytest.approx(1 / (1 + math.exp(-1.4)))


def test_sample_outcomes_are_bernoulli_of_the_cell_preference(sim):
    p = sim.true_pref[sim.sample_cell].numpy()
    y = sim.sample["cat_pref"].to_numpy()
    # sum of independent Bernoullis: mean sum p, variance sum p(1-p); 4 SDs
    assert abs(y.sum() - p.sum()) < 4 * math.sqrt((p * (1 - p)).sum())
    np.testing.assert_array_equal(sim.sample[FACTORS].to_numpy(), sim.poststrat[FACTORS].to_numpy()[sim.sample_cell])


def test_the_sample_is_biased(sim):
    # over-represented groups (old, eth 2, sex 0) like cats more: the raw mean overshoots
    assert sim.sample["cat_pref"].mean() > sim.true_population_mean + 0.05


def test_simulation_is_reproducible():
    a = simulate(generator=torch.Generator().manual_seed(3))
    b = simulate(generator=torch.Generator().manual_seed(3))
    c = simulate(generator=torch.Generator().manual_seed(4))
    pd.testing.assert_frame_equal(a.population, b.population)
    pd.testing.assert_frame_equal(a.sample, b.sample)
    assert not a.sample["cell"].equals(c.sample["cell"])


# ----------------------------------------------------------------------------- poststratification
def test_poststratification_weights_sum_to_one(sim):
    for by in (None, *FACTORS):
        W, labels = poststratification_weights(sim.poststrat, by)
        torch.testing.assert_close(W.sum(0), torch.ones(W.shape[1], dtype=torch.float64))
        assert len(labels) == (1 if by is None else NUM_LEVELS[by])
        assert (W >= 0).all()


def test_poststratify_is_the_count_weighted_mean(sim):
    pop = sim.population
    truth = (pop["N"] * pop["true_pref"]).sum() / pop["N"].sum()
    assert poststratify(sim.true_pref, sim.poststrat).item() == pytest.approx(truth, rel=1e-12)
    per_state = pop.assign(w=pop["N"] * pop["true_pref"]).groupby("state")[["w", "N"]].sum()
    np.testing.assert_allclose(
        poststratify(sim.true_pref, sim.poststrat, by="state").numpy(), (per_state["w"] / per_state["N"]).to_numpy()
    )
    # batched: (2, cells) -> (2,)
    batch = torch.stack([sim.true_pref, torch.ones_like(sim.true_pref)])
    torch.testing.assert_close(poststratify(batch, sim.poststrat), torch.tensor([truth, 1.0], dtype=torch.float64))


def test_model_poststratify_equals_poststratify_of_cell_probabilities(sim):
    model = MultilevelLogisticModel()
    coef = torch.randn(3, 5, model.num_coef, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    probs = model.cell_probabilities(coef, sim.poststrat)
    torch.testing.assert_close(
        model.poststratify(coef, sim.poststrat, chunk_size=4), poststratify(probs, sim.poststrat)
    )
    torch.testing.assert_close(
        model.poststratify(coef, sim.poststrat, by="eth"), poststratify(probs, sim.poststrat, by="eth")
    )


# ----------------------------------------------------------------------------- the Gaussian block
TINY = {"sex": 2, "eth": 2, "age": 2, "income": 2, "state": 2}


def test_design_matrix_by_hand():
    model = MultilevelLogisticModel(levels=TINY)
    assert model.coef_names == [
        "intercept", "sex_1", "age_1", "sex_1:age_1",
        "state[0]", "state[1]", "age[0]", "age[1]", "eth[0]", "eth[1]", "income[0]", "income[1]",
    ]  # fmt: skip
    cells = pd.DataFrame(
        {"sex": [1, 0, 1], "eth": [0, 1, 1], "age": [1, 1, 0], "income": [1, 0, 0], "state": [0, 1, 1]}
    )
    expected = torch.tensor(
        [
            [1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1],
            [1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0],
            [1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(model.design_matrix(cells), expected)


def test_gaussian_block_is_the_augmented_conditional():
    """J and h of theta | omega, sigma, y against the Hessian and gradient of the
    augmented log density sum_c (kappa_c eta_c - omega_c eta_c^2 / 2) - theta' D theta / 2."""
    priors = MRPPriors(intercept=3.0, coef=0.7, group_scale=1.0)
    model = MultilevelLogisticModel(priors, levels=TINY)
    cells = pd.DataFrame(
        {"sex": [1, 0, 1, 0], "eth": [0, 1, 1, 0], "age": [1, 1, 0, 0], "income": [1, 0, 0, 1], "state": [0, 1, 1, 0]}
    )
    Z = model.design_matrix(cells)
    y = torch.tensor([2.0, 0.0, 1.0, 3.0], dtype=torch.float64)
    n = torch.tensor([3.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    omega = torch.tensor([0.4, 0.2, 0.7, 0.9], dtype=torch.float64)
    sigma = torch.tensor([0.5, 2.0, 1.5, 0.3], dtype=torch.float64)  # state, age, eth, income
    # prior precision written out: intercept, 3 fixed, then 2 levels per group
    D = torch.tensor(
        [3.0**-2] + [0.7**-2] * 3 + [0.5**-2] * 2 + [2.0**-2] * 2 + [1.5**-2] * 2 + [0.3**-2] * 2, dtype=torch.float64
    )

    def log_density(theta):
        eta = Z @ theta
        return ((y - n / 2) * eta - omega * eta**2 / 2).sum() - 0.5 * (D * theta**2).sum()

    J, h = model.conditional_coef(Z, y, n, omega, sigma)
    hessian = torch.autograd.functional.hessian(log_density, torch.zeros(12, dtype=torch.float64))
    torch.testing.assert_close(J, -hessian)
    mean = torch.linalg.solve(J, h)
    gradient = torch.autograd.functional.jacobian(log_density, mean)
    torch.testing.assert_close(gradient, torch.zeros(12, dtype=torch.float64), atol=1e-10, rtol=0)
    # batched over chains: each chain gets its own omega and sigma
    J2, h2 = model.conditional_coef(Z, y, n, torch.stack([omega, 2 * omega]), torch.stack([sigma, sigma]))
    torch.testing.assert_close(J2[0], J)
    torch.testing.assert_close(J2[1] - J2[0], Z.T @ torch.diag(omega) @ Z)
    torch.testing.assert_close(h2, torch.stack([h, h]))


def test_rescaling_move_is_a_generalized_gibbs_step():
    """The parameter-expansion move draws lambda from pi(T_lambda x) |Jacobian| Haar(d lambda).

    Written out independently: f(lambda) = log pi(T_lambda(theta, sigma) | omega, y)
    + sum_k (L_k + 1) log|lambda_k| (Jacobian) - sum_k log|lambda_k| (Haar measure of the
    multiplicative group). It must equal the Gaussian exponent -lambda'J lambda/2 + h'lambda
    of rescale_conditional up to a constant, for any lambda, signs included."""
    priors = MRPPriors(intercept=2.0, coef=0.8, group_scale=1.3)
    model = MultilevelLogisticModel(priors, levels=TINY)
    g = torch.Generator().manual_seed(1)
    cells = pd.DataFrame(
        {"sex": [1, 0, 1, 0, 1], "eth": [0, 1, 1, 0, 1], "age": [1, 1, 0, 0, 1], "income": [1, 0, 0, 1, 1],
         "state": [0, 1, 1, 0, 0]}
    )  # fmt: skip
    Z = model.design_matrix(cells)
    y = torch.tensor([2.0, 0.0, 1.0, 3.0, 1.0], dtype=torch.float64)
    n = torch.tensor([3.0, 1.0, 2.0, 4.0, 1.0], dtype=torch.float64)
    omega = torch.rand(5, dtype=torch.float64, generator=g)
    coef = torch.randn(12, dtype=torch.float64, generator=g)
    sigma = torch.rand(4, dtype=torch.float64, generator=g) + 0.2
    sizes = torch.tensor([2.0, 2.0, 2.0, 2.0])  # levels of state, age, eth, income
    prior_sd = torch.tensor([2.0, 0.8, 0.8, 0.8])

    def log_target(theta, s):
        eta = Z @ theta
        lik = ((y - n / 2) * eta - omega * eta**2 / 2).sum()
        fixed = -0.5 * (theta[:4] / prior_sd).pow(2).sum()
        a = theta[4:].reshape(4, 2)  # state, age, eth, income: two levels each
        varying = (-0.5 * (a / s[:, None]).pow(2) - torch.log(s[:, None])).sum()
        scales = (-0.5 * (s / 1.3).pow(2)).sum()
        return lik + fixed + varying + scales

    def f(lam):
        theta, s = model.apply_rescale(coef, sigma, lam)
        return log_target(theta, s) + ((sizes + 1) * lam.abs().log()).sum() - lam.abs().log().sum()

    J, h = model.rescale_conditional(Z, y, n, omega, coef, sigma)
    one = torch.ones(4, dtype=torch.float64)
    q = lambda lam: -0.5 * lam @ J @ lam + h @ lam  # noqa: E731
    for _ in range(5):
        lam = torch.randn(4, dtype=torch.float64, generator=g) * 2
        torch.testing.assert_close(f(lam) - f(one), q(lam) - q(one))


@pytest.mark.parametrize(("K", "S", "s0"), [(50, 40.0, 1.0), (3, 0.5, 1.0), (7, 0.01, 1.0), (3, 5.0, 0.2)])
def test_scale_conditional_is_the_generalized_inverse_gaussian(K, S, s0, generator):
    # sigma^2 | a ~ GIG(p = (1 - K)/2, a = 1/s0^2, b = S); scipy: geninvgauss(p, sqrt(ab), scale=sqrt(b/a))
    draws = sample_halfnormal_scale_conditional(torch.full((20_000,), S), K, s0, generator=generator)
    ref = scipy.stats.geninvgauss((1 - K) / 2, math.sqrt(S / s0**2), scale=math.sqrt(S * s0**2))
    x = (draws**2).numpy()
    assert abs(x.mean() - ref.mean()) < 4 * ref.std() / math.sqrt(len(x))  # 4 Monte Carlo SEs
    assert scipy.stats.kstest(x, ref.cdf).pvalue > 1e-3


def test_scale_conditional_uses_each_entrys_parameters(generator):
    S = torch.tensor([[1e-4], [1e4]], dtype=torch.float64).expand(2, 2000)
    draws = sample_halfnormal_scale_conditional(S, 50, 1.0, generator=generator)
    # tiny S: sigma is small; huge S (sum of 50 squares): sigma near sqrt(S/K) shrunk by the prior
    assert draws[0].max() < 0.01 and draws[1].min() > 3


# ----------------------------------------------------------------------------- prior predictive
@pytest.mark.parametrize("priors", [WIDE_PRIORS, SENSIBLE_PRIORS])
def test_prior_predictive_logit_variance(priors, generator):
    model = MultilevelLogisticModel(priors)
    cells = pd.DataFrame({"sex": [1], "eth": [2], "age": [3], "income": [0], "state": [17]})
    draws = model.prior_predictive(cells, 40_000, generator=generator)
    logits = draws["logits"][:, 0].numpy()
    # intercept + sex_1 + age_3 + sex_1:age_3 + four varying intercepts with E[sigma^2] = s0^2
    expected = priors.intercept**2 + 3 * priors.coef**2 + 4 * priors.group_scale**2
    var = logits.var()
    se = math.sqrt((((logits - logits.mean()) ** 4).mean() - var**2) / len(logits))
    assert abs(var - expected) < 4 * se
    assert abs(logits.mean()) < 4 * math.sqrt(expected / len(logits))
    assert draws["sigma"].shape == (40_000, 4) and (draws["sigma"] > 0).all()


def test_wide_priors_pile_up_at_zero_and_one(generator):
    cells = simulate(generator=generator).sample
    extreme = {}
    for name, priors in (("wide", WIDE_PRIORS), ("sensible", SENSIBLE_PRIORS)):
        p = MultilevelLogisticModel(priors).prior_predictive(cells, 400, generator=generator)["probs"]
        extreme[name] = ((p < 0.01) | (p > 0.99)).double().mean().item()
    # N(0, 122.75) logits: P(|logit| > 4.6) ~ 0.68; N(0, 8): ~ 0.10 (for a cell like the one above)
    assert extreme["wide"] > 0.5 and extreme["sensible"] < 0.2


# ----------------------------------------------------------------------------- recovery
def test_posterior_population_mean_covers_truth_and_beats_the_sample_mean(sim, fit):
    model, draws = fit
    post = model.poststratify(draws["coef"], sim.poststrat)
    truth = sim.true_population_mean
    lo, hi = post.quantile(0.025).item(), post.quantile(0.975).item()
    assert lo < truth < hi
    assert abs(post.mean().item() - truth) < abs(sim.sample["cat_pref"].mean() - truth)


def test_state_intervals_cover_most_states(sim, fit):
    """Per-state 90% intervals cover the true state means for most states.

    Were the 50 coverage events independent, the number covered would be
    Bin(50, 0.9): mean 45, sd 2.1. They are not: every state's estimate shares the
    intercept and the fixed effects, so one common error moves all 50 intervals
    together. Over simulation seeds 1-10 (fitted like the fixture below) we counted
    36, 39, 40, 44, 44, 44, 45, 47, 47, 47 covered: sd about 3.8, three times the
    binomial variance. We require >= 33, about three such sd below the nominal 45. Intervals that were
    too narrow (e.g. the sd of a mean instead of the posterior spread) would cover
    far fewer.
    """
    model, draws = fit
    per_state = model.poststratify(draws["coef"], sim.poststrat, by="state").reshape(-1, 50)
    lo, hi = per_state.quantile(0.05, dim=0), per_state.quantile(0.95, dim=0)
    truth = sim.true_group_means("state")
    covered = int(((lo <= truth) & (truth <= hi)).sum())
    assert covered >= 33, covered


def test_state_estimates_beat_the_raw_state_means(sim, fit):
    # Root mean squared error over the states that have respondents. Over simulation
    # seeds 1-10 (fitted like the fixture) the ratio MRP / raw was 0.47 to 0.69; we require < 0.8.
    model, draws = fit
    estimate = model.poststratify(draws["coef"], sim.poststrat, by="state").mean(dim=(0, 1))
    truth = sim.true_group_means("state")
    raw = sim.sample.groupby("state")["cat_pref"].mean()
    seen = torch.tensor(raw.index.to_numpy())
    rmse_mrp = (estimate[seen] - truth[seen]).pow(2).mean().sqrt()
    rmse_raw = (torch.tensor(raw.to_numpy()) - truth[seen]).pow(2).mean().sqrt()
    assert rmse_mrp < 0.8 * rmse_raw, (rmse_mrp, rmse_raw)


def test_chains_agree_on_the_population_mean(sim, fit):
    from bayesglm.diagnostics import split_rhat

    model, draws = fit
    post = model.poststratify(draws["coef"], sim.poststrat)  # (chains, draws)
    assert split_rhat(post.unsqueeze(-1)).item() < 1.05


def test_gibbs_output_shapes_and_init_is_draw_zero(sim):
    model = MultilevelLogisticModel()
    init = {"coef": torch.zeros(model.num_coef, dtype=torch.float64), "sigma": torch.ones(4, dtype=torch.float64)}
    g = torch.Generator().manual_seed(0)
    one = model.gibbs(sim.sample, 3, generator=g, progress=False, init=init)
    assert one["coef"].shape == (4, model.num_coef) and one["sigma"].shape == (4, 4) and one["log_lik"].shape == (4,)
    torch.testing.assert_close(one["coef"][0], init["coef"])
    many = model.gibbs(sim.sample, 3, num_chains=3, generator=g, progress=False)
    plain = model.gibbs(sim.sample, 3, num_chains=3, generator=g, progress=False, rescale=False)
    assert plain["coef"].shape == many["coef"].shape
    assert many["coef"].shape == (3, 4, model.num_coef) and many["sigma"].shape == (3, 4, 4)
    assert (many["sigma"] > 0).all()
    assert not torch.equal(many["coef"][0, 0], many["coef"][1, 0])  # over-dispersed starts
    again = model.gibbs(sim.sample, 3, num_chains=3, generator=torch.Generator().manual_seed(5), progress=False)
    same = model.gibbs(sim.sample, 3, num_chains=3, generator=torch.Generator().manual_seed(5), progress=False)
    torch.testing.assert_close(again["coef"], same["coef"], rtol=0, atol=0)


def test_aggregate_sample_counts_people_per_cell():
    sample = pd.DataFrame(
        {"sex": [0, 0, 1, 0], "eth": [1, 1, 0, 1], "age": [2, 2, 2, 2], "income": [0, 0, 0, 0],
         "state": [5, 5, 5, 5], "cat_pref": [1, 0, 1, 1]}
    )  # fmt: skip
    cells = aggregate_sample(sample)
    assert cells[["n", "y"]].to_numpy().tolist() == [[3, 2], [1, 1]]


# ----------------------------------------------------------------------------- bad inputs
def test_bad_tables_are_clear_errors(sim):
    table = sim.poststrat
    with pytest.raises(ValueError, match="lacks the column"):
        check_table(table.drop(columns="income"))
    with pytest.raises(ValueError, match="unknown level 50"):
        check_table(table.assign(state=table["state"] + 1))
    with pytest.raises(ValueError, match="more than once"):
        check_table(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(ValueError, match="negative"):
        check_table(table.assign(N=-table["N"]))
    with pytest.raises(ValueError, match="count column 'N'"):
        check_table(table.drop(columns="N"))
    with pytest.raises(TypeError, match="DataFrame"):
        check_table(table.to_numpy())
    # a table that lacks part of the population: an error unless asked for
    partial = table.query("state != 49")
    with pytest.raises(ValueError, match="6174 cells .* make 6300"):
        poststratify(sim.true_pref[:6174], partial)
    with pytest.raises(ValueError, match="no people in state = 49"):
        poststratify(sim.true_pref[:6174], partial, by="state", complete=False)
    assert 0 < poststratify(sim.true_pref[:6174], partial, complete=False).item() < 1


def test_mismatched_tables_and_models_are_clear_errors(sim):
    model = MultilevelLogisticModel()
    coef = torch.zeros(model.num_coef, dtype=torch.float64)
    with pytest.raises(ValueError, match="6299 cells on its last axis .* 6300 rows"):
        poststratify(sim.true_pref[:-1], sim.poststrat)
    with pytest.raises(ValueError, match="by must be"):
        poststratify(sim.true_pref, sim.poststrat, by="county")
    with pytest.raises(ValueError, match=f"{model.num_coef} coefficients"):
        model.poststratify(coef[:-1], sim.poststrat)
    # a model for 49 states cannot poststratify (or fit) a 50-state table
    small = MultilevelLogisticModel(levels=dict(NUM_LEVELS, state=49))
    with pytest.raises(ValueError, match="unknown level 49"):
        small.poststratify(torch.zeros(small.num_coef, dtype=torch.float64), sim.poststrat)
    with pytest.raises(ValueError, match="unknown level 49"):
        small.gibbs(sim.sample.assign(state=49), 1, progress=False)


def test_bad_samples_are_clear_errors(sim):
    table = sim.poststrat
    unknown = table.query("not (sex == 0 and eth == 0 and age == 0 and income == 0 and state == 0)")
    sample = pd.concat([sim.sample, pd.DataFrame([dict(sex=0, eth=0, age=0, income=0, state=0, cat_pref=1)])])
    with pytest.raises(ValueError, match="cells that the poststratification table lacks"):
        check_sample(sample, unknown)
    with pytest.raises(ValueError, match="0 or 1"):
        check_sample(sim.sample.assign(cat_pref=2))
    with pytest.raises(ValueError, match="outcome column 'cat_pref'"):
        check_sample(sim.sample.drop(columns="cat_pref"))
    with pytest.raises(ValueError, match="column 'age' must hold integer"):
        check_sample(sim.sample.assign(age=0.5))
    model = MultilevelLogisticModel()
    with pytest.raises(ValueError, match="num_iters"):
        model.gibbs(sim.sample, 0, progress=False)
    with pytest.raises(ValueError, match="num_chains"):
        model.gibbs(sim.sample, 1, num_chains=0, progress=False)
    with pytest.raises(ValueError, match="init"):
        model.gibbs(sim.sample, 1, progress=False, init={"coef": torch.zeros(3)})
    with pytest.raises(ValueError, match="positive finite"):
        MRPPriors(intercept=-1.0)
    with pytest.raises(ValueError, match="num_sample"):
        simulate(0)
