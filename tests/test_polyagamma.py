"""Pólya-gamma moments, samplers and reference CDF/density.

Statistical tolerances are Monte Carlo standard errors: a sample mean of n draws has
SE = sqrt(Var/n); a sample variance has SE = sqrt((kappa_4 + 2 kappa_2^2)/n) (the variance of
(w - mu)^2 is mu_4 - sigma^4 = kappa_4 + 2 kappa_2^2). Checks allow 5 SEs, so a correct sampler
fails one of them with probability ~1e-6; every seed is fixed, so the outcome is deterministic.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from bayesglm.polyagamma import (
    APPROX_KS_BOUND,
    APPROX_KS_CONSTANT,
    B_EXACT,
    pg_cdf,
    pg_cumulants,
    pg_mean,
    pg_pdf,
    pg_variance,
    sample_pg,
    sample_pg_naive,
)

SE = 5.0  # tolerance in Monte Carlo standard errors


def series_cumulants(b: float, c: float, order: int = 4, terms: int = 2_000_000) -> list[float]:
    """kappa_n = b (n-1)! sum_k (2 pi^2 d_k)^-n by brute force (the mean's tail, ~ 1/(2 pi^2 K), added)."""
    k = np.arange(1, terms + 1, dtype=np.float64)
    w = 1 / (2 * np.pi**2 * ((k - 0.5) ** 2 + c**2 / (4 * np.pi**2)))
    kappas = [b * math.factorial(n - 1) * np.sum(w**n) for n in range(1, order + 1)]
    kappas[0] += b / (2 * np.pi**2 * terms)
    return kappas


@functools.lru_cache(maxsize=None)
def exact_cdf_table(b: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact CDF on a fine grid (linear interpolation error below 1e-5)."""
    mean, var = pg_mean(b, c).item(), pg_variance(b, c).item()
    grid = np.linspace(0.0, mean + 30 * math.sqrt(var), 3001)
    return grid, pg_cdf(torch.from_numpy(grid), b, c, tol=1e-13).numpy()


def exact_cdf(b: float, c: float):
    grid, values = exact_cdf_table(float(b), float(c))
    return lambda x: np.interp(x, grid, values)


def density(w: float, b: float, c: float) -> float:
    return float(pg_pdf(torch.tensor([w], dtype=torch.float64), b, c)[0])


def draws(b: float, c: float, n: int, seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    shape = torch.full((n,), float(b), dtype=torch.float64)
    return sample_pg(shape, torch.full((n,), float(c), dtype=torch.float64), generator=generator).numpy()


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("c", [0.0, 1e-6, 0.3, 0.79, 0.81, 2.0, 7.0, 20.0, 50.0, 1000.0])
def test_cumulants_agree_with_series_sums(c):
    k1, k2, k3 = (k.item() for k in pg_cumulants(torch.tensor(1.0, dtype=torch.float64), c))
    s1, s2, s3, _ = series_cumulants(1.0, c)
    assert k1 == pytest.approx(s1, rel=1e-9)  # the brute-force mean's tail correction is O(K^-3) off
    assert k2 == pytest.approx(s2, rel=1e-12)
    assert k3 == pytest.approx(s3, rel=1e-12)


def test_cumulants_at_zero_tilt():
    k1, k2, k3 = pg_cumulants(torch.tensor([3.0], dtype=torch.float64), 0.0)
    assert k1.item() == pytest.approx(3 / 4, rel=1e-15)
    assert k2.item() == pytest.approx(3 / 24, rel=1e-15)
    assert k3.item() == pytest.approx(3 / 60, rel=1e-15)


def test_moments_continuous_across_the_series_switch():
    # the Taylor series replaces the closed forms at |c| = 0.8
    c = torch.tensor([0.8 - 1e-13, 0.8 + 1e-13], dtype=torch.float64)
    for k in pg_cumulants(torch.ones(2, dtype=torch.float64), c):
        assert k[0].item() == pytest.approx(k[1].item(), rel=1e-13)


def test_moments_symmetric_in_c():
    c = torch.linspace(0, 60, 121, dtype=torch.float64)
    b = torch.full_like(c, 7.0)
    assert torch.equal(pg_mean(b, c), pg_mean(b, -c))
    assert torch.equal(pg_variance(b, c), pg_variance(b, -c))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_moments_stable_for_large_tilt(dtype):
    c = torch.tensor([-1e3, 1e3, 500.0], dtype=dtype)
    b = torch.tensor([2.0, 2.0, 1e6], dtype=dtype)
    mean, var = pg_mean(b, c), pg_variance(b, c)
    assert mean.dtype == var.dtype == dtype
    # tanh(c/2) = 1 and sech^2(c/2) = 0 to double precision here: mean = b/(2|c|), var = b/(2|c|^3)
    assert torch.allclose(mean.double(), b.double() / (2 * c.double().abs()), rtol=1e-6)
    assert torch.allclose(var.double(), b.double() / (2 * c.double().abs() ** 3), rtol=1e-6)


def test_moments_float32_near_zero_tilt():
    c = torch.tensor([0.0, 1e-4, 0.5, 0.9], dtype=torch.float32)
    var = pg_variance(torch.ones(4, dtype=torch.float32), c)
    expected = pg_variance(torch.ones(4, dtype=torch.float64), c.double())
    assert var.dtype == torch.float32
    assert torch.allclose(var.double(), expected, rtol=1e-6)


# ----------------------------------------------------------------------------- reference CDF and density


@pytest.mark.parametrize(("b", "c"), [(1.0, 0.0), (1.0, 2.5), (3.0, 1.0)])
def test_fourier_cdf_agrees_with_integrated_series_density(b, c):
    mean = pg_mean(b, c).item()
    for x in (0.3 * mean, mean, 2.5 * mean):
        integral, _ = integrate.quad(density, 0, x, args=(b, c), epsabs=1e-13, limit=200)
        assert pg_cdf(torch.tensor([x], dtype=torch.float64), b, c).item() == pytest.approx(integral, abs=1e-10)


def test_series_density_integrates_to_one_with_the_right_mean():
    total, _ = integrate.quad(density, 0, 8, args=(1.0, 0.0), limit=200)
    mean, _ = integrate.quad(lambda w: w * density(w, 1.0, 0.0), 0, 8, limit=200)
    assert total == pytest.approx(1.0, abs=1e-9)
    assert mean == pytest.approx(0.25, abs=1e-9)


# ----------------------------------------------------------------------------- samplers: moments


@pytest.mark.parametrize("b", [0.3, 1.0, 2.5, 3.0, float(B_EXACT), B_EXACT + 1.0, 100.0, 2016.0, 1e4, 1e6])
def test_sample_moments_match_closed_forms(b):
    cs = [0.0, 0.5, 3.0, 10.0, 50.0]
    n = 20_000
    generator = torch.Generator().manual_seed(int(b * 10) + 1)
    c = torch.tensor(cs, dtype=torch.float64).repeat_interleave(n).reshape(len(cs), n)
    w = sample_pg(torch.full_like(c, b), c, generator=generator)
    for row, ci in enumerate(cs):
        k1, k2, _, k4 = series_cumulants(b, ci, terms=200_000)
        mean_se = math.sqrt(k2 / n)
        var_se = math.sqrt((k4 + 2 * k2**2) / n)
        assert abs(w[row].mean().item() - k1) < SE * mean_se, (b, ci)
        assert abs(w[row].var().item() - k2) < SE * var_se, (b, ci)


def test_gamma_step_on_the_torch_path():
    # the code path CUDA tensors take (here on CPU): Marsaglia-Tsang with torch arithmetic
    from bayesglm.polyagamma import _gamma_large

    n = 50_000
    for alpha in (1.5, 17.7, 3e5):
        shape = torch.full((n,), alpha, dtype=torch.float64)
        g = _gamma_large(shape, torch.Generator().manual_seed(8), shape.device)
        assert isinstance(g, torch.Tensor) and g.dtype == torch.float64
        assert abs(g.mean().item() - alpha) < SE * math.sqrt(alpha / n)
        assert abs(g.var().item() - alpha) < SE * math.sqrt((6 * alpha + 2 * alpha**2) / n)


def test_gamma_step_silent_when_a_uniform_is_zero(monkeypatch):
    # float32 uniforms are exactly 0 with probability 2^-24: log(0) = -inf must accept without a warning
    from bayesglm.polyagamma import _gamma_large

    rand = torch.rand
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: 0 * rand(*args, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = _gamma_large(np.full(100, 50.0), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert np.all(np.isfinite(g)) and np.all(g > 0)


def test_zero_shape_gives_exact_zeros():
    b = torch.tensor([0.0, 1.0, 0.0, 20.0, 0.0, 2.5], dtype=torch.float64)
    c = torch.tensor([1.0, 1.0, -4.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    w = sample_pg(b, c, generator=torch.Generator().manual_seed(0))
    assert torch.all(w[b == 0] == 0)
    assert torch.all(w[b > 0] > 0)
    assert torch.all(sample_pg(torch.zeros(5), torch.ones(5)) == 0)
    assert torch.all(sample_pg_naive(torch.zeros(5), torch.ones(5)) == 0)


# ----------------------------------------------------------------------------- samplers: distribution


@pytest.mark.parametrize("c", [0.0, 1.5, 3.2, 10.0, 50.0])
def test_exact_sampler_pg1_kolmogorov_smirnov(c):
    # c = 3.2 puts |c|/2 just above 1/t: the other truncated-IG proposal
    x = draws(1.0, c, 20_000, seed=11)
    assert stats.kstest(x, exact_cdf(1.0, c)).pvalue > 1e-3


@pytest.mark.parametrize(("b", "c"), [(3.0, 2.0), (float(B_EXACT), 6.0)])
def test_exact_sampler_integer_b_kolmogorov_smirnov(b, c):
    x = draws(b, c, 20_000, seed=12)
    assert stats.kstest(x, exact_cdf(b, c)).pvalue > 1e-3


def test_fractional_b_kolmogorov_smirnov():
    x = draws(2.5, 1.0, 20_000, seed=13)
    assert stats.kstest(x, exact_cdf(2.5, 1.0)).pvalue > 1e-3


def shifted_gamma_cdf(b: float, c: float):
    k1, k2, k3 = (k.item() for k in pg_cumulants(torch.tensor(b, dtype=torch.float64), c))
    theta = k3 / (2 * k2)
    alpha = k2 / theta**2
    return lambda x: stats.gamma.cdf((np.asarray(x) - (k1 - alpha * theta)) / theta, alpha)


@pytest.mark.parametrize(
    ("b", "c"), [(B_EXACT + 1.0, 0.0), (B_EXACT + 1.0, 6.8), (B_EXACT + 1.0, 50.0), (100.0, 7.0), (1e4, 7.0)]
)
def test_approximation_error_within_documented_bound(b, c):
    grid, exact = exact_cdf_table(b, c)
    distance = np.max(np.abs(shifted_gamma_cdf(b, c)(grid) - exact))
    assert distance < APPROX_KS_BOUND
    assert b * distance < APPROX_KS_CONSTANT  # the documented O(1/b) behaviour
    if c == 6.8 and b == B_EXACT + 1:
        assert distance > 0.95 * APPROX_KS_BOUND  # the worst case: the bound is tight


@pytest.mark.parametrize("backend", [np, torch])
def test_sampler_parameters_match_the_cumulants(backend):
    # the sampler's own (cancellation-free, series below |c| = 0.1) formulas for theta, alpha, shift
    from bayesglm.polyagamma import _shifted_gamma_parameters

    c = torch.tensor([0.0, 1e-8, 0.05, 0.0999, 0.1001, 0.5, 3.0, 7.0, 50.0, -1e3], dtype=torch.float64)
    b = torch.full_like(c, 100.0)
    args = (b.numpy(), c.numpy()) if backend is np else (b, c)
    theta, alpha, shift = (torch.as_tensor(x) for x in _shifted_gamma_parameters(*args, backend))
    k1, k2, k3 = pg_cumulants(b, c)
    expected_theta = k3 / (2 * k2)
    expected_alpha = k2 / expected_theta**2
    assert torch.allclose(theta, expected_theta, rtol=1e-10, atol=0)
    assert torch.allclose(alpha, expected_alpha, rtol=1e-10, atol=0)
    assert torch.allclose(shift, k1 - expected_alpha * expected_theta, rtol=0, atol=1e-10 * k1.max().item())
    assert torch.all(shift >= 0)


def test_approximation_sampler_draws_the_shifted_gamma():
    b, c = B_EXACT + 1.0, 6.0
    x = draws(b, c, 200_000, seed=14)
    assert stats.kstest(x, shifted_gamma_cdf(b, c)).pvalue > 1e-3
    assert stats.kstest(x[:20_000], exact_cdf(b, c)).pvalue > 1e-3


def test_homework_sized_counts_against_exact_cdf():
    x = draws(2016.0, -1.3, 20_000, seed=15)
    assert stats.kstest(x, exact_cdf(2016.0, -1.3)).pvalue > 1e-3


# ----------------------------------------------------------------------------- the naive sampler's bias


def dropped_tail(b: float, c: float, trunc: int) -> float:
    """E[omega] minus the truncated series' mean: b/(2 pi^2) sum_{k > K} 1/d_k."""
    k = np.arange(1, trunc + 1)
    kept = b / (2 * np.pi**2) * np.sum(1 / ((k - 0.5) ** 2 + c**2 / (4 * np.pi**2)))
    return pg_mean(b, c).item() - kept


def test_naive_truncation_bias_is_the_dropped_tail():
    b, c, trunc, n = 1.0, 0.0, 10, 200_000
    tail = dropped_tail(b, c, trunc)
    assert tail == pytest.approx(b / (2 * np.pi**2 * trunc), rel=0.01)  # ~ b/(2 pi^2 K)
    ones = torch.ones(n, dtype=torch.float64)
    w = sample_pg_naive(ones, 0 * ones, trunc, generator=torch.Generator().manual_seed(3))
    se = math.sqrt(pg_variance(b, c).item() / n)
    assert abs(w.mean().item() - (pg_mean(b, c).item() - tail)) < SE * se
    assert pg_mean(b, c).item() - w.mean().item() > SE * se  # the bias is real and visible


def test_naive_default_truncation_bias_for_large_counts():
    b, c, n = 1e4, 1.0, 20_000
    tail = dropped_tail(b, c, 200)
    assert tail == pytest.approx(b / (2 * np.pi**2 * 200), rel=0.01)
    ones = torch.ones(n, dtype=torch.float64)
    w = sample_pg_naive(b * ones, c * ones, generator=torch.Generator().manual_seed(4))
    se = math.sqrt(pg_variance(b, c).item() / n)
    assert abs(w.mean().item() - (pg_mean(b, c).item() - tail)) < SE * se
    assert tail > 10 * se  # 17 standard errors of a 20,000-draw mean
    fast = draws(b, c, n, seed=5)
    assert abs(fast.mean() - pg_mean(b, c).item()) < SE * se


# ----------------------------------------------------------------------------- API behaviour


def test_broadcasting_shapes():
    b = torch.tensor([[1.0], [30.0], [0.0]], dtype=torch.float64)
    c = torch.tensor([0.0, 1.0, -2.0, 5.0], dtype=torch.float64)
    for sampler in (sample_pg, sample_pg_naive):
        assert sampler(b, c, generator=torch.Generator().manual_seed(0)).shape == (3, 4)
    assert pg_mean(b, c).shape == (3, 4)
    assert sample_pg(2.0, 1.0).shape == ()
    assert sample_pg(torch.ones(0), 1.0).shape == (0,)


def test_dtypes():
    b32, c32 = torch.full((50,), 3.0), torch.linspace(-5, 5, 50)
    assert sample_pg(b32, c32).dtype == torch.float32
    assert sample_pg(b32 * 100, c32).dtype == torch.float32
    assert sample_pg_naive(b32, c32).dtype == torch.float32
    assert pg_mean(b32, c32).dtype == torch.float32
    counts = torch.arange(1, 51)  # integer counts with a float64 tilt
    assert sample_pg(counts, c32.double()).dtype == torch.float64


def test_generator_reproducibility():
    b = torch.tensor([0.0, 1.0, 2.5, 7.0, 17.0, 2016.0, 1e6], dtype=torch.float64).repeat(100)
    c = torch.linspace(-20, 20, b.numel(), dtype=torch.float64)
    first = sample_pg(b, c, generator=torch.Generator().manual_seed(42))
    second = sample_pg(b, c, generator=torch.Generator().manual_seed(42))
    other = sample_pg(b, c, generator=torch.Generator().manual_seed(43))
    assert torch.equal(first, second)
    assert not torch.equal(first[b > 0], other[b > 0])
    naive = [sample_pg_naive(b[:50], c[:50], generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*naive)


@pytest.mark.parametrize(
    ("b", "c", "name"),
    [
        (-1.0, 0.0, "b"),
        (float("nan"), 0.0, "b"),
        (float("inf"), 0.0, "b"),
        (1.0, float("nan"), "c"),
        (1.0, float("-inf"), "c"),
        (1.0, 1e200, "c"),
        (1.0, 2e150, "c"),
    ],
)
def test_bad_inputs_raise(b, c, name):
    for function in (sample_pg, sample_pg_naive, pg_mean, pg_variance):
        with pytest.raises(ValueError, match=rf"^\|?{name}\|? "):
            function(torch.tensor([1.0, b], dtype=torch.float64), torch.tensor([0.5, c], dtype=torch.float64))


def test_bad_shapes_and_truncation_raise():
    with pytest.raises(ValueError, match="broadcast"):
        sample_pg(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="trunc"):
        sample_pg_naive(1.0, 0.0, trunc=0)
    with pytest.raises(ValueError, match="b must"):
        pg_cdf(torch.ones(2), -1.0, 0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda():
    generator = torch.Generator(device="cuda").manual_seed(0)
    b = torch.tensor([0.0, 1.0, 3.0, 2.5, 40.0, 2016.0], device="cuda").repeat(20_000)
    c = torch.full_like(b, 1.5)
    w = sample_pg(b, c, generator=generator)
    assert w.device.type == "cuda" and w.dtype == torch.float32
    for value in b.unique():
        mean = w[b == value].double().mean().item()
        target = pg_mean(value.item(), 1.5).item()
        assert abs(mean - target) < SE * math.sqrt(max(pg_variance(value.item(), 1.5).item(), 1e-300) / 20_000) + 1e-12
    with pytest.raises(ValueError, match="generator"):
        sample_pg(b, c, generator=torch.Generator())
