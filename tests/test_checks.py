"""Deviance residuals of the binomial GLM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

from bayesglm.checks import deviance_residuals, total_deviance

F64 = torch.float64


def _closed_form(y: float, N: float, p: float) -> float:
    """The residual of one interior point (0 < y < N), straight from the formula."""
    inner = y * math.log(y / (N * p)) + (N - y) * math.log((N - y) / (N * (1 - p)))
    return math.copysign(math.sqrt(2 * inner), y - N * p)


def test_interior_points_match_the_formula():
    y = torch.tensor([3.0, 40.0, 7.0, 5123.0], dtype=F64)
    N = torch.tensor([10.0, 50.0, 7.5 * 2, 10_000.0], dtype=F64)
    p = torch.tensor([0.5, 0.9, 0.2, 0.51], dtype=F64)
    expected = torch.tensor([_closed_form(*args) for args in zip(y.tolist(), N.tolist(), p.tolist())], dtype=F64)
    torch.testing.assert_close(deviance_residuals(y, N, p), expected, rtol=1e-12, atol=0)


def test_boundaries_are_finite_with_the_right_sign():
    N = torch.tensor([20.0, 20.0, 1.0, 1.0], dtype=F64)
    y = torch.tensor([0.0, 20.0, 0.0, 1.0], dtype=F64)
    p = torch.tensor([0.3, 0.3, 0.6, 0.6], dtype=F64)
    r = deviance_residuals(y, N, p)
    assert torch.isfinite(r).all()
    assert (torch.sign(r) == torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=F64)).all()
    # y = 0: only the failure term survives, 2 N log(1 / (1 - p)); y = N: 2 N log(1 / p).
    expected = torch.tensor(
        [-math.sqrt(-40 * math.log(0.7)), math.sqrt(-40 * math.log(0.3)),
         -math.sqrt(-2 * math.log(0.4)), math.sqrt(-2 * math.log(0.6))],
        dtype=F64,
    )
    torch.testing.assert_close(r, expected, rtol=1e-12, atol=0)


def test_a_perfect_fit_has_zero_residuals_and_no_trials_count_zero():
    y = torch.tensor([0.0, 3.0, 12.0], dtype=F64)
    N = torch.tensor([0.0, 12.0, 48.0], dtype=F64)
    p = torch.tensor([0.5, 0.25, 0.25], dtype=F64)
    torch.testing.assert_close(deviance_residuals(y, N, p), torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)


def test_sum_of_squares_is_twice_the_log_likelihood_gap(generator):
    # Independent computation with scipy: saturated model p_i = y_i / N_i (binom handles p = 0 and 1).
    N = torch.randint(0, 200, (500,), generator=generator).to(F64)
    p = torch.rand(500, generator=generator, dtype=F64).clamp(0.01, 0.99)
    y = torch.floor(torch.rand(500, generator=generator, dtype=F64) * (N + 1))  # includes y = 0 and y = N
    assert ((y == 0) & (N > 0)).any() and ((y == N) & (N > 0)).any()
    yn, Nn, pn = y.numpy(), N.numpy(), p.numpy()
    saturated = binom.logpmf(yn, Nn, np.divide(yn, Nn, out=np.zeros_like(yn), where=Nn > 0)).sum()
    model = binom.logpmf(yn, Nn, pn).sum()
    r = deviance_residuals(y, N, p)
    assert math.isclose((r**2).sum().item(), 2 * (saturated - model), rel_tol=1e-10)
    assert math.isclose(total_deviance(y, N, p).item(), 2 * (saturated - model), rel_tol=1e-10)


def test_a_batch_of_probabilities_gives_a_batch_of_residuals(generator):
    y = torch.tensor([1.0, 5.0, 9.0], dtype=F64)
    N = torch.tensor([10.0, 10.0, 10.0], dtype=F64)
    p = torch.rand(4, 3, generator=generator, dtype=F64).clamp(0.05, 0.95)  # e.g. 4 posterior draws
    r = deviance_residuals(y, N, p)
    assert r.shape == (4, 3)
    for row in range(4):
        torch.testing.assert_close(r[row], deviance_residuals(y, N, p[row]))
    assert total_deviance(y, N, p).shape == (4,)


@pytest.mark.parametrize(
    ("y", "N", "p", "message"),
    [
        ([1.0], [2.0], [0.0], "strictly between 0 and 1"),
        ([1.0], [2.0], [1.0], "strictly between 0 and 1"),
        ([1.0], [2.0], [1.5], "strictly between 0 and 1"),
        ([1.0], [2.0], [float("nan")], "strictly between 0 and 1"),
        ([3.0], [2.0], [0.5], "must not exceed N"),
        ([-1.0], [2.0], [0.5], "non-negative"),
        ([1.0], [float("nan")], [0.5], "finite"),
        ([1.0, 1.0], [2.0, 2.0, 2.0], [0.5], "broadcast"),
    ],
)
def test_bad_inputs_are_clear_errors(y, N, p, message):
    with pytest.raises(ValueError, match=message):
        deviance_residuals(torch.tensor(y), torch.tensor(N), torch.tensor(p))


def test_non_tensors_are_refused():
    with pytest.raises(TypeError, match="p must be a torch.Tensor"):
        deviance_residuals(torch.ones(2), torch.ones(2), [0.5, 0.5])
