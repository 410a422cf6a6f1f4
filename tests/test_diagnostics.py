"""Split R-hat and ESS against cases with known answers."""

from __future__ import annotations

import pytest
import torch

from bayesglm.diagnostics import effective_sample_size, split_rhat, summarize_draws


def _ar1(rho: float, chains: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(chains, draws, dtype=torch.float64, generator=generator)
    x = torch.zeros_like(noise)
    x[:, 0] = noise[:, 0] / (1 - rho**2) ** 0.5  # start in the stationary distribution
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def test_independent_draws(generator):
    x = torch.randn(4, 2000, 2, dtype=torch.float64, generator=generator)
    assert (abs(split_rhat(x) - 1) < 0.01).all()
    ess = effective_sample_size(x)
    assert ((ess > 0.85 * 8000) & (ess < 1.15 * 8000)).all()


def test_ess_of_ar1_matches_its_integrated_autocorrelation(generator):
    # For AR(1), tau = (1 + rho) / (1 - rho): 8000 draws at rho = 0.8 are worth about 889.
    rho = 0.8
    x = _ar1(rho, 4, 2000, generator)
    expected = 8000 * (1 - rho) / (1 + rho)
    assert abs(effective_sample_size(x[..., None])[0] - expected) < 0.2 * expected


def test_rhat_flags_chains_that_disagree(generator):
    x = torch.randn(4, 1000, dtype=torch.float64, generator=generator)
    x[0] += 2.0
    assert split_rhat(x) > 1.1


def test_rhat_flags_a_trend_within_each_chain(generator):
    x = torch.randn(4, 1000, dtype=torch.float64, generator=generator) + torch.linspace(0, 4, 1000, dtype=torch.float64)
    assert split_rhat(x) > 1.1  # split halves disagree


def test_summary_table(generator):
    x = torch.randn(2, 100, 2, dtype=torch.float64, generator=generator)
    table = summarize_draws(x, ["a", "b"])
    assert list(table.index) == ["a", "b"]
    assert {"mean", "sd", "r_hat", "ess"} <= set(table.columns)
    with pytest.raises(ValueError, match="names"):
        summarize_draws(x, ["a"])
    with pytest.raises(ValueError, match="num_chains"):
        split_rhat(torch.randn(10))
