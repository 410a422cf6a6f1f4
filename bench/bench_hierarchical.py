"""Seconds per Gibbs iteration of the hierarchical GLM on the 2016 data.

Compares, in the same run and from the same (burnt-in) state:

- ``batched``: ``HierarchicalBinomialGLM.gibbs`` (all states at once, one batched
  Cholesky, the package's ``sample_pg``);
- ``loop``: the straightforward sampler that the assignment's skeleton suggests,
  a Python loop over the 50 states that draws each state's Pólya-gamma variables
  with the truncated-series ``sample_pg_naive`` and then solves for that state's
  weights, followed by the same global update;

and reports the Needle-sized batch (T = 50 time stamps x 4 chains in one call)
with the share of the time spent drawing Pólya-gamma variables.

Run by hand: ``python bench/bench_hierarchical.py`` (writes bench/results/hierarchical.json).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import _record  # bench/_record.py: machine facts and where results go
from bayesglm.data import load_year
from bayesglm.gaussian import sample_gaussian_information
from bayesglm.hierarchical import HierarchicalBinomialGLM
from bayesglm.polyagamma import sample_pg, sample_pg_naive



def loop_gibbs(model, s, y, N, X, global_beta, local_betas, num_iters, generator):
    """The baseline: one state at a time, naive PG draws, one Cholesky per state."""
    S, p = local_betas.shape
    nu2 = model.dispersion**2
    eye = torch.eye(p, dtype=torch.float64)
    prior_precision = torch.linalg.inv(model.prior_cov.double())
    members = [(s == state).nonzero().squeeze(-1) for state in range(S)]
    for _ in range(num_iters):
        new_local = torch.empty_like(local_betas)
        for state in range(S):
            idx = members[state]
            Xs, ys, Ns = X[idx], y[idx], N[idx]
            omega = sample_pg_naive(Ns, Xs @ local_betas[state], generator=generator)
            J = eye / nu2 + (Xs.T * omega) @ Xs
            h = global_beta / nu2 + Xs.T @ (ys - Ns / 2)
            new_local[state] = sample_gaussian_information(J, h, generator=generator)
        local_betas = new_local
        J0 = prior_precision + S / nu2 * eye
        h0 = prior_precision @ model.prior_mean.double() + local_betas.sum(0) / nu2
        global_beta = sample_gaussian_information(J0, h0, generator=generator)
        model.log_prob(s, y, N, X, local_betas, global_beta)  # the skeleton records the log joint too
    return global_beta, local_betas


def timed(fn, repeats):
    """Median over repeats of (wall seconds, CPU seconds of this process).

    CPU time is what we compare: with one thread it equals the wall time on an
    idle machine, and it is not inflated by other processes on a shared one.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=100, help="Gibbs iterations per timing (single chain)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--needle-iters", type=int, default=5, help="iterations for the (50 x 4)-batch timing")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_year(2016)
    s, y, N, X = data.s, data.y, data.N, data.X
    n, p = X.shape
    S = len(data.state_names)
    model = HierarchicalBinomialGLM(S, torch.zeros(p), torch.eye(p), 0.1)
    gen = torch.Generator().manual_seed(0)

    # a burnt-in state, so that both samplers see realistic Pólya-gamma parameters
    warm = model.gibbs(s, y, N, X, torch.zeros(p), 30, progress=False, generator=gen)
    beta0, local = warm["global_beta"][-1], warm["local_betas"][-1]

    def batched():
        model.gibbs(s, y, N, X, beta0, args.iters, progress=False, generator=gen)

    def loop():
        loop_gibbs(model, s, y, N, X, beta0, local, args.iters, gen)

    batched_wall, batched_cpu = (x / args.iters for x in timed(batched, args.repeats))
    loop_wall, loop_cpu = (x / args.iters for x in timed(loop, args.repeats))

    # The Needle's batch: T = 50 time stamps (states revealed one by one) x 4 chains.
    T, C = 50, 4
    order = torch.randperm(S, generator=torch.Generator().manual_seed(1))
    reveal_time = torch.empty(S, dtype=torch.long)
    reveal_time[order] = torch.arange(S)
    revealed = reveal_time[s][None, :] <= torch.arange(T)[:, None]  # (T, n)
    Y, NN = torch.where(revealed, y, 0.0), torch.where(revealed, N, 0.0)
    init = beta0.expand(T, C, p)
    needle_wall, needle_cpu = (
        x / args.needle_iters
        for x in timed(
            lambda: model.gibbs(s, Y, NN, X, init, args.needle_iters, num_chains=C, progress=False, generator=gen),
            args.repeats,
        )
    )
    psi = (local[s] * X).sum(-1)
    NN4 = NN[:, None].expand(T, C, n)
    pg_needle_cpu = timed(lambda: sample_pg(NN4, psi.expand(T, C, n), generator=gen), args.repeats)[1]
    pg_single_cpu = timed(lambda: sample_pg(N, psi, generator=gen), 5)[1]

    rows = {
        "loop_naive_s_per_iter": loop_cpu,
        "batched_s_per_iter": batched_cpu,
        "speedup": loop_cpu / batched_cpu,
        "batched_pg_s_per_iter": pg_single_cpu,
        "needle_batch": f"{T} stamps x {C} chains",
        "needle_s_per_iter": needle_cpu,
        "needle_pg_s_per_iter": pg_needle_cpu,
        "needle_pg_share": pg_needle_cpu / needle_cpu,
        "wall_s_per_iter": {"loop_naive": loop_wall, "batched": batched_wall, "needle": needle_wall},
    }
    print(f"2016 data: n = {n} counties, p = {p}, S = {S} states, nu = 0.1, {args.threads} thread(s)")
    print(f"{'sampler (CPU seconds per Gibbs iteration)':<46}{'s / iter':>10}{'wall':>10}")
    print(f"{'loop over states + sample_pg_naive':<46}{loop_cpu:>10.4f}{loop_wall:>10.4f}")
    print(f"{'batched (HierarchicalBinomialGLM.gibbs)':<46}{batched_cpu:>10.4f}{batched_wall:>10.4f}")
    print(f"{'  of which sample_pg':<46}{pg_single_cpu:>10.4f}")
    print(f"{'speed-up':<46}{loop_cpu / batched_cpu:>9.1f}x")
    print(f"{'Needle batch (50 stamps x 4 chains)':<46}{needle_cpu:>10.4f}{needle_wall:>10.4f}")
    print(f"{'  of which sample_pg':<46}{pg_needle_cpu:>10.4f}  ({100 * pg_needle_cpu / needle_cpu:.0f}%)")

    record = {
        "benchmark": "hierarchical GLM, seconds per Gibbs iteration, 2016 data (nu = 0.1)",
        "command": "python bench/bench_hierarchical.py",
        "date": _record.now(),
        "machine": _record.machine(threads=args.threads),
        "settings": {"iters": args.iters, "repeats": args.repeats, "needle_iters": args.needle_iters},
        "results": rows,
    }
    _record.write("hierarchical", record)


if __name__ == "__main__":
    main()
