r"""Multilevel regression and poststratification (MRP) with Pólya-gamma Gibbs sampling.

Three parts:

* :func:`simulate` -- a synthetic population of ``sex x eth x age x income x state``
  cells (2 x 3 x 7 x 3 x 50 = 6300) with population counts, true cell
  preferences from a known logistic model (with a sex-age interaction), and a
  *biased* sample of people whose response propensities differ by group
  (after Kennedy & Gabry's rstanarm MRP vignette).
* :class:`MultilevelLogisticModel` -- the multilevel logistic regression

  .. math::

      \operatorname{logit} p_c = \alpha + x_c^\top \beta
          + a^{\rm state}_{\mathrm{state}[c]} + a^{\rm age}_{\mathrm{age}[c]}
          + a^{\rm eth}_{\mathrm{eth}[c]} + a^{\rm inc}_{\mathrm{income}[c]},
      \qquad a^{g}_k \sim N(0, \sigma_g^2),

  with fixed effects :math:`x_c` for sex, age and their interaction,
  :math:`\alpha \sim N(0, s_\alpha^2)`, :math:`\beta_j \sim N(0, s_\beta^2)` and
  :math:`\sigma_g \sim \mathrm{HalfNormal}(s_\sigma)`. Its Gibbs sampler
  aggregates people into binomial counts :math:`(y_c, n_c)` per observed cell and
  alternates

  1. :math:`\omega_c \sim \mathrm{PG}(n_c, \eta_c)` (Polson, Scott & Windle 2013);
  2. all coefficients :math:`\theta = (\alpha, \beta, a^{\rm state}, a^{\rm age},
     a^{\rm eth}, a^{\rm inc})` in ONE Gaussian block,
     :math:`\theta \sim N(J^{-1}h, J^{-1})`, :math:`J = Z^\top \Omega Z + D(\sigma)`,
     :math:`h = Z^\top \kappa`, :math:`\kappa_c = y_c - n_c/2`, with the one-hot design
     :math:`Z` and the diagonal prior precision :math:`D(\sigma)`;
  3. each :math:`\sigma_g` from its exact conditional (a generalized inverse
     Gaussian in :math:`\sigma_g^2`, log-concave in :math:`\log\sigma_g`; see
     :func:`sample_halfnormal_scale_conditional`). The half-normal prior, not the
     conditionally conjugate inverse-gamma one: with 3 levels (eth, income) an
     :math:`\mathrm{IG}(\epsilon, \epsilon)` prior on :math:`\sigma_g^2` dominates the
     posterior near zero (Gelman 2006), and the exact draw costs no more;
  4. a parameter-expansion move that rescales each group's intercepts and scale
     together, :math:`(a^g, \sigma_g) \to (\lambda_g a^g, |\lambda_g|\sigma_g)`, with
     :math:`\lambda` from a 4-dimensional Gaussian (see
     :meth:`MultilevelLogisticModel.rescale_groups`); it speeds up the scales whose
     intercepts the data barely inform.

* Poststratification -- :math:`\theta_{\rm pop} = \sum_c N_c p_c / \sum_c N_c`
  per posterior draw, for the whole population or per group (e.g. per state),
  with the checks that the sample, the table and the model agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from fastprogress.fastprogress import progress_bar
from jaxtyping import Float, Int
from torch import Tensor

from .gaussian import sample_gaussian_information
from .polyagamma import sample_pg

__all__ = [
    "FACTORS",
    "LEVELS",
    "GROUPS",
    "MRPPriors",
    "WIDE_PRIORS",
    "SENSIBLE_PRIORS",
    "MRPSimulation",
    "simulate",
    "check_table",
    "check_sample",
    "aggregate_sample",
    "poststratification_weights",
    "poststratify",
    "sample_halfnormal_scale_conditional",
    "MultilevelLogisticModel",
]

DTYPE = torch.float64

#: The categorical variables of a cell, in table order (state varies fastest).
FACTORS: tuple[str, ...] = ("sex", "eth", "age", "income", "state")
#: Number of levels of each variable in the simulation (codes 0 .. L-1).
LEVELS: dict[str, int] = {"sex": 2, "eth": 3, "age": 7, "income": 3, "state": 50}
#: The variables with varying intercepts, in the order of the scales sigma.
GROUPS: tuple[str, ...] = ("state", "age", "eth", "income")

# ----------------------------------------------------------------------------- simulation facts
# Population shares of each level (the joint distribution factorizes).
_POP_SHARE = {
    "sex": [0.52, 0.48],
    "eth": [0.5, 0.2, 0.3],
    "age": [0.2, 0.1, 0.2, 0.2, 0.1, 0.1, 0.1],
    "income": [0.50, 0.35, 0.15],
}
# Relative response propensities (normalized per variable); state's are Beta(1, 1) draws.
_RESPONSE = {
    "sex": [2.0, 0.8],
    "eth": [1.0, 1.2, 2.5],
    "age": [1.0, 0.4, 1.0, 1.5, 3.0, 5.0, 7.0],
    "income": [1.0, 0.9, 0.8],
}
_RESPONSE_BASELINE = 0.01
# True log-odds effects of the outcome; the state effects are 0 for state 0 and
# N(0, 1) draws rounded to one decimal for the others.
_TRUE_EFFECT = {
    "sex": [0.0, -0.3],
    "eth": [0.0, 0.6, 0.9],
    "age": [0.0, -0.2, -0.3, 0.4, 0.5, 0.7, 0.8],
    "income": [0.0, -0.2, 0.6],
}
# Sex-age interaction on the log-odds, rows = sex, columns = age.
_TRUE_SEX_AGE = [
    [0.0, 0.1, 0.23, 0.3, 0.43, 0.5, 0.6],
    [0.0, -0.1, -0.23, -0.5, -0.43, -0.5, -0.6],
]
_POPULATION_SIZE = 250e6
_STATE_SHARE_RANGE = (10.0, 20.0)  # state sizes ~ Uniform(10, 20), normalized


def _cells(levels: dict[str, int]) -> pd.DataFrame:
    """Every combination of the factors' codes, state varying fastest."""
    grids = np.meshgrid(*[np.arange(levels[f]) for f in FACTORS], indexing="ij")
    return pd.DataFrame({f: g.reshape(-1) for f, g in zip(FACTORS, grids)})


def _codes(frame: pd.DataFrame) -> dict[str, Tensor]:
    return {f: torch.tensor(frame[f].to_numpy(dtype=np.int64)) for f in FACTORS}


def _cell_index(codes: dict[str, Tensor], levels: dict[str, int]) -> Tensor:
    """Row of each cell in the full table of :func:`_cells` (mixed-radix number)."""
    index = torch.zeros_like(codes[FACTORS[0]])
    for f in FACTORS:
        index = index * levels[f] + codes[f]
    return index


@dataclass(frozen=True)
class MRPSimulation:
    r"""A simulated population and a biased sample from it (see :func:`simulate`).

    Attributes:
        levels: number of levels per variable.
        poststrat: the poststratification table, one row per cell: the codes of
            ``FACTORS`` and the population count ``N`` (what an analyst would know).
        population: ``poststrat`` plus the truth: ``p_response`` (a person's chance to
            answer), ``p_sample`` (the chance that a sampled person is from the cell,
            :math:`\propto N_c \times` ``p_response``) and ``true_pref`` (the share of the
            cell that prefers cats).
        sample: one row per sampled person: ``cell`` (row of ``poststrat``), the codes,
            and the 0/1 outcome ``cat_pref``.
        effects: the true log-odds effects: ``sex``, ``eth``, ``age``, ``income``,
            ``state`` (vectors) and ``sex_age`` (2 x 7).
        state_share: each state's share of the population.
        counts, true_pref, sample_cell, sample_y: the same as float64/int64 tensors.
    """

    levels: dict[str, int]
    poststrat: pd.DataFrame
    population: pd.DataFrame
    sample: pd.DataFrame
    effects: dict[str, Tensor]
    state_share: Float[Tensor, " num_states"]
    counts: Float[Tensor, " num_cells"] = field(repr=False)
    true_pref: Float[Tensor, " num_cells"] = field(repr=False)
    sample_cell: Int[Tensor, " num_people"] = field(repr=False)
    sample_y: Float[Tensor, " num_people"] = field(repr=False)

    @property
    def true_population_mean(self) -> float:
        r""":math:`\sum_c N_c p_c / \sum_c N_c` with the true preferences."""
        return float((self.counts * self.true_pref).sum() / self.counts.sum())

    def true_group_means(self, by: str) -> Float[Tensor, " num_levels"]:
        """The true preference of every level of ``by`` (e.g. per state), weighted by N."""
        weights, _ = poststratification_weights(self.poststrat, by=by, levels=self.levels)
        return self.true_pref @ weights


def simulate(
    num_sample: int = 1200,
    *,
    population_size: float = _POPULATION_SIZE,
    generator: torch.Generator | None = None,
) -> MRPSimulation:
    r"""Simulate the population, its poststratification table and a biased sample.

    * Population: :math:`N_c = \mathrm{round}(N_{\rm tot}\, \pi^{\rm sex}\pi^{\rm eth}
      \pi^{\rm age}\pi^{\rm inc}\pi^{\rm state})` with fixed shares per level and
      state shares :math:`\propto \mathrm{Uniform}(10, 20)` draws.
    * Response: :math:`r_c = 0.01\, r^{\rm sex} r^{\rm eth} r^{\rm age} r^{\rm inc}
      r^{\rm state}` (each factor normalized to sum to one; state's from Beta(1, 1));
      each of the ``num_sample`` people is drawn (with replacement) from cell
      :math:`c` with probability :math:`N_c r_c / \sum_{c'} N_{c'} r_{c'}`.
    * Truth: :math:`\operatorname{logit} p_c` = the sum of the cell's sex, eth, age,
      income, state and sex-age effects; each person's outcome is Bernoulli(:math:`p_c`).

    All randomness comes from ``generator`` (same generator state, same simulation).
    """
    if isinstance(num_sample, bool) or not isinstance(num_sample, Integral) or num_sample < 1:
        raise ValueError(f"num_sample must be an integer >= 1; got {num_sample!r}")
    if not isinstance(population_size, Real) or not math.isfinite(population_size) or population_size <= 0:
        raise ValueError(f"population_size must be a positive number; got {population_size!r}")
    levels = dict(LEVELS)
    S = levels["state"]
    g = generator
    lo, hi = _STATE_SHARE_RANGE
    state_size = lo + (hi - lo) * torch.rand(S, dtype=DTYPE, generator=g)
    state_share = state_size / state_size.sum()
    state_response = torch.rand(S, dtype=DTYPE, generator=g)  # Beta(1, 1)
    state_effect = torch.cat(
        [torch.zeros(1, dtype=DTYPE), (torch.randn(S - 1, dtype=DTYPE, generator=g) * 10).round() / 10]
    )

    table = _cells(levels)
    codes = _codes(table)
    share = {f: torch.tensor(v, dtype=DTYPE) for f, v in _POP_SHARE.items()} | {"state": state_share}
    response = {f: torch.tensor(v, dtype=DTYPE) for f, v in _RESPONSE.items()} | {"state": state_response}
    effects = {f: torch.tensor(v, dtype=DTYPE) for f, v in _TRUE_EFFECT.items()} | {"state": state_effect}
    effects["sex_age"] = torch.tensor(_TRUE_SEX_AGE, dtype=DTYPE)

    counts = torch.full((len(table),), float(population_size), dtype=DTYPE)
    p_response = torch.full((len(table),), _RESPONSE_BASELINE, dtype=DTYPE)
    logits = effects["sex_age"][codes["sex"], codes["age"]]
    for f in FACTORS:
        counts = counts * share[f][codes[f]]
        p_response = p_response * (response[f] / response[f].sum())[codes[f]]
        logits = logits + effects[f][codes[f]]
    counts = counts.round()
    p_sample = counts * p_response / (counts * p_response).sum()
    true_pref = torch.sigmoid(logits)

    sample_cell = torch.multinomial(p_sample, num_sample, replacement=True, generator=g)
    sample_y = (torch.rand(num_sample, dtype=DTYPE, generator=g) < true_pref[sample_cell]).to(DTYPE)

    poststrat = table.assign(N=counts.numpy())
    population = poststrat.assign(
        p_response=p_response.numpy(), p_sample=p_sample.numpy(), true_pref=true_pref.numpy()
    )
    sample = table.iloc[sample_cell.numpy()].reset_index(names="cell")
    sample["cat_pref"] = sample_y.numpy().astype(np.int64)
    return MRPSimulation(
        levels=levels,
        poststrat=poststrat,
        population=population,
        sample=sample,
        effects=effects,
        state_share=state_share,
        counts=counts,
        true_pref=true_pref,
        sample_cell=sample_cell,
        sample_y=sample_y,
    )


# ----------------------------------------------------------------------------- validation
def _check_levels(levels: dict[str, int]) -> dict[str, int]:
    if not isinstance(levels, dict) or set(levels) != set(FACTORS):
        raise ValueError(f"levels must be a dict with exactly the keys {FACTORS}; got {levels!r}")
    for f, n in levels.items():
        if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
            raise ValueError(f"levels[{f!r}] must be an integer >= 1; got {n!r}")
    if levels["sex"] < 2 or levels["age"] < 2:
        raise ValueError("levels['sex'] and levels['age'] must be >= 2 (they carry fixed effects)")
    return {f: int(levels[f]) for f in FACTORS}


def _check_codes(frame: pd.DataFrame, levels: dict[str, int], what: str) -> None:
    missing = [f for f in FACTORS if f not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing}; expected the columns {list(FACTORS)}")
    for f in FACTORS:
        col = frame[f]
        if not pd.api.types.is_integer_dtype(col):
            if not pd.api.types.is_numeric_dtype(col) or col.isna().any() or (col != col.round()).any():
                raise ValueError(f"{what}: column {f!r} must hold integer level codes 0..{levels[f] - 1}")
        bad = (col < 0) | (col >= levels[f])
        if bad.any():
            value = col[bad].iloc[0]
            value = value.item() if hasattr(value, "item") else value
            raise ValueError(
                f"{what}: column {f!r} has the unknown level {value!r}; the model has "
                f"{levels[f]} levels of {f!r} (codes 0..{levels[f] - 1})"
            )


def check_table(
    table: pd.DataFrame,
    levels: dict[str, int] | None = None,
    *,
    counts: str = "N",
    complete: bool = False,
) -> pd.DataFrame:
    """Validate a poststratification table and return it unchanged.

    Requires a DataFrame with integer level codes in ``0..L-1`` for every factor of
    ``FACTORS`` (``levels`` defaults to :data:`LEVELS`), at most one row per cell,
    and non-negative finite counts in column ``counts`` that do not all vanish.
    With ``complete=True`` every cell of ``levels`` must be listed (a count may be 0):
    a table that silently lacks part of the population would bias every estimate.
    """
    levels = _check_levels(dict(LEVELS) if levels is None else levels)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"the poststratification table must be a pandas DataFrame; got {type(table).__name__}")
    if len(table) == 0:
        raise ValueError("the poststratification table is empty")
    _check_codes(table, levels, "poststratification table")
    duplicated = table.duplicated(list(FACTORS))
    if duplicated.any():
        row = table.loc[duplicated, list(FACTORS)].iloc[0].to_dict()
        raise ValueError(f"poststratification table lists the cell {row} more than once; aggregate it first")
    if counts not in table.columns:
        raise ValueError(f"poststratification table lacks the count column {counts!r}")
    N = table[counts]
    if not pd.api.types.is_numeric_dtype(N) or not np.isfinite(N.to_numpy(dtype=float)).all():
        raise ValueError(f"poststratification table: column {counts!r} must hold finite numbers")
    if (N < 0).any():
        raise ValueError(f"poststratification table: column {counts!r} has a negative count")
    if N.sum() <= 0:
        raise ValueError(f"poststratification table: the counts {counts!r} sum to zero")
    expected = math.prod(levels.values())
    if complete and len(table) != expected:
        raise ValueError(
            f"poststratification table has {len(table)} cells but the model's levels {levels} make "
            f"{expected}; list every cell (with N = 0 where nobody lives), or pass complete=False "
            "to poststratify a sub-population"
        )
    return table


def check_sample(
    sample: pd.DataFrame,
    table: pd.DataFrame | None = None,
    levels: dict[str, int] | None = None,
    *,
    outcome: str = "cat_pref",
) -> pd.DataFrame:
    """Validate a sample of people (one row each) and return it unchanged.

    Requires the factor codes of ``FACTORS`` within ``levels`` and a 0/1 column
    ``outcome``. With a poststratification ``table``, every sampled cell must
    appear in it (otherwise the table cannot be the population the sample came from).
    """
    levels = _check_levels(dict(LEVELS) if levels is None else levels)
    if not isinstance(sample, pd.DataFrame):
        raise TypeError(f"sample must be a pandas DataFrame; got {type(sample).__name__}")
    if len(sample) == 0:
        raise ValueError("sample is empty")
    _check_codes(sample, levels, "sample")
    if outcome not in sample.columns:
        raise ValueError(f"sample lacks the outcome column {outcome!r}")
    y = sample[outcome]
    if not pd.api.types.is_numeric_dtype(y) or y.isna().any() or not y.isin([0, 1]).all():
        raise ValueError(f"sample: the outcome {outcome!r} must be 0 or 1 for every person")
    if table is not None:
        check_table(table, levels)
        known = set(map(tuple, table[list(FACTORS)].to_numpy().tolist()))
        cells = sample[list(FACTORS)].to_numpy().tolist()
        unknown = [c for c in cells if tuple(c) not in known]
        if unknown:
            example = dict(zip(FACTORS, unknown[0]))
            raise ValueError(
                f"sample has {len(unknown)} people in cells that the poststratification table lacks, "
                f"e.g. {example}; the table must cover the population the sample was drawn from"
            )
    return sample


def aggregate_sample(
    sample: pd.DataFrame, levels: dict[str, int] | None = None, *, outcome: str = "cat_pref"
) -> pd.DataFrame:
    """Binomial counts per observed cell: the codes, ``n`` (people) and ``y`` (outcome = 1)."""
    levels = dict(LEVELS) if levels is None else levels
    check_sample(sample, None, levels, outcome=outcome)
    grouped = sample.groupby(list(FACTORS), sort=True)[outcome].agg(n="size", y="sum").reset_index()
    return grouped.astype({"n": np.int64, "y": np.int64})


def poststratification_weights(
    table: pd.DataFrame,
    by: str | None = None,
    *,
    levels: dict[str, int] | None = None,
    counts: str = "N",
    complete: bool = True,
) -> tuple[Float[Tensor, "num_cells num_groups"], list]:
    r"""Weights :math:`W_{cg} = N_c / \sum_{c' \in g} N_{c'}` for :math:`c \in g` (else 0).

    With ``by=None`` there is one group, the whole population (``W`` has one
    column). Every column sums to one, so ``p @ W`` are the poststratified means.
    Returns ``(W, labels)`` with the level codes of ``by`` (``[None]`` without ``by``).
    A level of ``by`` without any people in the table is an error, and so is (with
    ``complete=True``, the default) a table that does not list every cell of ``levels``.
    """
    levels = _check_levels(dict(LEVELS) if levels is None else levels)
    check_table(table, levels, counts=counts, complete=complete)
    N = torch.tensor(table[counts].to_numpy(dtype=np.float64))
    if by is None:
        return (N / N.sum()).unsqueeze(-1), [None]
    if by not in FACTORS:
        raise ValueError(f"by must be None or one of {FACTORS}; got {by!r}")
    group = torch.tensor(table[by].to_numpy(dtype=np.int64))
    G = levels[by]
    totals = torch.zeros(G, dtype=DTYPE).index_add_(0, group, N)
    if (totals <= 0).any():
        empty = int((totals <= 0).nonzero()[0])
        raise ValueError(f"poststratification table has no people in {by} = {empty}; cannot weight it")
    W = torch.zeros(len(table), G, dtype=DTYPE)
    W[torch.arange(len(table)), group] = N / totals[group]
    return W, list(range(G))


def poststratify(
    cell_probs: Float[Tensor, "*batch num_cells"],
    table: pd.DataFrame,
    by: str | None = None,
    *,
    levels: dict[str, int] | None = None,
    counts: str = "N",
    complete: bool = True,
) -> Float[Tensor, "*batch"] | Float[Tensor, "*batch num_groups"]:
    r"""Poststratified means :math:`\sum_c N_c p_c / \sum_c N_c` of cell probabilities.

    ``cell_probs[..., c]`` belongs to row ``c`` of ``table``. Without ``by`` the
    population mean (shape ``batch``); with ``by`` one mean per level (``batch + (G,)``).
    """
    if not isinstance(cell_probs, Tensor):
        raise TypeError(f"cell_probs must be a torch.Tensor; got {type(cell_probs).__name__}")
    W, _ = poststratification_weights(table, by, levels=levels, counts=counts, complete=complete)
    if cell_probs.ndim == 0 or cell_probs.shape[-1] != W.shape[0]:
        raise ValueError(
            f"cell_probs has {cell_probs.shape[-1] if cell_probs.ndim else 'no'} cells on its last axis but the "
            f"poststratification table has {W.shape[0]} rows; they must match row for row"
        )
    out = cell_probs.to(DTYPE) @ W
    return out.squeeze(-1) if by is None else out


# ----------------------------------------------------------------------------- the scale conditional
def _scale_log_density(u: Tensor, K: Tensor, S: Tensor, s0: Tensor) -> Tensor:
    # log density of u = log sigma, up to a constant: (1 - K) u - S e^{-2u} / 2 - e^{2u} / (2 s0^2)
    return (1 - K) * u - 0.5 * S * torch.exp(-2 * u) - 0.5 * torch.exp(2 * u) / s0**2


def sample_halfnormal_scale_conditional(
    sum_sq: Float[Tensor, "..."],
    num_groups: Float[Tensor, "..."] | int,
    prior_scale: Float[Tensor, "..."] | float,
    *,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "..."]:
    r"""Exact draws of :math:`\sigma` given :math:`K` effects :math:`a_k \sim N(0, \sigma^2)`
    and the prior :math:`\sigma \sim \mathrm{HalfNormal}(s_0)`.

    With :math:`S = \sum_k a_k^2`,
    :math:`p(\sigma \mid a) \propto \sigma^{-K} \exp(-\tfrac{S}{2\sigma^2} - \tfrac{\sigma^2}{2 s_0^2})`,
    i.e. :math:`\sigma^2 \sim \mathrm{GIG}(\tfrac{1-K}{2}, s_0^{-2}, S)`. In
    :math:`u = \log\sigma` the log density
    :math:`\ell(u) = (1-K)u - \tfrac{S}{2}e^{-2u} - \tfrac{1}{2 s_0^2}e^{2u}` is strictly
    concave with its mode at :math:`e^{2m} = 2 S s_0^2 / ((K-1)s_0^2 + \sqrt{(K-1)^2 s_0^4 + 4 S s_0^2})`.
    Rejection sampling from a three-piece envelope (flat on :math:`[m - r, m + r]`,
    exponential tails along the chords from the mode, valid by concavity) with
    :math:`r = 1.5/\sqrt{-\ell''(m)}` accepts roughly 60% of proposals whatever
    :math:`K, S, s_0`. Vectorized: each round proposes 8 candidates per entry and keeps
    the first accepted one (a valid rejection sampler: the first acceptance in an
    i.i.d. sequence of proposals), redrawing only entries with none accepted.
    """
    S = torch.as_tensor(sum_sq, dtype=DTYPE)
    K = torch.as_tensor(num_groups, dtype=DTYPE)
    s0 = torch.as_tensor(prior_scale, dtype=DTYPE)
    S, K, s0 = torch.broadcast_tensors(S, K, s0)
    if not (torch.isfinite(S).all() and (S >= 0).all()):
        raise ValueError("sum_sq must be finite and >= 0")
    if not (torch.isfinite(s0).all() and (s0 > 0).all()):
        raise ValueError("prior_scale must be finite and > 0")
    if (K < 1).any() or (K != K.round()).any():
        raise ValueError("num_groups must be whole numbers >= 1")
    S = S.clamp_min(1e-300)  # S = 0 has probability zero; keeps the mode finite
    b = (K - 1) * s0**2
    w = 2 * S * s0**2 / (b + torch.sqrt(b**2 + 4 * S * s0**2))
    m = 0.5 * torch.log(w)
    curvature = 2 * S * torch.exp(-2 * m) + 2 * torch.exp(2 * m) / s0**2  # -l''(m)
    r = 1.5 / torch.sqrt(curvature)
    lm = _scale_log_density(m, K, S, s0)
    drop_left = lm - _scale_log_density(m - r, K, S, s0)
    drop_right = lm - _scale_log_density(m + r, K, S, s0)
    slope_left, slope_right = drop_left / r, drop_right / r
    mass = torch.stack([2 * r, torch.exp(-drop_left) / slope_left, torch.exp(-drop_right) / slope_right], -1)
    cum = torch.cumsum(mass / mass.sum(-1, keepdim=True), -1)

    params = dict(m=m, r=r, lm=lm, sl=slope_left, sr=slope_right, K=K, S=S, s0=s0)
    flat = {k: v.reshape(-1, 1) for k, v in params.items()}
    cum = cum.reshape(-1, 1, 3)
    out_flat = torch.empty(S.numel(), dtype=DTYPE)
    pending = torch.arange(S.numel())
    tries = 8  # proposals per entry and round: all 8 fail with probability ~0.4^8
    while pending.numel():
        p = {k: v[pending] for k, v in flat.items()}
        u1, u2, v = torch.rand(3, pending.numel(), tries, dtype=DTYPE, generator=generator)
        piece = (u1.unsqueeze(-1) > cum[pending]).sum(-1)  # 0 middle, 1 left tail, 2 right tail
        e = -torch.log1p(-u2)  # Exp(1)
        u = torch.where(
            piece == 0,
            p["m"] - p["r"] + 2 * p["r"] * u2,
            torch.where(piece == 1, p["m"] - p["r"] - e / p["sl"], p["m"] + p["r"] + e / p["sr"]),
        )
        envelope = p["lm"] - torch.where(
            piece == 0, 0.0, torch.where(piece == 1, p["sl"] * (p["m"] - u), p["sr"] * (u - p["m"]))
        )
        ok = torch.log(v) < _scale_log_density(u, p["K"], p["S"], p["s0"]) - envelope
        first = ok.to(torch.int8).argmax(-1)  # the first accepted proposal of each entry
        done = ok.any(-1)
        out_flat[pending[done]] = torch.exp(u[done, first[done]])
        pending = pending[~done]
    return out_flat.reshape(S.shape)


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class MRPPriors:
    r"""Prior scales: :math:`\alpha \sim N(0, \text{intercept}^2)`, each fixed effect
    :math:`\beta_j \sim N(0, \text{coef}^2)`, each group scale :math:`\sigma_g \sim
    \mathrm{HalfNormal}(\text{group\_scale})`."""

    intercept: float = 1.0
    coef: float = 1.0
    group_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("intercept", "coef", "group_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not (0 < value < math.inf):
                raise ValueError(f"MRPPriors.{name} must be a positive finite number; got {value!r}")


#: rstanarm-style defaults used in the vignette: N(0, 10) intercept, N(0, 2.5) effects.
WIDE_PRIORS = MRPPriors(intercept=10.0, coef=2.5, group_scale=1.0)
#: Weakly informative priors on the logit scale.
SENSIBLE_PRIORS = MRPPriors(intercept=1.0, coef=1.0, group_scale=1.0)


class MultilevelLogisticModel:
    r"""Multilevel logistic regression for MRP (see the module docstring), Pólya-gamma Gibbs.

    The coefficient vector :math:`\theta` stacks, in order: the intercept; the
    fixed effects ``sex_k`` (k >= 1), ``age_k`` (k >= 1) and ``sex_j:age_k``; the
    varying intercepts of ``state``, ``age``, ``eth`` and ``income`` (every level,
    including level 0). ``coef_names`` names them; ``scale_names`` names the four
    :math:`\sigma_g`.

    Args:
        priors: the prior scales (:data:`SENSIBLE_PRIORS` by default).
        levels: number of levels per variable (:data:`LEVELS` by default).
    """

    def __init__(self, priors: MRPPriors = SENSIBLE_PRIORS, levels: dict[str, int] | None = None) -> None:
        if not isinstance(priors, MRPPriors):
            raise TypeError(f"priors must be an MRPPriors; got {type(priors).__name__}")
        self.priors = priors
        self.levels = _check_levels(dict(LEVELS) if levels is None else levels)
        L = self.levels
        names = ["intercept"]
        names += [f"sex_{k}" for k in range(1, L["sex"])]
        names += [f"age_{k}" for k in range(1, L["age"])]
        names += [f"sex_{j}:age_{k}" for j in range(1, L["sex"]) for k in range(1, L["age"])]
        self.num_fixed = len(names)
        self.group_slices: dict[str, slice] = {}
        for g in GROUPS:
            start = len(names)
            names += [f"{g}[{k}]" for k in range(L[g])]
            self.group_slices[g] = slice(start, len(names))
        self.coef_names: list[str] = names
        self.scale_names: list[str] = [f"sigma_{g}" for g in GROUPS]
        self.num_coef = len(names)
        self._group_of = torch.cat(
            [torch.full((L[g],), i, dtype=torch.long) for i, g in enumerate(GROUPS)]
        )  # which sigma each varying intercept uses
        self._group_sizes = torch.tensor([L[g] for g in GROUPS], dtype=DTYPE)
        fixed_sd = torch.full((self.num_fixed,), priors.coef, dtype=DTYPE)
        fixed_sd[0] = priors.intercept
        self._fixed_precision = fixed_sd**-2

    # ------------------------------------------------------------------ design
    def design_matrix(self, cells: pd.DataFrame) -> Float[Tensor, "num_cells num_coef"]:
        r"""The one-hot design :math:`Z` (rows = cells of ``cells``, columns = ``coef_names``)."""
        _check_codes(cells, self.levels, "cells")
        codes = _codes(cells)
        n, L = len(cells), self.levels
        Z = torch.zeros(n, self.num_coef, dtype=DTYPE)
        rows = torch.arange(n)
        Z[:, 0] = 1.0
        sex, age = codes["sex"], codes["age"]
        col = 1
        has_sex, has_age = sex > 0, age > 0
        Z[rows[has_sex], col + sex[has_sex] - 1] = 1.0
        col += L["sex"] - 1
        Z[rows[has_age], col + age[has_age] - 1] = 1.0
        col += L["age"] - 1
        both = has_sex & has_age
        Z[rows[both], col + (sex[both] - 1) * (L["age"] - 1) + age[both] - 1] = 1.0
        for g in GROUPS:
            Z[rows, self.group_slices[g].start + codes[g]] = 1.0
        return Z

    def prior_precision(self, sigma: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch num_coef"]:
        r"""Diagonal of :math:`D(\sigma)`: fixed prior precisions, then :math:`\sigma_g^{-2}` per level."""
        varying = sigma[..., self._group_of] ** -2
        fixed = self._fixed_precision.expand(*sigma.shape[:-1], self.num_fixed)
        return torch.cat([fixed, varying], -1)

    def _sum_sq(self, coef: Tensor) -> Tensor:
        varying = coef[..., self.num_fixed:] ** 2
        out = torch.zeros(*coef.shape[:-1], len(GROUPS), dtype=DTYPE)
        return out.index_add_(-1, self._group_of, varying)

    # ------------------------------------------------------------------ prior predictive
    def prior_predictive(
        self, cells: pd.DataFrame, num_draws: int, *, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        r"""Draws from the prior: :math:`\sigma_g`, then :math:`\theta \mid \sigma`, then the
        logits :math:`Z\theta` of ``cells`` and one 0/1 outcome per cell.

        Returns dict with ``sigma`` (D, 4), ``coef`` (D, num_coef), ``logits`` (D, n),
        ``probs`` (D, n) and ``y`` (D, n).
        """
        if isinstance(num_draws, bool) or not isinstance(num_draws, Integral) or num_draws < 1:
            raise ValueError(f"num_draws must be an integer >= 1; got {num_draws!r}")
        Z = self.design_matrix(cells)
        D = int(num_draws)
        sigma = self.priors.group_scale * torch.randn(D, len(GROUPS), dtype=DTYPE, generator=generator).abs()
        sd = self.prior_precision(sigma) ** -0.5
        coef = sd * torch.randn(D, self.num_coef, dtype=DTYPE, generator=generator)
        logits = coef @ Z.T
        probs = torch.sigmoid(logits)
        y = (torch.rand(probs.shape, dtype=DTYPE, generator=generator) < probs).to(DTYPE)
        return {"sigma": sigma, "coef": coef, "logits": logits, "probs": probs, "y": y}

    # ------------------------------------------------------------------ Gibbs pieces
    def conditional_coef(
        self,
        Z: Float[Tensor, "num_cells num_coef"],
        y: Float[Tensor, " num_cells"],
        n: Float[Tensor, " num_cells"],
        omega: Float[Tensor, "*batch num_cells"],
        sigma: Float[Tensor, "*batch 4"],
    ) -> tuple[Float[Tensor, "*batch num_coef num_coef"], Float[Tensor, "*batch num_coef"]]:
        r"""Precision and linear term of :math:`\theta \mid \omega, \sigma, y`:
        :math:`J = Z^\top \mathrm{diag}(\omega) Z + D(\sigma)`, :math:`h = Z^\top (y - n/2)`."""
        J = (Z.T * omega.unsqueeze(-2)) @ Z
        J = J + torch.diag_embed(self.prior_precision(sigma))
        h = (Z.T @ (y - n / 2)).expand(*J.shape[:-1])
        return J, h

    def log_likelihood(
        self, Z: Tensor, y: Tensor, n: Tensor, coef: Float[Tensor, "*batch num_coef"]
    ) -> Float[Tensor, "*batch"]:
        r""":math:`\sum_c \log\binom{n_c}{y_c} + y_c\eta_c - n_c\log(1+e^{\eta_c})`, :math:`\eta = Z\theta`."""
        eta = coef @ Z.T
        log_choose = torch.lgamma(n + 1) - torch.lgamma(y + 1) - torch.lgamma(n - y + 1)
        return (log_choose + y * eta - n * torch.nn.functional.softplus(eta)).sum(-1)

    def gibbs(
        self,
        sample: pd.DataFrame,
        num_iters: int,
        *,
        num_chains: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
        init: dict[str, Tensor] | None = None,
        outcome: str = "cat_pref",
        rescale: bool = True,
    ) -> dict[str, Tensor]:
        r"""Run the Pólya-gamma Gibbs sampler on a sample of people; draw 0 = the initial state.

        Each sweep draws :math:`\omega \mid \theta`, then :math:`\theta \mid \omega, \sigma`
        (one Gaussian block), then :math:`\sigma \mid \theta` (exact, independent over groups),
        then (with ``rescale``) the joint rescaling move of :meth:`rescale_groups`.

        Args:
            sample: one row per person with the codes of ``FACTORS`` and a 0/1 ``outcome``.
            num_iters: number of sweeps (>= 1).
            num_chains: run this many chains side by side (a leading chain axis).
            generator: a torch.Generator for reproducible draws.
            progress: show a progress bar.
            init: optional ``{"coef": (..., num_coef), "sigma": (..., 4)}`` start; by default
                every chain starts at coefficients ~ Uniform(-2, 2) and
                :math:`\log\sigma_g` ~ Uniform(-1, 1) (over-dispersed, so R-hat can see
                chains that have not met).
            outcome: the name of the outcome column.
            rescale: add the parameter-expansion move :meth:`rescale_groups` to every
                sweep (it leaves the posterior unchanged and speeds up the mixing of
                scales whose groups the data barely inform).

        Returns:
            dict with ``coef`` ([C,] num_iters+1, num_coef), ``sigma`` ([C,] num_iters+1, 4)
            and ``log_lik`` ([C,] num_iters+1), the binomial log-likelihood of each draw.
        """
        if isinstance(num_iters, bool) or not isinstance(num_iters, Integral) or num_iters < 1:
            raise ValueError(f"num_iters must be an integer >= 1; got {num_iters!r}")
        if num_chains is not None and (
            isinstance(num_chains, bool) or not isinstance(num_chains, Integral) or num_chains < 1
        ):
            raise ValueError(f"num_chains must be None or an integer >= 1; got {num_chains!r}")
        cells = aggregate_sample(sample, self.levels, outcome=outcome)
        Z = self.design_matrix(cells)
        y = torch.tensor(cells["y"].to_numpy(dtype=np.float64))
        n = torch.tensor(cells["n"].to_numpy(dtype=np.float64))
        C = 1 if num_chains is None else int(num_chains)
        P, G = self.num_coef, len(GROUPS)
        if init is None:
            coef = 4 * torch.rand(C, P, dtype=DTYPE, generator=generator) - 2
            sigma = torch.exp(2 * torch.rand(C, G, dtype=DTYPE, generator=generator) - 1)
        else:
            if not isinstance(init, dict) or set(init) != {"coef", "sigma"}:
                raise ValueError("init must be a dict with the keys 'coef' and 'sigma'")
            try:
                coef = torch.as_tensor(init["coef"], dtype=DTYPE).expand(C, P).clone()
                sigma = torch.as_tensor(init["sigma"], dtype=DTYPE).expand(C, G).clone()
            except RuntimeError as err:
                raise ValueError(
                    f"init['coef'] must broadcast to ({C}, {P}) and init['sigma'] to ({C}, {G}): {err}"
                ) from None
            if not (torch.isfinite(coef).all() and torch.isfinite(sigma).all() and (sigma > 0).all()):
                raise ValueError("init must be finite, with every sigma > 0")
        out_coef = torch.empty(C, num_iters + 1, P, dtype=DTYPE)
        out_sigma = torch.empty(C, num_iters + 1, G, dtype=DTYPE)
        out_ll = torch.empty(C, num_iters + 1, dtype=DTYPE)
        out_coef[:, 0], out_sigma[:, 0] = coef, sigma
        out_ll[:, 0] = self.log_likelihood(Z, y, n, coef)
        iterations = progress_bar(range(num_iters)) if progress else range(num_iters)
        for it in iterations:
            eta = coef @ Z.T
            omega = sample_pg(n.expand(C, -1), eta, generator=generator)
            J, h = self.conditional_coef(Z, y, n, omega, sigma)
            coef = sample_gaussian_information(J, h, generator=generator)
            sigma = sample_halfnormal_scale_conditional(
                self._sum_sq(coef), self._group_sizes, self.priors.group_scale, generator=generator
            )
            if rescale:
                coef, sigma = self.rescale_groups(Z, y, n, omega, coef, sigma, generator=generator)
            out_coef[:, it + 1], out_sigma[:, it + 1] = coef, sigma
            out_ll[:, it + 1] = self.log_likelihood(Z, y, n, coef)
        draws = {"coef": out_coef, "sigma": out_sigma, "log_lik": out_ll}
        if num_chains is None:
            draws = {k: v[0] for k, v in draws.items()}
        return draws

    def rescale_groups(
        self,
        Z: Float[Tensor, "num_cells num_coef"],
        y: Float[Tensor, " num_cells"],
        n: Float[Tensor, " num_cells"],
        omega: Float[Tensor, "*batch num_cells"],
        coef: Float[Tensor, "*batch num_coef"],
        sigma: Float[Tensor, "*batch 4"],
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Float[Tensor, "*batch num_coef"], Float[Tensor, "*batch 4"]]:
        r"""Parameter-expansion move: :math:`(a^k, \sigma_k) \to (\lambda_k a^k, |\lambda_k| \sigma_k)`.

        The multiplicative group acts on every group :math:`k` separately; by the
        generalized Gibbs step of Liu & Wu (1999), drawing :math:`\lambda` from
        :math:`\pi(T_\lambda x)\,|\det \partial T_\lambda| \prod_k d\lambda_k/|\lambda_k|`
        leaves the target :math:`\pi(\theta, \sigma \mid \omega, y)` invariant. The Jacobian
        :math:`|\lambda_k|^{L_k+1}`, the Haar measure :math:`1/|\lambda_k|` and the prior's
        :math:`\prod_\ell N(\lambda_k a^k_\ell; 0, \lambda_k^2\sigma_k^2) \propto |\lambda_k|^{-L_k}`
        cancel, and given :math:`\omega` the likelihood is Gaussian in
        :math:`\eta = \eta^{\rm fixed} + U\lambda` (column :math:`k` of :math:`U` holds each
        cell's intercept of group :math:`k`). So :math:`\lambda \sim N(J^{-1}h, J^{-1})`,
        :math:`J = U^\top \Omega U + \mathrm{diag}(\sigma_k^2 / s_\sigma^2)`,
        :math:`h = U^\top(\kappa - \omega \odot \eta^{\rm fixed})`: a 4-dimensional Gaussian block.
        It moves a group's intercepts and their scale together, which the one-at-a-time
        updates of :math:`\theta \mid \sigma` and :math:`\sigma \mid \theta` cannot.
        """
        J, h = self.rescale_conditional(Z, y, n, omega, coef, sigma)
        lam = sample_gaussian_information(J, h, generator=generator)
        return self.apply_rescale(coef, sigma, lam)

    def rescale_conditional(
        self,
        Z: Float[Tensor, "num_cells num_coef"],
        y: Float[Tensor, " num_cells"],
        n: Float[Tensor, " num_cells"],
        omega: Float[Tensor, "*batch num_cells"],
        coef: Float[Tensor, "*batch num_coef"],
        sigma: Float[Tensor, "*batch 4"],
    ) -> tuple[Float[Tensor, "*batch 4 4"], Float[Tensor, "*batch 4"]]:
        r"""Precision :math:`J` and linear term :math:`h` of :math:`\lambda` in :meth:`rescale_groups`."""
        F = self.num_fixed
        # column of coef holding each cell's intercept of each group: (cells, 4)
        index = torch.stack([Z[:, self.group_slices[g]].argmax(-1) + self.group_slices[g].start for g in GROUPS], -1)
        U = coef[..., index]  # (*batch, cells, 4)
        eta_fixed = coef[..., :F] @ Z[:, :F].T
        J = (U.mT * omega.unsqueeze(-2)) @ U + torch.diag_embed(sigma**2 / self.priors.group_scale**2)
        h = (U.mT @ (y - n / 2 - omega * eta_fixed).unsqueeze(-1)).squeeze(-1)
        return J, h

    def apply_rescale(
        self, coef: Float[Tensor, "*batch num_coef"], sigma: Float[Tensor, "*batch 4"], lam: Float[Tensor, "*batch 4"]
    ) -> tuple[Float[Tensor, "*batch num_coef"], Float[Tensor, "*batch 4"]]:
        r""":math:`T_\lambda`: multiply group :math:`k`'s intercepts by :math:`\lambda_k`
        and :math:`\sigma_k` by :math:`|\lambda_k|`."""
        F = self.num_fixed
        return torch.cat([coef[..., :F], coef[..., F:] * lam[..., self._group_of]], -1), sigma * lam.abs()

    # ------------------------------------------------------------------ poststratification
    def cell_probabilities(
        self, coef: Float[Tensor, "*batch num_coef"], cells: pd.DataFrame
    ) -> Float[Tensor, "*batch num_cells"]:
        r""":math:`p_c = \operatorname{logit}^{-1}(z_c^\top\theta)` for every row of ``cells``."""
        coef = self._check_coef(coef)
        return torch.sigmoid(coef @ self.design_matrix(cells).T)

    def poststratify(
        self,
        coef: Float[Tensor, "*batch num_coef"],
        table: pd.DataFrame,
        by: str | None = None,
        *,
        counts: str = "N",
        complete: bool = True,
        chunk_size: int = 512,
    ) -> Float[Tensor, "*batch"] | Float[Tensor, "*batch num_groups"]:
        r"""Poststratified preference per draw: :math:`\sum_c N_c p_c(\theta) / \sum_c N_c`,
        over the population (``by=None``) or per level of ``by`` (e.g. ``"state"``).

        Computed ``chunk_size`` draws at a time, so that the (draws x cells) matrix of
        probabilities never has to fit in memory at once. ``complete=False`` allows a
        table of a sub-population (see :func:`check_table`).
        """
        coef = self._check_coef(coef)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1; got {chunk_size!r}")
        W, _ = poststratification_weights(table, by, levels=self.levels, counts=counts, complete=complete)
        Zt = self.design_matrix(table).T
        flat = coef.reshape(-1, self.num_coef)
        out = torch.cat([torch.sigmoid(chunk @ Zt) @ W for chunk in flat.split(chunk_size)])
        out = out.reshape(*coef.shape[:-1], W.shape[1])
        return out.squeeze(-1) if by is None else out

    def _check_coef(self, coef: Tensor) -> Tensor:
        if not isinstance(coef, Tensor):
            raise TypeError(f"coef must be a torch.Tensor; got {type(coef).__name__}")
        if coef.ndim == 0 or coef.shape[-1] != self.num_coef:
            raise ValueError(
                f"coef must have {self.num_coef} coefficients on its last axis (see coef_names); "
                f"got shape {tuple(coef.shape)}"
            )
        return coef.to(DTYPE)
