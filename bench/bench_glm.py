"""Benchmark: Gibbs iterations per second of the 2016 binomial GLM (mu = 0, Sigma = I).

Compares, in one run and on the same data:

- ``batched, sample_pg``: the package's default, all chains in one batched program
  with the package's Pólya-gamma sampler ``sample_pg``;
- ``batched, sample_pg_naive``: the same program with the homework's 200-term
  truncated series (run for fewer iterations: it is slow);
- ``one chain at a time, sample_pg``: the chains run one after the other.

Rates are Gibbs iterations of *all* chains per second, so the three are directly
comparable; ratios are relative to the default. Also reports the share of the time
spent in the Pólya-gamma draws. Writes ``bench/results/glm.json``.

Run by hand: ``python bench/bench_glm.py [--iters 1000] [--chains 4] [--naive-iters 50] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import time

# NumPy's OpenBLAS starts its own worker threads for vectors of more than about 8,000
# entries (sample_pg once validated its inputs with a NumPy dot product, and 4 chains x 3111
# counties is 12,444 entries). On a busy machine those threads fight the torch thread and
# made the batched run 5 times slower in our measurements; pin them unless the caller chose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

import _record  # noqa: E402  (bench/_record.py: machine facts and where results go)
import bayesglm  # noqa: E402
from bayesglm.glm import BinomialGLM  # noqa: E402
from bayesglm.polyagamma import sample_pg, sample_pg_naive  # noqa: E402


class TimedSampler:
    """Wraps a PG sampler and accumulates the seconds spent in it."""

    def __init__(self, sampler):
        self.sampler, self.seconds = sampler, 0.0

    def __call__(self, b, c, *, generator=None):
        start = time.perf_counter()
        out = self.sampler(b, c, generator=generator)
        self.seconds += time.perf_counter() - start
        return out


def run(data, sampler, iters: int, chains: int, *, one_at_a_time: bool, seed: int = 0) -> dict:
    p = data.X.shape[1]
    timed = TimedSampler(sampler)
    glm = BinomialGLM(torch.zeros(p, dtype=torch.float64), torch.eye(p, dtype=torch.float64), pg_sampler=timed)
    generator = torch.Generator().manual_seed(seed)
    init = torch.zeros(p, dtype=torch.float64)
    glm.gibbs(data.y, data.N, data.X, init, 3, num_chains=chains, generator=generator, progress=False)  # warm-up
    timed.seconds = 0.0
    start = time.perf_counter()
    if one_at_a_time:
        for _ in range(chains):
            glm.gibbs(data.y, data.N, data.X, init, iters, generator=generator, progress=False)
    else:
        glm.gibbs(data.y, data.N, data.X, init, iters, num_chains=chains, generator=generator, progress=False)
    seconds = time.perf_counter() - start
    return {
        "iterations": iters,
        "chains": chains,
        "seconds": round(seconds, 3),
        "iterations_per_second": round(iters / seconds, 2),
        "seconds_per_1000_iterations": round(1000 * seconds / iters, 2),
        "pg_share_of_time": round(timed.seconds / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1000, help="Gibbs iterations of the sample_pg runs")
    parser.add_argument("--naive-iters", type=int, default=50, help="Gibbs iterations of the naive-sampler run")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the matrices are small, so a second thread rarely pays)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/glm.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    data = bayesglm.load_year(2016)

    configs = {
        "batched, sample_pg": dict(sampler=sample_pg, iters=args.iters, one_at_a_time=False),
        "batched, sample_pg_naive": dict(sampler=sample_pg_naive, iters=args.naive_iters, one_at_a_time=False),
        "one chain at a time, sample_pg": dict(sampler=sample_pg, iters=args.iters, one_at_a_time=True),
    }
    results = {}
    for name, config in configs.items():
        results[name] = run(data, config["sampler"], config["iters"], args.chains, one_at_a_time=config["one_at_a_time"])
        print(f"  {name}: {results[name]['iterations_per_second']:.1f} it/s", flush=True)
    base = results["batched, sample_pg"]["iterations_per_second"]
    relative = {name: r["iterations_per_second"] / base for name, r in results.items()}
    speedups = {
        "sample_pg vs sample_pg_naive (batched chains)": round(1 / relative["batched, sample_pg_naive"], 2),
        "batched chains vs one chain at a time (sample_pg)": round(1 / relative["one chain at a time, sample_pg"], 2),
    }

    print(f"\n2016 binomial GLM: n = {data.X.shape[0]} counties, p = {data.X.shape[1]} features, "
          f"{args.chains} chains, {args.threads} torch thread(s)")
    header = f"{'configuration':34s} {'iters':>6s} {'seconds':>9s} {'it/s':>9s} {'s/1000 it':>10s} {'PG share':>9s} {'speed vs default':>17s}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(f"{name:34s} {r['iterations']:6d} {r['seconds']:9.2f} {r['iterations_per_second']:9.1f} "
              f"{r['seconds_per_1000_iterations']:10.2f} {r['pg_share_of_time']:9.1%} "
              f"{relative[name]:16.3f}x")

    print("\nspeed-ups: " + "; ".join(f"{k}: {v:.1f}x" for k, v in speedups.items()))

    report = {
        "benchmark": "Gibbs iterations per second (all chains advance once per iteration), 2016 binomial GLM, mu = 0, Sigma = I",
        "date": _record.now(),
        "machine": _record.machine(
            threads=torch.get_num_threads(),
            openblas_threads=os.environ["OPENBLAS_NUM_THREADS"],
            load_average_1min_at_start=round(load_at_start, 2),
        ),
        "settings": {"num_counties": data.X.shape[0], "num_features": data.X.shape[1], "chains": args.chains,
                     "iters": args.iters, "naive_iters": args.naive_iters},
        "command": "python bench/bench_glm.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "no_write"),
        "results": results,
        "speedups": speedups,
    }
    if not args.no_write:
        _record.write("glm", report)


if __name__ == "__main__":
    main()
