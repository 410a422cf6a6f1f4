"""The whole Needle (50 time stamps x 1000 Gibbs iterations + posterior prediction): batched vs sequential.

Compares, in the same run:

- ``batched``: ``bayesglm.needle`` as the notebook runs it: one
  ``HierarchicalBinomialGLM.gibbs`` call over all 50 time stamps (unrevealed counties
  masked with N = 0), then ``predict_electors`` on the kept draws of every stamp at
  once. Timed in full.
- ``sequential``: the straightforward programme the assignment's skeleton suggests:
  50 separate fits, each on the counties revealed so far, laid out like the
  skeleton's ``gibbs``: the truncated-series Pólya-gamma sampler ``sample_pg_naive``
  (200 terms) for the revealed counties, a Python loop over the 50 states for their
  weights, the global weights and the log joint every iteration; then for every stamp a loop over the kept
  draws that simulates the unrevealed counties. Far too slow to run in full, so it
  is *extrapolated*: a few Gibbs iterations are timed at a few stamps; the cost of
  an iteration is linear in the number of revealed counties (the PG draws) plus a
  constant (the state loop), fitted by least squares and summed over all 50 stamps
  x ``--iters`` iterations; likewise a few prediction draws are timed at a few
  stamps, the cost per draw fitted linearly in the number of unrevealed counties
  and summed over 50 stamps x the kept draws.

Both wall-clock and CPU (process) seconds are recorded: the machine is shared, and
CPU time is the fairer measure when other jobs compete for the two cores.

Run by hand: ``python bench/bench_needle.py`` (writes bench/results/needle.json).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import _record  # bench/_record.py: machine facts and where results go
from bayesglm.data import load_year
from bayesglm.gaussian import sample_gaussian_information
from bayesglm.hierarchical import HierarchicalBinomialGLM
from bayesglm.needle import (
    electors_per_state,
    fit_needle,
    kept_draws,
    predict_electors,
    reveal_masks,
)
from bayesglm.polyagamma import sample_pg_naive

F64 = torch.float64


def sequential_fit(model, s, y, N, X, num_iters, generator):
    """One stamp's fit, the way the assignment's skeleton lays it out, with naive PG draws.

    Per iteration: the Pólya-gamma draws of all revealed counties (``sample_pg_naive``, 200
    terms), then a Python loop over the 50 states for their weights, the global weights, and
    the log joint (the skeleton records it every iteration).
    """
    S, p = model.num_states, model.num_features
    nu2 = model.dispersion**2
    eye = torch.eye(p, dtype=F64)
    prior_precision = torch.linalg.inv(model.prior_cov)
    members = [(s == state).nonzero().squeeze(-1) for state in range(S)]
    global_beta = model.prior_mean.clone()
    local_betas = global_beta.expand(S, p).clone()
    draws = []
    for _ in range(num_iters):
        omegas = sample_pg_naive(N, (X * local_betas[s]).sum(-1), generator=generator)
        new_local = torch.empty_like(local_betas)
        for state in range(S):
            idx = members[state]
            Xs = X[idx]
            J = eye / nu2 + (Xs.T * omegas[idx]) @ Xs
            h = global_beta / nu2 + Xs.T @ (y[idx] - N[idx] / 2)
            new_local[state] = sample_gaussian_information(J, h, generator=generator)
        local_betas = new_local
        J0 = prior_precision + S / nu2 * eye
        h0 = prior_precision @ model.prior_mean + local_betas.sum(0) / nu2
        global_beta = sample_gaussian_information(J0, h0, generator=generator)
        model.log_prob(s, y, N, X, local_betas, global_beta)
        draws.append(local_betas)
    return torch.stack(draws)


def sequential_predict(local_draws, s, X, y, N, hidden, electors, generator):
    """One stamp's prediction, a loop over the posterior draws."""
    S = electors.shape[0]
    known = torch.zeros(S, dtype=F64).index_add_(0, s[~hidden], y[~hidden])
    total = torch.zeros(S, dtype=F64).index_add_(0, s, N)
    Xh, sh, Nh = X[hidden], s[hidden], N[hidden]
    dem_electors = []
    for beta in local_draws:
        prob = torch.sigmoid((Xh * beta[sh]).sum(-1))
        votes = torch.binomial(Nh, prob, generator=generator)
        dem = known + torch.zeros(S, dtype=F64).index_add_(0, sh, votes)
        dem_electors.append(int(electors[dem > total - dem].sum()))
    return dem_electors


class Clock:
    """Wall-clock and CPU (process) seconds of a block; CPU time is robust to other jobs on a shared machine."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def linear_extrapolation(sizes, seconds, all_sizes, repeats):
    """Least-squares line seconds ~ a + b * size through the measurements, summed over all_sizes x repeats."""
    A = np.stack([np.ones(len(sizes)), np.asarray(sizes, float)], 1)
    coef, *_ = np.linalg.lstsq(A, np.asarray(seconds, float), rcond=None)
    return float(repeats * np.sum(coef[0] + coef[1] * np.asarray(all_sizes, float))), coef.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=1000, help="Gibbs iterations per time stamp")
    parser.add_argument("--burn", type=int, default=200, help="burn-in draws dropped before prediction")
    parser.add_argument("--probe-iters", type=int, default=20, help="sequential Gibbs iterations timed per probe stamp")
    parser.add_argument("--probe-draws", type=int, default=50, help="sequential prediction draws timed per probe stamp")
    parser.add_argument("--probe-stamps", type=int, nargs="+", default=[1, 13, 26, 38, 50], help="1-based stamps to probe")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)

    data = load_year(2020)
    s, y, N, X = data.s, data.y, data.N, data.X
    S, p = len(data.state_names), X.shape[1]
    masks = reveal_masks(s, data.state_names)
    T = masks.shape[0]
    electors = electors_per_state(data.state_names)
    # the prior mean's value does not change the cost; a fixed vector keeps the benchmark short
    mu = torch.zeros(p, dtype=F64)
    mu[0] = -0.5
    prior_sd, nu = 0.25, 0.1
    kept = args.iters - args.burn
    model = HierarchicalBinomialGLM(S, mu, prior_sd**2 * torch.eye(p, dtype=F64), nu)

    # ------------------------------------------------------------- batched, in full
    with Clock() as fit:
        samples = fit_needle(data, masks, mu, prior_sd=prior_sd, dispersion=nu, num_iters=args.iters,
                             generator=generator, progress=False)
    with Clock() as predict:
        local = kept_draws(samples, args.burn, chains=False)["local_betas"]  # (T, kept, S, p)
        forecast = predict_electors(local, X, s, y, N, masks, electors, generator=generator)
    assert (forecast.dem_electors[-1] == 306).all()
    del samples, local

    # ---------------------------------------------------- sequential, extrapolated
    revealed_counts = masks.sum(1).tolist()
    hidden_counts = [len(s) - c for c in revealed_counts]
    probes = {"wall": ([], []), "cpu": ([], [])}
    for stamp in args.probe_stamps:
        t = stamp - 1
        keep = masks[t]
        with Clock() as c:
            draws = sequential_fit(model, s[keep], y[keep], N[keep], X[keep], args.probe_iters, generator)
        reps = draws[torch.arange(args.probe_draws) % draws.shape[0]]
        with Clock() as d:
            sequential_predict(reps, s, X, y, N, ~keep, electors, generator)
        for kind in probes:
            probes[kind][0].append(getattr(c, kind) / args.probe_iters)
            probes[kind][1].append(getattr(d, kind) / args.probe_draws)
    probe_revealed = [revealed_counts[t - 1] for t in args.probe_stamps]
    probe_hidden = [hidden_counts[t - 1] for t in args.probe_stamps]

    rows = {}
    for kind in ("wall", "cpu"):
        fit_probe, pred_probe = probes[kind]
        seq_fit, fit_coef = linear_extrapolation(probe_revealed, fit_probe, revealed_counts, args.iters)
        seq_pred, pred_coef = linear_extrapolation(probe_hidden, pred_probe, hidden_counts, kept)
        batched_total = getattr(fit, kind) + getattr(predict, kind)
        rows[kind] = {
            "batched_fit_s": getattr(fit, kind),
            "batched_predict_s": getattr(predict, kind),
            "batched_total_s": batched_total,
            "batched_s_per_iter": getattr(fit, kind) / args.iters,
            "sequential_fit_s_extrapolated": seq_fit,
            "sequential_predict_s_extrapolated": seq_pred,
            "sequential_total_s_extrapolated": seq_fit + seq_pred,
            "speedup": (seq_fit + seq_pred) / batched_total,
            "probe_fit_s_per_iter": fit_probe,
            "probe_predict_s_per_draw": pred_probe,
            "fit_line_s_per_iter": {"intercept": fit_coef[0], "per_revealed_county": fit_coef[1]},
            "predict_line_s_per_draw": {"intercept": pred_coef[0], "per_hidden_county": pred_coef[1]},
        }
    rows["probe_stamps"] = args.probe_stamps
    rows["probe_revealed_counties"] = probe_revealed
    rows["simulated_county_votes"] = int(sum(hidden_counts) * kept)

    print(f"2020 Needle: {T} stamps x {args.iters} Gibbs iterations, {kept} kept draws per stamp, "
          f"n = {len(s)} counties, p = {p}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<40}{'fit (s)':>10}{'predict (s)':>13}{'total (s)':>11}")
    for kind in ("wall", "cpu"):
        r = rows[kind]
        print(f"{'batched, measured (' + kind + ')':<40}{r['batched_fit_s']:>10.1f}{r['batched_predict_s']:>13.1f}"
              f"{r['batched_total_s']:>11.1f}")
        print(f"{'sequential naive, extrapolated (' + kind + ')':<40}{r['sequential_fit_s_extrapolated']:>10.0f}"
              f"{r['sequential_predict_s_extrapolated']:>13.0f}{r['sequential_total_s_extrapolated']:>11.0f}")
        print(f"{'speed-up (' + kind + ')':<40}{r['speedup']:>34.0f}x")

    record = {
        "benchmark": "the whole 2020 Needle: 50 stamps x Gibbs + posterior prediction, batched vs sequential naive",
        "command": "python bench/bench_needle.py",
        "date": _record.now(),
        "machine": _record.machine(threads=args.threads, load_average_1min=os.getloadavg()[0]),
        "settings": {k: v for k, v in vars(args).items()},
        "results": rows,
    }
    _record.write("needle", record)


if __name__ == "__main__":
    main()
