"""The Needle: facts, reveal masks, exact masking, posterior prediction, summaries, scores, input checks.

Statistical tolerances are 4 Monte Carlo standard errors (MC SE): sd / sqrt(ESS)
for correlated chains, sqrt(p (1 - p) / M) for M independent draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from bayesglm.data import Responses, load_votes, load_year
from bayesglm.diagnostics import effective_sample_size
from bayesglm.hierarchical import HierarchicalBinomialGLM
from bayesglm.needle import (
    ELECTORS,
    STATE_ORDER,
    TOTAL_ELECTORS,
    NeedleForecast,
    actual_outcome,
    check_state_order,
    decide_election,
    electors_per_state,
    fit_needle,
    forecast_scores,
    kept_draws,
    mask_responses,
    predict_electors,
    reveal_masks,
    summarize_needle,
    swing_offset,
)

F64 = torch.float64


@pytest.fixture(scope="module")
def year2020() -> Responses:
    return load_year(2020)


# ------------------------------------------------------------------------ facts
def test_facts_of_the_assignment(year2020):
    assert len(STATE_ORDER) == 50 and set(STATE_ORDER) == set(year2020.state_names)
    assert sum(ELECTORS.values()) == TOTAL_ELECTORS == 538 - 3  # all but Alaska's 3
    assert set(ELECTORS) == set(year2020.state_names)
    assert STATE_ORDER[:2] == ("INDIANA", "KENTUCKY") and STATE_ORDER[-1] == "ARIZONA"
    assert ELECTORS["CALIFORNIA"] == 55 and ELECTORS["TEXAS"] == 38 and ELECTORS["DISTRICT OF COLUMBIA"] == 3


def _winner_take_all_from_votes(year: int) -> int:
    """Democratic electors computed straight from the raw vote table, independently of the package."""
    votes = load_votes()
    votes = votes[votes["year"] == year]
    by_state = votes.pivot_table(index="state", columns="party", values="candidatevotes", aggfunc="sum")
    won = by_state["DEMOCRAT"] > by_state["REPUBLICAN"]
    return int(sum(ELECTORS[state] for state in by_state.index[won]))


def test_actual_2020_result_from_the_votes(year2020):
    actual = actual_outcome(year2020)
    assert int(actual.dem_electors) == _winner_take_all_from_votes(2020) == 306
    assert int(actual.dem_electors + actual.rep_electors) == TOTAL_ELECTORS
    assert bool(actual.dem_wins)
    won = {name for name, d in zip(year2020.state_names, actual.dem_states.tolist()) if d}
    assert {"ARIZONA", "GEORGIA", "PENNSYLVANIA", "CALIFORNIA"} <= won
    assert not won & {"FLORIDA", "OHIO", "TEXAS", "NORTH CAROLINA"}


def test_decide_election_counts_electors_and_breaks_ties_for_the_republicans():
    electors = torch.tensor([10, 20, 5])
    dem = torch.tensor([[60.0, 40.0, 50.0], [40.0, 60.0, 70.0]], dtype=F64)
    rep = torch.tensor([[40.0, 60.0, 50.0], [60.0, 40.0, 30.0]], dtype=F64)  # a tie in state 2, first row
    outcome = decide_election(dem, rep, electors, win_threshold=25)
    assert outcome.dem_states.tolist() == [[True, False, False], [False, True, True]]
    assert outcome.dem_electors.tolist() == [10, 25] and outcome.rep_electors.tolist() == [25, 10]
    assert outcome.dem_wins.tolist() == [False, True]


# ------------------------------------------------------------------------ masks
def test_reveal_masks_are_monotone_and_follow_the_order(year2020):
    masks = reveal_masks(year2020.s, year2020.state_names)
    T, n = masks.shape
    assert (T, n) == (50, len(year2020.fips)) and masks.dtype == torch.bool
    assert (masks[1:] >= masks[:-1]).all()  # once revealed, always revealed
    assert masks[-1].all()
    newly = torch.cat([masks[:1], masks[1:] & ~masks[:-1]])
    for t, state in enumerate(STATE_ORDER):  # stamp t reveals exactly the counties of the t-th state
        expected = year2020.s == year2020.state_names.index(state)
        assert torch.equal(newly[t], expected), state


def test_reveal_masks_follow_a_custom_order():
    names = ["A", "B", "C"]
    s = torch.tensor([0, 1, 1, 2, 0])
    masks = reveal_masks(s, names, order=["C", "A", "B"])
    expected = torch.tensor([[0, 0, 0, 1, 0], [1, 0, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(masks, expected)


def test_mask_responses_zero_unrevealed_counties():
    y, N = torch.tensor([3.0, 4.0, 5.0]), torch.tensor([10.0, 10.0, 10.0])
    masks = torch.tensor([[True, False, False], [True, True, False]])
    y_t, N_t = mask_responses(y, N, masks)
    assert torch.equal(y_t, torch.tensor([[3.0, 0, 0], [3, 4, 0]], dtype=F64))
    assert torch.equal(N_t, torch.tensor([[10.0, 0, 0], [10, 10, 0]], dtype=F64))


# ----------------------------------------------------------- exact masking: small problem
def _small_problem(generator, S=4, per_state=6, p=2, trials=40):
    n = S * per_state
    X = torch.cat([torch.ones(n, 1, dtype=F64), torch.randn(n, p - 1, dtype=F64, generator=generator)], 1)
    s = torch.arange(S).repeat_interleave(per_state)
    local = torch.tensor([0.3, -0.5], dtype=F64)[:p] + 0.4 * torch.randn(S, p, dtype=F64, generator=generator)
    N = torch.full((n,), float(trials), dtype=F64)
    y = torch.binomial(N, torch.sigmoid((X * local[s]).sum(-1)), generator=generator)
    names = [f"S{k}" for k in range(S)]
    return Responses(2020, [f"{i:05d}" for i in range(n)], names, ["intercept", "x"][:p], X, y, N, s)


def test_masked_county_adds_nothing_to_the_log_joint(generator):
    """N = y = 0 contributes log C(0,0) + 0 - 0 = 0: exactly the log joint of the revealed counties alone."""
    r = _small_problem(generator)
    model = HierarchicalBinomialGLM(4, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), 0.3)
    masks = reveal_masks(r.s, r.state_names, order=["S2", "S0", "S3", "S1"])
    y_t, N_t = mask_responses(r.y, r.N, masks)
    local = torch.randn(4, 2, dtype=F64, generator=generator)
    beta0 = torch.randn(2, dtype=F64, generator=generator)
    keep = masks[1]
    masked = model.log_prob(r.s, y_t[1], N_t[1], r.X, local, beta0)
    alone = model.log_prob(r.s[keep], r.y[keep], r.N[keep], r.X[keep], local, beta0)
    torch.testing.assert_close(masked, alone, rtol=1e-12, atol=1e-10)


def _chain_means(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and its MC SE from (chains, draws, params)."""
    ess = torch.as_tensor(effective_sample_size(draws))
    flat = draws.reshape(-1, draws.shape[-1])
    return flat.mean(0), flat.std(0) / ess.sqrt()


def test_batched_stamp_equals_a_standalone_fit_on_its_revealed_counties(generator):
    """Stamp t of the batched Needle vs the hierarchical model fitted to stamp t's counties only."""
    r = _small_problem(generator)
    order = ["S2", "S0", "S3", "S1"]
    masks = reveal_masks(r.s, r.state_names, order=order)
    mu = torch.tensor([0.2, -0.3], dtype=F64)
    sd, nu, iters, burn, chains = 0.5, 0.3, 1500, 100, 4
    batched = fit_needle(r, masks, mu, prior_sd=sd, dispersion=nu, num_iters=iters, num_chains=chains,
                         generator=generator, progress=False)
    assert batched["local_betas"].shape == (4, chains, iters + 1, 4, 2)
    t = 1  # S2 and S0 revealed, S3 and S1 not
    keep = masks[t]
    model = HierarchicalBinomialGLM(4, mu, sd**2 * torch.eye(2, dtype=F64), nu)
    alone = model.gibbs(r.s[keep], r.y[keep], r.N[keep], r.X[keep], mu, iters, num_chains=chains,
                        generator=generator, progress=False)

    def quantities(draws):  # beta_0, a revealed state's and an unrevealed state's weights
        local = draws["local_betas"][..., burn + 1 :, :, :]
        return torch.cat([draws["global_beta"][..., burn + 1 :, :], local[..., 2, :], local[..., 1, :]], -1)

    m1, se1 = _chain_means(quantities({k: v[t] for k, v in batched.items()}))
    m2, se2 = _chain_means(quantities(alone))
    z = (m1 - m2) / torch.sqrt(se1**2 + se2**2)
    assert z.abs().max() < 4, f"z-scores {z}"
    # and the data did move the revealed state away from the prior (the test has power)
    assert (m2[2:4] - mu).abs().max() > 4 * se2[2:4].max()


def _first_stamp_draws(generator, nu=0.3, iters=1000):
    r = _small_problem(generator)
    masks = reveal_masks(r.s, r.state_names, order=["S2", "S0", "S3", "S1"])  # stamp 1: only S2 has data
    return fit_needle(r, masks[:1], torch.tensor([0.2, -0.3], dtype=F64), prior_sd=0.5, dispersion=nu,
                      num_iters=iters, num_chains=4, generator=generator, progress=False)


def test_uninformed_states_are_stored_with_their_global_weights(generator):
    """Under the posterior a state without data is beta_0 + nu z, z ~ N(0, I): (beta_s - beta_0) of the
    same stored draw must be N(0, nu^2 I). This checks that the collapsed step's redrawn states are
    the ones stored (were the stale ones kept, the variance would be nu^2 + Var(beta_0 move) > nu^2).
    Tolerance: 4 SEs of a sample mean (nu / sqrt(n)) and of a sample variance (nu^2 sqrt(2 / n)).
    """
    nu = 0.3
    draws = _first_stamp_draws(generator, nu)
    local, beta0 = draws["local_betas"][0, :, 1:], draws["global_beta"][0, :, 1:]  # (C, iters, S, p), (C, iters, p)
    gap = local[:, :, [0, 1, 3]] - beta0.unsqueeze(2)  # the three unrevealed states
    n = gap.numel()
    assert gap.mean().abs() < 4 * nu / math.sqrt(n)
    assert abs(gap.pow(2).mean().item() / nu**2 - 1) < 4 * math.sqrt(2 / n)


def test_global_weights_mix_fast_when_most_states_have_no_data(generator):
    """Lag-1 autocorrelation of the intercept of beta_0 at the first stamp (1 of 4 states informed).

    The plain Gibbs step moves beta_0 as an AR(1) with coefficient about (S - k)/S times
    S nu^-2 / (sigma^-2 + S nu^-2) = 0.75 x 0.92 = 0.69 here (measured: 0.73); the collapsed step
    gives about 0.2. Threshold 0.45 sits more than 8 standard errors (about 0.03) from both.
    """
    beta0 = _first_stamp_draws(generator)["global_beta"][0, :, 101:, 0]  # (C, kept)
    centred = beta0 - beta0.mean(1, keepdim=True)
    lag1 = ((centred[:, 1:] * centred[:, :-1]).mean() / centred.pow(2).mean()).item()
    assert lag1 < 0.45


# ------------------------------------------------------------------- prediction
def test_last_stamp_forecast_is_the_actual_result(year2020, generator):
    """At the last stamp nothing is left to simulate: every draw gives the actual 306 electors."""
    masks = reveal_masks(year2020.s, year2020.state_names)
    electors = electors_per_state(year2020.state_names)
    M = 6
    betas = 0.3 * torch.randn(50, M, 50, year2020.X.shape[1], dtype=F64, generator=generator)
    forecast = predict_electors(betas, year2020.X, year2020.s, year2020.y, year2020.N, masks, electors,
                                generator=generator)
    assert isinstance(forecast, NeedleForecast)
    assert forecast.dem_states.shape == (50, M, 50) and forecast.dem_electors.shape == (50, M)
    actual = actual_outcome(year2020)
    assert (forecast.dem_electors[-1] == 306).all() and forecast.dem_wins[-1].all()
    assert (forecast.dem_states[-1] == actual.dem_states).all()
    # every simulated election hands out all 535 electors, at every stamp
    assert ((forecast.dem_electors + forecast.rep_electors) == TOTAL_ELECTORS).all()
    assert torch.equal(forecast.dem_wins, forecast.dem_electors >= 270)
    # revealed states are never simulated: their outcome is the actual one in every draw
    for t in (0, 20, 40):
        done = torch.tensor([name in STATE_ORDER[: t + 1] for name in year2020.state_names])
        assert (forecast.dem_states[t][:, done] == actual.dem_states[done]).all()


def test_predictive_state_probabilities_match_the_binomial_tail(generator):
    """Three states, one county each; state 0 revealed. P(win state) = P(Bin(N, p) > N / 2) exactly."""
    X = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0]], dtype=F64)
    s = torch.tensor([0, 1, 2])
    y = torch.tensor([60.0, 0.0, 0.0], dtype=F64)
    N = torch.tensor([100.0, 21.0, 15.0], dtype=F64)
    revealed = torch.tensor([True, False, False])
    beta = torch.tensor([[0.0, 0.0], [0.1, -0.3], [-0.2, 0.5]], dtype=F64)
    offset = torch.tensor([0.0, 0.2, -0.1], dtype=F64)
    M = 20000
    electors = torch.tensor([3, 4, 5])
    forecast = predict_electors(beta.expand(1, M, 3, 2), X, s, y, N, revealed, electors, offset=offset,
                                generator=generator)
    prob = torch.sigmoid((X * beta[s]).sum(-1) + offset)
    p_state = [1.0] + [stats.binom.sf(math.floor(N[i] / 2), int(N[i]), float(prob[i])) for i in (1, 2)]
    # exact distribution of Democratic electors: state 0 always, states 1 and 2 independently
    exact = {3: (1 - p_state[1]) * (1 - p_state[2]), 7: p_state[1] * (1 - p_state[2]),
             8: (1 - p_state[1]) * p_state[2], 12: p_state[1] * p_state[2]}
    draws = forecast.dem_electors[0]
    for value, p in exact.items():
        freq = (draws == value).double().mean().item()
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / M), (value, freq, p)
    assert set(draws.unique().tolist()) <= set(exact)
    # simulated votes stay within [0, N] and the revealed state keeps its votes
    assert (forecast.dem_votes[0, :, 0] == 60).all()
    assert ((forecast.dem_votes >= 0) & (forecast.dem_votes <= N)).all()


# -------------------------------------------------------------------- summaries
def test_summary_interval_probability_and_se(generator):
    T, M = 3, 400
    electors = torch.randint(200, 340, (T, M), generator=generator)
    outcome = decide_election(torch.zeros(T, M, 1), torch.zeros(T, M, 1), torch.tensor([1]))
    forecast = type(outcome)(outcome.dem_states, electors, TOTAL_ELECTORS - electors, electors >= 270)
    table = summarize_needle(forecast, order=["A", "B", "C"])
    assert list(table["state"]) == ["A", "B", "C"] and list(table.index) == [1, 2, 3]
    for t in range(T):
        row = table.iloc[t]
        inside = ((electors[t] >= row.dem_electors_lower) & (electors[t] <= row.dem_electors_upper)).double().mean()
        assert inside >= 0.95
        p = (electors[t] >= 270).double().mean().item()
        assert row.p_dem_win == pytest.approx(p)
        assert row.p_dem_win_se == pytest.approx(math.sqrt(p * (1 - p) / M))
    with_chains = summarize_needle(forecast, order=None, num_chains=4)
    assert "state" not in with_chains and (with_chains["p_dem_win_se"] > 0).all()


def test_forecast_scores_by_hand():
    p = np.array([0.2, 0.6, 1.0, 1.0])
    lower, upper = np.array([100, 250, 300, 306]), np.array([280, 320, 310, 306])
    scores = forecast_scores(p, lower, upper, 306, True, num_draws=100)
    assert scores["brier"] == pytest.approx(np.mean((p - 1) ** 2))
    assert scores["log_score"] == pytest.approx(np.mean(np.log([0.2, 0.6, 0.995, 0.995])))
    assert scores["coverage"] == pytest.approx(0.75)  # all but [100, 280]
    assert scores["called_at"] == 3 and scores["wrong_calls"] == 0
    se = np.array([0.01, 0.02, 0.0, 0.0])
    with_se = forecast_scores(p, lower, upper, 306, True, num_draws=100, p_win_se=se)
    assert with_se["brier_se"] == pytest.approx(np.sqrt(4 * 0.8**2 * 0.01**2 + 4 * 0.4**2 * 0.02**2) / 4)
    assert with_se["log_score_se"] == pytest.approx(np.sqrt((0.01 / 0.2) ** 2 + (0.02 / 0.6) ** 2) / 4)
    lost = forecast_scores(p, lower, upper, 250, False, num_draws=100)
    assert lost["called_at"] is None and lost["wrong_calls"] == 2
    assert lost["log_score"] == pytest.approx(np.mean(np.log([0.8, 0.4, 0.005, 0.005])))


def test_swing_offset_uses_the_previous_county_shares():
    before, after = load_year(2000), load_year(2004)
    offset = swing_offset(before, after)
    assert offset.shape == (len(after.fips),) and torch.isfinite(offset).all()
    i_after, i_before = after.fips.index("01001"), before.fips.index("01001")
    share = (before.y[i_before] + 0.5) / (before.N[i_before] + 1)
    assert offset[i_after].item() == pytest.approx(math.log(share / (1 - share)))
    broomfield = after.fips.index("08014")  # no result in 2000: Colorado's 2000 share
    colorado = before.s == before.state_names.index("COLORADO")
    share = (before.y[colorado].sum() + 0.5) / (before.N[colorado].sum() + 1)
    assert offset[broomfield].item() == pytest.approx(math.log(share / (1 - share)))


def test_kept_draws_merge_chains():
    draws = {"global_beta": torch.arange(2 * 3 * 5 * 1, dtype=F64).reshape(2, 3, 5, 1),
             "local_betas": torch.zeros(2, 3, 5, 4, 1), "lp": torch.zeros(2, 3, 5)}
    kept = kept_draws(draws, 1, chains=True)
    assert kept["global_beta"].shape == (2, 9, 1) and kept["local_betas"].shape == (2, 9, 4, 1)
    assert kept["global_beta"][0, :3, 0].tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="burn"):
        kept_draws(draws, 4, chains=True)


# ------------------------------------------------------------------- bad inputs
def test_bad_orders_and_electors_raise(year2020):
    names = year2020.state_names
    with pytest.raises(ValueError, match="missing"):
        check_state_order(STATE_ORDER[:-1], names)
    with pytest.raises(ValueError, match="unknown"):
        check_state_order([*STATE_ORDER[:-1], "ALASKA"], names)
    with pytest.raises(ValueError, match="more than once"):
        check_state_order([*STATE_ORDER[:-1], "INDIANA"], names)
    with pytest.raises(TypeError):
        check_state_order("INDIANA", names)
    with pytest.raises(ValueError, match="unknown"):
        reveal_masks(year2020.s, names, order=[*STATE_ORDER[:-1], "Arizona"])
    with pytest.raises(ValueError, match="no entry"):
        electors_per_state(names, {k: v for k, v in ELECTORS.items() if k != "OHIO"})
    with pytest.raises(ValueError, match="not in state_names"):
        electors_per_state(names, {**ELECTORS, "ALASKA": 3})
    with pytest.raises(ValueError, match="positive integers"):
        electors_per_state(names, {**ELECTORS, "OHIO": 0})
    with pytest.raises(ValueError, match="state codes"):
        reveal_masks(torch.tensor([0, 50]), names)


def test_bad_masks_and_shapes_raise(year2020, generator):
    r = year2020
    masks = reveal_masks(r.s, r.state_names)
    mu = torch.zeros(r.X.shape[1], dtype=F64)
    with pytest.raises(TypeError, match="bool"):
        fit_needle(r, masks.double(), mu, num_iters=1)
    with pytest.raises(ValueError, match="num_counties"):
        fit_needle(r, masks[:, :-1], mu, num_iters=1)
    with pytest.raises(ValueError, match="num_stamps"):
        fit_needle(r, masks[0], mu, num_iters=1)
    with pytest.raises(ValueError, match="prior_mean"):
        fit_needle(r, masks, mu[:-1], num_iters=1)
    with pytest.raises(ValueError, match="dispersion"):
        fit_needle(r, masks, mu, dispersion=-0.1, num_iters=1)
    with pytest.raises(ValueError, match="num_iters"):
        fit_needle(r, masks, mu, num_iters=0)
    with pytest.raises(TypeError, match="Responses"):
        fit_needle(r.y, masks, mu, num_iters=1)
    electors = electors_per_state(r.state_names)
    betas = torch.zeros(50, 2, 50, r.X.shape[1], dtype=F64)
    with pytest.raises(ValueError, match="local_betas"):
        predict_electors(betas[..., :-1], r.X, r.s, r.y, r.N, masks, electors)
    with pytest.raises(ValueError, match="revealed"):
        predict_electors(betas, r.X, r.s, r.y, r.N, masks[:10], electors)
    with pytest.raises(ValueError, match="num_counties"):
        predict_electors(betas, r.X, r.s, r.y[:-1], r.N, masks, electors)
    with pytest.raises(ValueError, match="y <= N"):
        predict_electors(betas, r.X, r.s, r.N + 1, r.N, masks, electors)
    forecast = predict_electors(betas[:2], r.X, r.s, r.y, r.N, masks[:2], electors, generator=generator)
    with pytest.raises(ValueError, match="order names"):
        summarize_needle(forecast, order=STATE_ORDER)
    with pytest.raises(ValueError, match="multiple"):
        summarize_needle(forecast, order=None, num_chains=3)
    with pytest.raises(ValueError, match="same length"):
        forecast_scores(np.array([0.5, 0.5]), np.array([1]), np.array([2, 3]), 300, True, num_draws=10)
