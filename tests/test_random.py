"""Gamma draws with a generator: moments, small shapes, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from bayesglm.random import standard_gamma


@pytest.mark.parametrize("shape", [0.3, 1.0, 2.5, 40.0, 1e5])
def test_gamma_moments(shape, generator):
    n = 200_000
    draws = standard_gamma(torch.full((n,), shape, dtype=torch.float64), generator=generator)
    # Ga(a, 1): mean a, variance a; the sample mean has standard error sqrt(a / n).
    assert abs(draws.mean().item() - shape) < 5 * math.sqrt(shape / n)
    # The sample variance has standard error sqrt((mu4 - sigma^4) / n), mu4 = 3a^2 + 6a.
    se_var = math.sqrt((3 * shape**2 + 6 * shape - shape**2) / n)
    assert abs(draws.var().item() - shape) < 5 * se_var


@pytest.mark.parametrize("shape", [0.5, 3.0])
def test_gamma_distribution_ks(shape, generator):
    draws = standard_gamma(torch.full((20_000,), shape, dtype=torch.float64), generator=generator)
    assert stats.kstest(draws.numpy(), stats.gamma(shape).cdf).pvalue > 1e-3


def test_zero_shape_gives_zero_and_shapes_mix(generator):
    a = torch.tensor([0.0, 0.5, 0.0, 7.0], dtype=torch.float64)
    draws = standard_gamma(a, generator=generator)
    assert draws[0] == 0 and draws[2] == 0 and (draws[[1, 3]] > 0).all()


def test_reproducible_with_generator():
    a = torch.full((1000,), 2.0)
    first = standard_gamma(a, generator=torch.Generator().manual_seed(3))
    second = standard_gamma(a, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert first.dtype == torch.float32
