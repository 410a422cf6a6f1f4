"""Benchmark: Pólya-gamma draws per second, fast vs naive sampler vs the C library `polyagamma`.

Run by hand (never in CI):

    BAYESGLM_DATA_DIR=../shared/data python bench/bench_polyagamma.py

Workloads (3111 draws per call, one per county, as in one Gibbs sweep of the 2016 GLM):

- ``homework``: b = the 2016 two-party totals N_i, c = x_i^T beta at the posterior mode
  (Newton's method, N(0, I) prior) -- every b > 16, so sample_pg takes its shifted-gamma path;
- ``b=1``: b = 1, c ~ N(0, 2^2) -- the exact Devroye path, one PG(1, c) draw per entry;
- ``b=4``, ``b=16``: the exact path's cost grows with b (b PG(1, c) draws per entry);
- ``b=17``: the smallest b on the shifted-gamma path (compare with b=16 to see what B_EXACT costs).

Calls of the samplers are interleaved round by round (so that a busy machine slows all of them
alike), about one second of calls per sampler (at least 5, at most 2000), and the median time
per call is reported (the best one too). The `polyagamma` package (PyPI) is optional;
install it into the venv to compare (it is not a dependency of bayesglm). Writes
bench/results/polyagamma.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core for everything, like torch below

import random
import time

import numpy as np
import torch

import _record  # bench/_record.py: machine facts and where results go
from bayesglm.data import load_year
from bayesglm.polyagamma import APPROX_KS_BOUND, B_EXACT, sample_pg, sample_pg_naive

try:
    import polyagamma as pg_c
except ImportError:  # optional baseline
    pg_c = None



def posterior_mode(X: torch.Tensor, y: torch.Tensor, N: torch.Tensor, iters: int = 25) -> torch.Tensor:
    """MAP of the binomial GLM with a N(0, I) prior, by Newton's method."""
    beta = torch.zeros(X.shape[1], dtype=X.dtype)
    eye = torch.eye(X.shape[1], dtype=X.dtype)
    for _ in range(iters):
        p = torch.sigmoid(X @ beta)
        gradient = X.T @ (y - N * p) - beta
        hessian = X.T @ (X * (N * p * (1 - p))[:, None]) + eye
        beta = beta + torch.linalg.solve(hessian, gradient)
    return beta


def workloads() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    data = load_year(2016)
    c = data.X @ posterior_mode(data.X, data.y, data.N)
    n = data.N.numel()
    tilt = 2 * torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ones = torch.ones(n, dtype=torch.float64)
    return {
        "homework": (data.N.clone(), c),
        "b=1": (ones, tilt),
        "b=4": (4 * ones, tilt),
        "b=16": (16 * ones, tilt),
        "b=17": (17 * ones, tilt),
    }


def samplers(b: torch.Tensor, c: torch.Tensor) -> dict:
    generator = torch.Generator().manual_seed(1)
    found = {
        "fast": lambda: sample_pg(b, c, generator=generator),
        "naive": lambda: sample_pg_naive(b, c, generator=generator),
    }
    if pg_c is not None:
        rng = np.random.default_rng(1)
        b_np, c_np = b.numpy(), c.numpy()
        found["polyagamma"] = lambda: pg_c.random_polyagamma(b_np, c_np, random_state=rng)
    return found


def time_calls(functions: dict, budget_s: float = 1.0, max_calls: int = 2000) -> dict[str, dict[str, float]]:
    """Seconds per call (median and minimum), with the calls of the different functions interleaved.

    Each function gets about ``budget_s`` seconds of calls (at least 5, at most ``max_calls``).
    """
    calls = {}
    for name, function in functions.items():  # warm-up, and a first estimate of the time per call
        start = time.perf_counter()
        function()
        calls[name] = int(min(max_calls, max(5, budget_s / (time.perf_counter() - start))))
    times: dict[str, list[float]] = {name: [] for name in functions}
    order = list(functions)
    for r in range(max(calls.values())):
        random.Random(r).shuffle(order)
        for name in order:
            if r < calls[name]:
                start = time.perf_counter()
                functions[name]()
                times[name].append(time.perf_counter() - start)
    return {name: {"median": float(np.median(t)), "min": float(np.min(t)), "calls": len(t)} for name, t in times.items()}


def main() -> None:
    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results, speedups = {}, {}
    print("times per call: median and best; 'x' columns: how many times faster sample_pg is (median, best)")
    print(f"{'workload':>9} {'sampler':>11} {'median ms':>9} {'best ms':>9} {'draws/s':>12} {'x median':>9} {'x best':>9}")
    cases = workloads()
    for workload, (b, c) in cases.items():
        timings = time_calls(samplers(b, c))
        seconds = {name: t["median"] for name, t in timings.items()}
        row = {"b_min": float(b.min()), "b_max": float(b.max())}
        for name, t in timings.items():
            row[f"{name}_ms_per_call"] = round(1e3 * t["median"], 4)
            row[f"{name}_best_ms_per_call"] = round(1e3 * t["min"], 4)
            row[f"{name}_draws_per_second"] = round(b.numel() / t["median"])
            row[f"{name}_calls_timed"] = t["calls"]
        results[workload] = row
        for name, s in seconds.items():
            ratio = s / seconds["fast"]
            best = timings[name]["min"] / timings["fast"]["min"]
            print(f"{workload:>9} {name:>11} {1e3 * s:9.3f} {1e3 * timings[name]['min']:9.3f} "
                  f"{b.numel() / s:12.3g} {ratio:9.2f} {best:9.2f}")
            if name != "fast" and workload in ("homework", "b=1"):
                speedups[f"sample_pg vs {name} ({workload})"] = round(ratio, 3)
    record = {
        "benchmark": "Pólya-gamma draws per second, 3111 draws per call (one per county), median over about a second of interleaved calls",
        "command": "BAYESGLM_DATA_DIR=../shared/data python bench/bench_polyagamma.py",
        "date": _record.now(),
        "machine": _record.machine(
            threads=torch.get_num_threads(),
            openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS"),
            numpy=np.__version__,
            polyagamma=getattr(pg_c, "__version__", "not installed"),
            load_average_1min_at_start=load,
        ),
        "settings": {
            "draws_per_call": int(cases["homework"][0].numel()),
            "seconds_of_calls_per_sampler": 1.0,
            "max_calls_per_sampler": 2000,
            "naive_terms": 200,
            "B_EXACT": B_EXACT,
            "APPROX_KS_BOUND": APPROX_KS_BOUND,
        },
        "results": results,
        "speedups": speedups,
    }
    _record.write("polyagamma", record, indent=1)


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
