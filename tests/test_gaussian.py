"""The shared Gaussian conditional in information form."""

from __future__ import annotations

import math

import pytest
import torch

from bayesglm.gaussian import gaussian_information_moments, sample_gaussian_information


def _random_precision(dim: int, generator: torch.Generator) -> torch.Tensor:
    A = torch.randn(dim, dim, dtype=torch.float64, generator=generator)
    return A @ A.T + dim * torch.eye(dim, dtype=torch.float64)


def test_moments_are_closed_form(generator):
    J = _random_precision(3, generator)
    h = torch.randn(3, dtype=torch.float64, generator=generator)
    mean, cov = gaussian_information_moments(J, h)
    torch.testing.assert_close(mean, torch.linalg.solve(J, h))
    torch.testing.assert_close(cov, torch.linalg.inv(J))


def test_draws_have_the_right_mean_and_covariance(generator):
    J = _random_precision(3, generator)
    h = torch.randn(3, dtype=torch.float64, generator=generator)
    n = 100_000
    draws = sample_gaussian_information(J.expand(n, 3, 3), h.expand(n, 3), generator=generator)
    mean, cov = gaussian_information_moments(J, h)
    sd = cov.diagonal().sqrt()
    # Sample mean: standard error sd / sqrt(n). Sample covariance entry (i, j):
    # standard error sqrt((cov_ii cov_jj + cov_ij^2) / n) for a Gaussian.
    assert ((draws.mean(0) - mean).abs() < 5 * sd / math.sqrt(n)).all()
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    assert ((torch.cov(draws.T) - cov).abs() < 5 * se_cov).all()


def test_batched_draws_use_their_own_parameters(generator):
    J = torch.stack([torch.eye(2, dtype=torch.float64) * 1e6, torch.eye(2, dtype=torch.float64) * 1e6])
    h = torch.tensor([[1e6, 2e6], [-3e6, 0.0]], dtype=torch.float64)  # means (1, 2) and (-3, 0)
    draws = sample_gaussian_information(J, h, generator=generator)
    torch.testing.assert_close(draws, torch.tensor([[1.0, 2.0], [-3.0, 0.0]], dtype=torch.float64), atol=0.01, rtol=0)


def test_not_positive_definite_is_a_clear_error():
    J = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="positive definite"):
        sample_gaussian_information(J, torch.zeros(2, dtype=torch.float64))
