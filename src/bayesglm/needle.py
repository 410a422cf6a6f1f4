r"""The Needle: an election-night forecast that updates as states report.

Results arrive one state at a time in a fixed order; after the :math:`t`-th state
(time stamp :math:`t = 0, \dots, T-1`, :math:`T = 50`) we refit the hierarchical
binomial GLM (:mod:`bayesglm.hierarchical`) to the counties revealed so far and
simulate the rest:

1. **Fit every time stamp at once.** County :math:`i` is revealed at stamp
   :math:`t` iff its state is among the first :math:`t+1` of the order. Stamp
   :math:`t`'s data are :math:`(m_{ti} y_i, m_{ti} N_i)` with the reveal mask
   :math:`m_{ti} \in \{0, 1\}`. A county with :math:`N_i = 0` contributes the
   factor :math:`\binom{0}{0} \sigma^0 (1-\sigma)^0 = 1` to the likelihood, and
   its Pólya-gamma variable is :math:`\mathrm{PG}(0, c) = \delta_0`, so it
   adds nothing to :math:`J_s` or :math:`h_s`: the masked fit is *exactly* the
   fit to the revealed counties alone. All :math:`T` fits then run as one
   batched sampler with a leading time-stamp axis.
2. **Predict.** For every stamp :math:`t` and kept draw :math:`m`, draw every
   unrevealed county's Democratic votes
   :math:`\hat y_i^{(t,m)} \sim \mathrm{Bin}(N_i, \sigma(x_i^\top \beta_{s_i}^{(t,m)} + o_i))`,
   add the revealed votes, give each state's electors to the party with more
   votes, count the Democratic electors and compare with 270.
3. **Summarize** per stamp: a credible interval of Democratic electors and
   :math:`P(\text{Democrats win})`.

The improved needle of the reflection (Part 5) adds a known offset
:math:`o_i = \mathrm{logit}` of county :math:`i`'s Democratic share in the previous
election, so that the covariates model the *swing* from last time, and
:func:`backtest` scores both needles on every election with a previous one.

Facts (the homework's rules): the 50 "states" (Alaska has no demographics and is
left out; the District of Columbia counts as a state) report in
:data:`STATE_ORDER`; each is worth :data:`ELECTORS` (2012-2020 apportionment,
winner-take-all everywhere, Maine and Nebraska included), 535 electors in all;
270 win.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .data import Responses, load_year
from .diagnostics import effective_sample_size
from .hierarchical import HierarchicalBinomialGLM

__all__ = [
    "STATE_ORDER",
    "ELECTORS",
    "TOTAL_ELECTORS",
    "WIN_THRESHOLD",
    "check_state_order",
    "electors_per_state",
    "reveal_masks",
    "mask_responses",
    "state_sums",
    "Outcome",
    "decide_election",
    "actual_outcome",
    "posterior_mean_global_beta",
    "fit_needle",
    "kept_draws",
    "NeedleForecast",
    "predict_electors",
    "summarize_needle",
    "forecast_scores",
    "swing_offset",
    "BacktestResult",
    "backtest",
]

DTYPE = torch.float64

#: The order in which the states report on election night (the homework's order).
STATE_ORDER: tuple[str, ...] = (
    "INDIANA", "KENTUCKY", "VERMONT", "WEST VIRGINIA", "ALABAMA", "MISSISSIPPI",
    "OKLAHOMA", "TENNESSEE", "CONNECTICUT", "MARYLAND", "MASSACHUSETTS",
    "RHODE ISLAND", "FLORIDA", "SOUTH CAROLINA", "ARKANSAS", "NEW JERSEY",
    "DELAWARE", "ILLINOIS", "LOUISIANA", "NEBRASKA", "NORTH DAKOTA",
    "SOUTH DAKOTA", "WYOMING", "NEW YORK", "OHIO", "TEXAS", "MISSOURI",
    "MONTANA", "UTAH", "COLORADO", "DISTRICT OF COLUMBIA", "KANSAS", "IOWA",
    "MAINE", "IDAHO", "CALIFORNIA", "WASHINGTON", "NORTH CAROLINA", "OREGON",
    "NEW MEXICO", "VIRGINIA", "HAWAII", "GEORGIA", "NEW HAMPSHIRE",
    "PENNSYLVANIA", "MINNESOTA", "WISCONSIN", "MICHIGAN", "NEVADA", "ARIZONA",
)  # fmt: skip

#: Electors per state (2012-2020 apportionment; Alaska, with 3, is absent).
ELECTORS: Mapping[str, int] = MappingProxyType({
    "ALABAMA": 9, "ARIZONA": 11, "ARKANSAS": 6, "CALIFORNIA": 55, "COLORADO": 9,
    "CONNECTICUT": 7, "DELAWARE": 3, "DISTRICT OF COLUMBIA": 3, "FLORIDA": 29,
    "GEORGIA": 16, "HAWAII": 4, "IDAHO": 4, "ILLINOIS": 20, "INDIANA": 11,
    "IOWA": 6, "KANSAS": 6, "KENTUCKY": 8, "LOUISIANA": 8, "MAINE": 4,
    "MARYLAND": 10, "MASSACHUSETTS": 11, "MICHIGAN": 16, "MINNESOTA": 10,
    "MISSISSIPPI": 6, "MISSOURI": 10, "MONTANA": 3, "NEBRASKA": 5, "NEVADA": 6,
    "NEW HAMPSHIRE": 4, "NEW JERSEY": 14, "NEW MEXICO": 5, "NEW YORK": 29,
    "NORTH CAROLINA": 15, "NORTH DAKOTA": 3, "OHIO": 18, "OKLAHOMA": 7,
    "OREGON": 7, "PENNSYLVANIA": 20, "RHODE ISLAND": 4, "SOUTH CAROLINA": 9,
    "SOUTH DAKOTA": 3, "TENNESSEE": 11, "TEXAS": 38, "UTAH": 6, "VERMONT": 3,
    "VIRGINIA": 13, "WASHINGTON": 12, "WEST VIRGINIA": 5, "WISCONSIN": 10,
    "WYOMING": 3,
})  # fmt: skip

#: Electors at stake without Alaska.
TOTAL_ELECTORS = 535
#: Electors needed to win.
WIN_THRESHOLD = 270

# Prediction works on blocks of this many counties of one state (zero padded).
_BLOCK = 32
# Largest number of binomial draws held in memory at once by predict_electors.
_CHUNK_ELEMENTS = 1 << 22


# =================================================================== facts, masks
def _check_state_names(state_names: Sequence[str]) -> list[str]:
    if isinstance(state_names, str) or not isinstance(state_names, Sequence):
        raise TypeError(f"state_names must be a sequence of state names; got {type(state_names).__name__}")
    names = list(state_names)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError("state_names must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise ValueError("state_names has duplicates")
    return names


def check_state_order(order: Sequence[str], state_names: Sequence[str]) -> tuple[str, ...]:
    """Validate a reporting order: every state of ``state_names`` exactly once.

    Raises ValueError naming the unknown, missing or repeated states.
    """
    names = _check_state_names(state_names)
    if isinstance(order, str) or not isinstance(order, Sequence):
        raise TypeError(f"order must be a sequence of state names; got {type(order).__name__}")
    order = tuple(order)
    if not all(isinstance(name, str) for name in order):
        raise TypeError("order must contain state names (strings)")
    unknown = sorted(set(order) - set(names))
    if unknown:
        raise ValueError(f"order names unknown states {unknown}; known states are state_names (e.g. {names[:3]})")
    repeated = sorted({name for name in order if order.count(name) > 1})
    if repeated:
        raise ValueError(f"order lists these states more than once: {repeated}")
    missing = [name for name in names if name not in order]
    if missing:
        raise ValueError(f"order must list every state once; missing {missing}")
    return order


def electors_per_state(
    state_names: Sequence[str], electors: Mapping[str, int] = ELECTORS
) -> Int[Tensor, " num_states"]:
    """Electors of each state, aligned with ``state_names`` (the state codes ``s``)."""
    names = _check_state_names(state_names)
    if not isinstance(electors, Mapping):
        raise TypeError(f"electors must be a mapping from state name to electors; got {type(electors).__name__}")
    missing = [name for name in names if name not in electors]
    if missing:
        raise ValueError(f"electors has no entry for {missing}")
    unknown = sorted(set(electors) - set(names))
    if unknown:
        raise ValueError(f"electors names states that are not in state_names: {unknown}")
    values = [electors[name] for name in names]
    bad = {n: v for n, v in zip(names, values) if isinstance(v, bool) or not isinstance(v, Integral) or v < 1}
    if bad:
        raise ValueError(f"electors must be positive integers; got {bad}")
    return torch.tensor(values, dtype=torch.long)


def _check_codes(s: Tensor, num_states: int) -> Tensor:
    if not isinstance(s, Tensor):
        raise TypeError(f"s must be a torch.Tensor of state codes; got {type(s).__name__}")
    if s.ndim != 1 or s.dtype.is_floating_point or s.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise ValueError(f"s must be a 1-d integer tensor of state codes; got shape {tuple(s.shape)}, dtype {s.dtype}")
    if s.numel() and (s.min() < 0 or s.max() >= num_states):
        raise ValueError(f"state codes s must lie in [0, {num_states}) (indices into state_names)")
    return s.long()


def reveal_masks(
    s: Int[Tensor, " num_counties"],
    state_names: Sequence[str],
    order: Sequence[str] = STATE_ORDER,
) -> Bool[Tensor, "num_stamps num_counties"]:
    r"""Reveal masks :math:`m_{ti} = [\mathrm{rank}(s_i) \le t]`, one row per time stamp.

    ``rank(s)`` is the position of state ``s`` in ``order``: at stamp ``t`` the first
    ``t + 1`` states of the order have reported. Returns a (T, n) boolean tensor,
    T = number of states.
    """
    names = _check_state_names(state_names)
    order = check_state_order(order, names)
    s = _check_codes(s, len(names))
    rank = torch.tensor([order.index(name) for name in names], dtype=torch.long)
    stamps = torch.arange(len(order))
    return rank[s].unsqueeze(0) <= stamps.unsqueeze(1)


def _check_mask(masks: Tensor, n: int, name: str = "masks") -> Tensor:
    if not isinstance(masks, Tensor):
        raise TypeError(f"{name} must be a boolean torch.Tensor; got {type(masks).__name__}")
    if masks.dtype != torch.bool:
        raise TypeError(f"{name} must have dtype torch.bool (True = revealed); got {masks.dtype}")
    if masks.ndim < 1 or masks.shape[-1] != n:
        raise ValueError(f"{name} must have shape (*batch, num_counties = {n}); got {tuple(masks.shape)}")
    return masks


def mask_responses(
    y: Float[Tensor, " num_counties"],
    N: Float[Tensor, " num_counties"],
    masks: Bool[Tensor, "*batch num_counties"],
) -> tuple[Float[Tensor, "*batch num_counties"], Float[Tensor, "*batch num_counties"]]:
    r"""Masked responses :math:`(m_{ti} y_i, m_{ti} N_i)`: unrevealed counties get y = N = 0."""
    for name, value in (("y", y), ("N", N)):
        if not isinstance(value, Tensor) or value.ndim != 1:
            raise ValueError(f"{name} must be a 1-d tensor (num_counties,)")
    if y.shape != N.shape:
        raise ValueError(f"y and N must have the same shape; got {tuple(y.shape)} and {tuple(N.shape)}")
    masks = _check_mask(masks, y.shape[0])
    keep = masks.to(DTYPE)
    return y.to(DTYPE) * keep, N.to(DTYPE) * keep


def state_sums(
    values: Float[Tensor, "*batch num_counties"], s: Int[Tensor, " num_counties"], num_states: int
) -> Float[Tensor, "*batch num_states"]:
    r"""Per-state totals :math:`\sum_{i: s_i = s} v_i` over the last axis (``index_add``)."""
    s = _check_codes(s, num_states)
    if values.shape[-1] != s.shape[0]:
        raise ValueError(f"values must end with num_counties = {s.shape[0]}; got {tuple(values.shape)}")
    out = values.new_zeros(*values.shape[:-1], num_states)
    return out.index_add_(-1, s, values)


@dataclass(frozen=True)
class Outcome:
    """An election decided state by state (any leading batch shape, e.g. (T, M)).

    Attributes:
        dem_states: whether the Democrats carry each state, (*batch, S).
        dem_electors: Democratic electors, (*batch,).
        rep_electors: Republican electors, (*batch,).
        dem_wins: whether the Democrats reach 270, (*batch,).
    """

    dem_states: Bool[Tensor, "*batch num_states"]
    dem_electors: Int[Tensor, "*batch"]
    rep_electors: Int[Tensor, "*batch"]
    dem_wins: Bool[Tensor, "*batch"]


def decide_election(
    dem_votes: Float[Tensor, "*batch num_states"],
    rep_votes: Float[Tensor, "*batch num_states"],
    electors: Int[Tensor, " num_states"],
    win_threshold: int = WIN_THRESHOLD,
) -> Outcome:
    """Winner-take-all: a state's electors go to the party with more votes; 270 win.

    The Democrats carry a state iff their votes are *strictly* more than the
    Republicans'; an exact tie (a state with an even two-party total split exactly in
    half: rare, but among tens of thousands of simulated elections it happens) goes to
    the Republicans, so that every elector is assigned.
    """
    if dem_votes.shape != rep_votes.shape:
        raise ValueError(
            f"dem_votes and rep_votes must have the same shape; got {tuple(dem_votes.shape)}, {tuple(rep_votes.shape)}"
        )
    if dem_votes.shape[-1:] != electors.shape:
        raise ValueError(f"votes end with {dem_votes.shape[-1]} states but electors has {electors.numel()}")
    dem_states = dem_votes > rep_votes
    rep_states = ~dem_states
    dem_electors = (dem_states.long() * electors).sum(-1)
    rep_electors = (rep_states.long() * electors).sum(-1)
    return Outcome(dem_states, dem_electors, rep_electors, dem_electors >= win_threshold)


def actual_outcome(responses: Responses, electors: Mapping[str, int] = ELECTORS) -> Outcome:
    """What the votes of ``responses`` decide under the rules (winner-take-all, no Alaska)."""
    S = len(responses.state_names)
    dem = state_sums(responses.y.to(DTYPE), responses.s, S)
    rep = state_sums((responses.N - responses.y).to(DTYPE), responses.s, S)
    return decide_election(dem, rep, electors_per_state(responses.state_names, electors))


# ========================================================================== fits
def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def _check_iters(num_iters, burn, num_chains) -> tuple[int, int, int | None]:
    num_iters = _check_positive_int("num_iters", num_iters)
    burn = _check_positive_int("burn", burn, 0)
    if burn >= num_iters:
        raise ValueError(f"burn ({burn}) must be smaller than num_iters ({num_iters}): no draws would be kept")
    if num_chains is not None:
        num_chains = _check_positive_int("num_chains", num_chains)
    return num_iters, burn, num_chains


def _fit(
    s: Int[Tensor, " n"],
    y: Float[Tensor, "*batch n"],
    N: Float[Tensor, "*batch n"],
    X: Float[Tensor, "n p"],
    num_states: int,
    prior_mean: Float[Tensor, "*mean_batch p"],
    prior_sd: float,
    dispersion: float,
    offset: Float[Tensor, "*batch n"] | None,
    num_iters: int,
    num_chains: int | None,
    generator: torch.Generator | None,
    progress: bool,
) -> dict[str, Tensor]:
    r"""Hierarchical fit with :math:`\Sigma = \sigma^2 I`; every chain starts at a prior draw of :math:`\beta_0`.

    The model takes a single prior mean. A prior mean per batch entry (one per
    election, say) uses the exact reparametrization :math:`\beta = \mu + \delta`:
    :math:`\delta_0 \sim N(0, \Sigma)`, :math:`\delta_s \mid \delta_0 \sim N(\delta_0, \nu^2 I)`
    and the linear predictor :math:`x_i^\top \delta_{s_i} + (x_i^\top \mu + o_i)`, i.e.
    a zero prior mean and the offset :math:`x_i^\top \mu + o_i`; :math:`\mu` is added
    back to the draws.
    """
    p = X.shape[1]
    if not isinstance(prior_mean, Tensor) or prior_mean.ndim < 1 or prior_mean.shape[-1] != p:
        raise ValueError(f"prior_mean must be a tensor of shape (*batch, num_features = {p})")
    prior_mean = prior_mean.to(DTYPE)
    if not torch.isfinite(prior_mean).all():
        raise ValueError("prior_mean must be finite")
    mean_batch = prior_mean.shape[:-1]
    shifted = len(mean_batch) > 0
    if shifted:
        shift = prior_mean @ X.to(DTYPE).T  # (*mean_batch, n)
        offset = shift if offset is None else offset.to(DTYPE) + shift
    shapes = [y.shape[:-1]] + ([] if offset is None else [offset.shape[:-1]])
    try:
        batch = torch.broadcast_shapes(*shapes)
    except RuntimeError as err:
        raise ValueError(f"batch shapes of the data, offset and prior_mean do not broadcast: {shapes}") from err
    chains = () if num_chains is None else (num_chains,)
    zero = torch.zeros(p, dtype=DTYPE)
    # States without data get the sampler's collapsed global step (HierarchicalBinomialGLM._sample_global).
    model = HierarchicalBinomialGLM(
        num_states, zero if shifted else prior_mean, prior_sd**2 * torch.eye(p, dtype=DTYPE), dispersion,
    )
    init = prior_sd * torch.randn(*batch, *chains, p, dtype=DTYPE, generator=generator)
    if not shifted:
        init = init + prior_mean
    samples = model.gibbs(
        s, y.to(DTYPE), N.to(DTYPE), X.to(DTYPE), init, num_iters,
        num_chains=num_chains, generator=generator, progress=progress, offset=offset,
    )
    if shifted:
        mu = prior_mean.reshape(*mean_batch, *(1,) * len(chains), 1, p)
        samples["global_beta"] = samples["global_beta"] + mu
        samples["local_betas"] = samples["local_betas"] + mu.unsqueeze(-2)
    return samples


def _check_responses(responses) -> Responses:
    if not isinstance(responses, Responses):
        raise TypeError(f"responses must be a bayesglm.data.Responses (from load_year); got {type(responses).__name__}")
    return responses


def posterior_mean_global_beta(
    responses: Responses,
    *,
    prior_sd: float = 1.0,
    dispersion: float = 0.1,
    num_iters: int = 500,
    burn: int = 100,
    num_chains: int = 2,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> Float[Tensor, " num_features"]:
    r"""Posterior mean of :math:`\beta_0` of the hierarchical model fitted to one whole election.

    Prior :math:`\beta_0 \sim N(0, \sigma^2 I)` with :math:`\sigma` = ``prior_sd``, dispersion
    :math:`\nu`; the average over all chains of the draws after ``burn``. This is the
    Needle's prior mean :math:`\mu` for the next election.
    """
    responses = _check_responses(responses)
    prior_sd, dispersion = _check_positive("prior_sd", prior_sd), _check_positive("dispersion", dispersion)
    num_iters, burn, num_chains = _check_iters(num_iters, burn, num_chains)
    num_chains = num_chains or 1
    p = responses.X.shape[1]
    samples = _fit(
        responses.s, responses.y, responses.N, responses.X, len(responses.state_names),
        torch.zeros(p, dtype=DTYPE), prior_sd, dispersion, None, num_iters, num_chains, generator, progress,
    )
    return samples["global_beta"][:, burn + 1 :].mean((0, 1))


def fit_needle(
    responses: Responses,
    masks: Bool[Tensor, "num_stamps num_counties"],
    prior_mean: Float[Tensor, " num_features"],
    *,
    prior_sd: float = 0.25,
    dispersion: float = 0.1,
    num_iters: int = 1000,
    num_chains: int | None = None,
    offset: Float[Tensor, " num_counties"] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> dict[str, Tensor]:
    r"""Fit the hierarchical GLM at every time stamp in one batched run (Problem 4a).

    Stamp :math:`t` sees :math:`(m_{ti} y_i, m_{ti} N_i)`: unrevealed counties have
    :math:`N_i = 0`, hence :math:`\omega_i = 0` and no likelihood, exactly as if they were
    left out. Prior :math:`\beta_0 \sim N(\mu, \sigma^2 I)` (:math:`\sigma` = ``prior_sd``),
    :math:`\beta_s \mid \beta_0 \sim N(\beta_0, \nu^2 I)` (:math:`\nu` = ``dispersion``, a
    standard deviation). Each chain starts from a draw of :math:`\beta_0` from its prior.

    Returns:
        the sampler's dict with a leading time-stamp axis: ``global_beta``
        (T, [C,] num_iters+1, p), ``local_betas`` (T, [C,] num_iters+1, S, p), ``lp``
        (T, [C,] num_iters+1); draw 0 is the starting point.
    """
    responses = _check_responses(responses)
    prior_sd, dispersion = _check_positive("prior_sd", prior_sd), _check_positive("dispersion", dispersion)
    num_iters, _, num_chains = _check_iters(num_iters, 0, num_chains)
    masks = _check_mask(masks, responses.y.shape[0])
    if masks.ndim != 2:
        raise ValueError(f"masks must have shape (num_stamps, num_counties); got {tuple(masks.shape)}")
    p = responses.X.shape[1]
    if not isinstance(prior_mean, Tensor) or prior_mean.shape != (p,):
        raise ValueError(f"prior_mean must be a tensor of shape (num_features,) = ({p},)")
    if offset is not None:
        if not isinstance(offset, Tensor) or offset.shape != responses.y.shape:
            raise ValueError(f"offset must be a tensor of shape (num_counties,) = ({responses.y.shape[0]},)")
    y, N = mask_responses(responses.y, responses.N, masks)
    return _fit(
        responses.s, y, N, responses.X, len(responses.state_names), prior_mean, prior_sd, dispersion,
        offset, num_iters, num_chains, generator, progress,
    )


def kept_draws(samples: dict[str, Tensor], burn: int, *, chains: bool) -> dict[str, Tensor]:
    """Drop draw 0 and the next ``burn`` draws and merge chains: (*batch, M, ...) with M = C x kept.

    ``chains`` says whether the draws carry a chain axis (``num_chains`` was given).
    """
    burn = _check_positive_int("burn", burn, 0)
    event_dims = {"global_beta": 1, "local_betas": 2, "lp": 0}
    out = {}
    for key, value in samples.items():
        if key not in event_dims:
            continue
        axis = value.ndim - event_dims[key] - 1  # the iteration axis
        if burn + 1 >= value.shape[axis]:
            raise ValueError(f"burn ({burn}) leaves no draws of {key} (it has {value.shape[axis]} including draw 0)")
        kept = value.narrow(axis, burn + 1, value.shape[axis] - burn - 1)
        out[key] = kept.flatten(axis - 1, axis) if chains else kept
    return out


# ==================================================================== prediction
@dataclass(frozen=True)
class NeedleForecast(Outcome):
    """Simulated elections, one per time stamp and kept draw: ``Outcome`` of shape (*batch, M)
    plus the simulated Democratic votes per state, ``dem_votes`` (*batch, M, S), and the
    two-party votes per state, ``total_votes`` (*batch, S)."""

    dem_votes: Float[Tensor, "*batch num_draws num_states"]
    total_votes: Float[Tensor, "*batch num_states"]


def _county_blocks(s: Tensor, num_states: int, size: int) -> tuple[Tensor, Tensor]:
    """Counties grouped by state into blocks of ``size`` (index n = padding): (index, block_state)."""
    n = s.shape[0]
    counts = torch.bincount(s, minlength=num_states)
    order = torch.argsort(s, stable=True)
    blocks_per_state = (counts + size - 1) // size
    first_block = torch.cumsum(blocks_per_state, 0) - blocks_per_state
    first_county = torch.cumsum(counts, 0) - counts
    sorted_states = s[order]
    rank = torch.arange(n) - first_county[sorted_states]
    index = torch.full((int(blocks_per_state.sum()), size), n, dtype=torch.long)
    index[first_block[sorted_states] + rank // size, rank % size] = order
    return index, torch.repeat_interleave(torch.arange(num_states), blocks_per_state)


def _broadcast_to(name: str, value: Tensor, batch: torch.Size, n: int) -> Tensor:
    try:
        return value.expand(*batch, n)
    except RuntimeError as err:
        raise ValueError(f"{name} of shape {tuple(value.shape)} does not broadcast to (*batch, n) = {(*batch, n)}") from err


def predict_electors(
    local_betas: Float[Tensor, "*batch num_draws num_states num_features"],
    X: Float[Tensor, "num_counties num_features"],
    s: Int[Tensor, " num_counties"],
    y: Float[Tensor, "*batch num_counties"],
    N: Float[Tensor, "*batch num_counties"],
    revealed: Bool[Tensor, "*batch num_counties"],
    electors: Int[Tensor, " num_states"],
    *,
    offset: Float[Tensor, "*batch num_counties"] | None = None,
    generator: torch.Generator | None = None,
) -> NeedleForecast:
    r"""Posterior predictive election for every batch entry (time stamp) and draw (Problem 4b).

    For each unrevealed county, :math:`\hat y_i \sim \mathrm{Bin}(N_i, \sigma(x_i^\top \beta_{s_i} + o_i))`
    with ``torch.binomial``; revealed counties keep their votes. Per state,
    :math:`D_s = \sum_{i \in s} (\text{revealed } y_i \text{ or } \hat y_i)` against
    :math:`R_s = \sum_{i \in s} N_i - D_s`; the state's electors go to the larger.

    Vectorized over the batch, the draws and the states: the unrevealed counties are
    cut into blocks of 32 counties of one state, the linear predictors of all
    (batch entry, block) pairs are one batched matrix product, and the block sums
    are scattered into states with ``index_add``. The draws are processed in chunks
    of a few million binomials only to bound memory (a 50-stamp forecast with 1000
    draws simulates about 77 million county votes).

    Args:
        local_betas: :math:`\beta_s^{(t,m)}`, (*batch, M, S, p).
        X, s: design (n, p) and state codes (n,).
        y, N: Democratic and two-party votes, broadcastable to (*batch, n); N of
            unrevealed counties is the number of votes to simulate.
        revealed: which counties have reported, broadcastable to (*batch, n).
        electors: electors per state (S,).
        offset: optional offset :math:`o_i` of the linear predictor, broadcastable to (*batch, n).
        generator: torch.Generator for the binomial draws.
    """
    if not isinstance(local_betas, Tensor) or local_betas.ndim < 3:
        raise ValueError("local_betas must be a tensor of shape (*batch, num_draws, num_states, num_features)")
    if not isinstance(X, Tensor) or X.ndim != 2:
        raise ValueError("X must be a tensor of shape (num_counties, num_features)")
    n, p = X.shape
    if not isinstance(electors, Tensor) or electors.ndim != 1:
        raise ValueError("electors must be a 1-d tensor (num_states,); see electors_per_state")
    S = electors.shape[0]
    if local_betas.shape[-2:] != (S, p):
        raise ValueError(
            f"local_betas must end with (num_states, num_features) = ({S}, {p}); got {tuple(local_betas.shape)}"
        )
    s = _check_codes(s, S)
    if s.shape[0] != n:
        raise ValueError(f"s has {s.shape[0]} counties but X has {n} rows")
    batch, M = local_betas.shape[:-3], local_betas.shape[-3]
    B = math.prod(batch)
    for name, value in (("y", y), ("N", N)):
        if not isinstance(value, Tensor) or value.ndim < 1 or value.shape[-1] != n:
            raise ValueError(f"{name} must be a tensor of shape (*batch, num_counties = {n})")
    revealed = _check_mask(revealed, n, "revealed")
    y = _broadcast_to("y", y.to(DTYPE), batch, n).reshape(B, n)
    N = _broadcast_to("N", N.to(DTYPE), batch, n).reshape(B, n)
    if ((y < 0) | (y > N)).any():
        raise ValueError("need 0 <= y <= N")
    revealed = _broadcast_to("revealed", revealed, batch, n).reshape(B, n)
    offset = torch.zeros(n, dtype=DTYPE) if offset is None else offset.to(DTYPE)
    offset = _broadcast_to("offset", offset, batch, n).reshape(B, n)
    betas = local_betas.to(DTYPE).reshape(B, M, S, p)
    X = X.to(DTYPE)

    index, block_state = _county_blocks(s, S, _BLOCK)

    def blocks(values: Tensor) -> Tensor:  # (B, n) -> (B, num_blocks, K), zero padded
        return torch.cat([values, values.new_zeros(B, 1)], 1)[:, index]

    hidden = blocks(torch.where(revealed, 0.0, N))
    pair_batch, pair_block = (hidden.sum(-1) > 0).nonzero(as_tuple=True)  # blocks with votes to simulate
    pair_state = block_state[pair_block]
    X_pairs = torch.cat([X, X.new_zeros(1, p)])[index][pair_block]  # (P, K, p)
    N_pairs = hidden[pair_batch, pair_block]  # (P, K)
    offset_pairs = blocks(offset)[pair_batch, pair_block].unsqueeze(-1)  # (P, K, 1)
    target = pair_batch * S + pair_state
    simulated = torch.zeros(B * S, M, dtype=DTYPE)
    P = pair_batch.numel()
    chunk = max(1, _CHUNK_ELEMENTS // max(1, P * _BLOCK))
    for start in range(0, M if P else 0, chunk):  # chunks of draws: bounded memory, vectorized inside
        stop = min(start + chunk, M)
        beta = betas[pair_batch, start:stop, pair_state]  # (P, m, p)
        logits = torch.baddbmm(offset_pairs, X_pairs, beta.mT)  # (P, K, m)
        counts = N_pairs.unsqueeze(-1).expand_as(logits).contiguous()
        votes = torch.binomial(counts, torch.sigmoid(logits), generator=generator)
        simulated[:, start:stop].index_add_(0, target, votes.sum(1))
    known = state_sums(torch.where(revealed, y, 0.0), s, S)  # (B, S)
    total = state_sums(N, s, S)
    dem = known.unsqueeze(1) + simulated.reshape(B, S, M).transpose(1, 2)  # (B, M, S)
    outcome = decide_election(dem, total.unsqueeze(1) - dem, electors)
    return NeedleForecast(
        dem_states=outcome.dem_states.reshape(*batch, M, S),
        dem_electors=outcome.dem_electors.reshape(*batch, M),
        rep_electors=outcome.rep_electors.reshape(*batch, M),
        dem_wins=outcome.dem_wins.reshape(*batch, M),
        dem_votes=dem.reshape(*batch, M, S),
        total_votes=total.reshape(*batch, S),
    )


# ===================================================================== summaries
def summarize_needle(
    forecast: NeedleForecast | Outcome,
    order: Sequence[str] | None = STATE_ORDER,
    *,
    level: float = 0.95,
    num_chains: int | None = None,
) -> pd.DataFrame:
    r"""One row per time stamp: the credible interval of Democratic electors and :math:`P(\text{win})`.

    The interval is the central ``level`` interval of the draws (lower bound rounded
    down, upper bound rounded up to a draw, so it holds at least ``level`` of them).
    ``p_dem_win_se`` is the Monte Carlo standard error
    :math:`\sqrt{\hat p (1 - \hat p) / \mathrm{ESS}}`, with the effective sample size of
    the win indicator over ``num_chains`` chains (the draws are then taken as
    ``num_chains`` consecutive blocks), or M independent draws when ``num_chains`` is None
    (or a chain has fewer than 4 draws).
    ``order`` names the state reported at each stamp (``None``: no names).
    """
    electors = forecast.dem_electors
    if electors.ndim != 2:
        raise ValueError(f"summarize_needle expects draws of shape (num_stamps, num_draws); got {tuple(electors.shape)}")
    if not (0 < level < 1):
        raise ValueError(f"level must lie in (0, 1); got {level}")
    T, M = electors.shape
    if order is not None and len(order) != T:
        raise ValueError(f"order names {len(order)} states but the forecast has {T} time stamps")
    values = electors.to(DTYPE)
    lower = torch.quantile(values, (1 - level) / 2, dim=1, interpolation="lower")
    upper = torch.quantile(values, (1 + level) / 2, dim=1, interpolation="higher")
    median = torch.quantile(values, 0.5, dim=1, interpolation="nearest")
    wins = forecast.dem_wins.to(DTYPE)
    p_win = wins.mean(1)
    if num_chains is not None:
        num_chains = _check_positive_int("num_chains", num_chains)
        if M % num_chains:
            raise ValueError(f"num_draws ({M}) is not a multiple of num_chains ({num_chains})")
    if num_chains is None or M // num_chains < 4:  # too few draws per chain for split diagnostics
        ess = np.full(T, float(M))
    else:
        by_chain = wins.reshape(T, num_chains, M // num_chains).permute(1, 2, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ess = effective_sample_size(by_chain)
        ess = np.where(np.isfinite(ess), ess, float(M))
    p = p_win.numpy()
    table = pd.DataFrame(
        {
            "dem_electors_lower": lower.long().numpy(),
            "dem_electors_median": median.long().numpy(),
            "dem_electors_upper": upper.long().numpy(),
            "p_dem_win": p,
            "p_dem_win_se": np.sqrt(p * (1 - p) / ess),
        },
        index=pd.RangeIndex(1, T + 1, name="stamp"),
    )
    if order is not None:
        table.insert(0, "state", list(order))
    return table


def forecast_scores(
    p_win: Float[Tensor, " num_stamps"] | np.ndarray,
    lower: Int[Tensor, " num_stamps"] | np.ndarray,
    upper: Int[Tensor, " num_stamps"] | np.ndarray,
    actual_electors: int,
    actual_win: bool,
    *,
    num_draws: int,
    p_win_se: Float[Tensor, " num_stamps"] | np.ndarray | None = None,
    confident: float = 0.95,
) -> dict[str, float]:
    r"""Scores of a needle against what happened, averaged over the time stamps.

    - ``brier``: :math:`\frac1T \sum_t (\hat p_t - w)^2`, :math:`w` = 1 if the Democrats won
      (0 is perfect, 0.25 is a coin flip) {cite}`brier1950`;
    - ``log_score``: :math:`\frac1T \sum_t \log \hat p_t(\text{actual outcome})`, with the
      probabilities kept within :math:`[\frac{1}{2M}, 1 - \frac{1}{2M}]` (M draws cannot
      resolve smaller ones); 0 is perfect, :math:`\log \frac12 = -0.69` a coin flip;
    - ``coverage``: the fraction of stamps whose interval contains the actual electors;
    - ``called_at``: the first stamp (1-based) from which on the needle gave the actual
      winner at least ``confident``; ``wrong_calls``: the stamps at which it gave the
      actual *loser* at least ``confident``.

    With ``p_win_se`` (the Monte Carlo standard errors of :math:`\hat p_t`, independent
    across stamps since every stamp has its own chains), also ``brier_se`` and
    ``log_score_se``, their Monte Carlo standard errors by the delta method:
    :math:`\frac1T\sqrt{\sum_t 4(\hat p_t - w)^2 s_t^2}` and
    :math:`\frac1T\sqrt{\sum_t s_t^2 / \hat p_t(\text{actual})^2}`.
    """
    p = np.asarray(p_win, dtype=float)
    lower, upper = np.asarray(lower), np.asarray(upper)
    if p.ndim != 1 or lower.shape != p.shape or upper.shape != p.shape:
        raise ValueError("p_win, lower and upper must be 1-d arrays of the same length (one per stamp)")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_win must lie in [0, 1]")
    num_draws = _check_positive_int("num_draws", num_draws)
    outcome = 1.0 if actual_win else 0.0
    eps = 0.5 / num_draws
    p_actual = np.clip(np.where(actual_win, p, 1 - p), eps, 1 - eps)
    confident_right = np.asarray(np.where(actual_win, p, 1 - p) >= confident)
    # first stamp after which every stamp is confidently right
    tail_ok = np.flip(np.cumprod(np.flip(confident_right))).astype(bool)
    called = int(np.argmax(tail_ok)) + 1 if tail_ok.any() else None
    scores = {
        "brier": float(np.mean((p - outcome) ** 2)),
        "log_score": float(np.mean(np.log(p_actual))),
        "coverage": float(np.mean((lower <= actual_electors) & (actual_electors <= upper))),
        "called_at": called,
        "wrong_calls": int(np.sum(np.where(actual_win, 1 - p, p) >= confident)),
    }
    if p_win_se is not None:
        se = np.asarray(p_win_se, dtype=float)
        if se.shape != p.shape or (se < 0).any():
            raise ValueError("p_win_se must be a non-negative array like p_win")
        T = p.shape[0]
        scores["brier_se"] = float(np.sqrt(np.sum(4 * (p - outcome) ** 2 * se**2)) / T)
        scores["log_score_se"] = float(np.sqrt(np.sum(se**2 / p_actual**2)) / T)
    return scores


# ============================================== the improved needle and backtests
def swing_offset(previous: Responses, current: Responses) -> Float[Tensor, " num_counties"]:
    r"""Offset :math:`o_i = \mathrm{logit}\,\frac{y_i' + 1/2}{N_i' + 1}` from the previous election.

    :math:`y_i', N_i'` are county :math:`i`'s Democratic and two-party votes in
    ``previous``, aligned by FIPS with ``current`` (the half-counts keep the logit finite
    for unanimous counties). A county absent from the previous election (Broomfield,
    Colorado, in 2000) gets its state's previous share. With this offset the
    regression :math:`x_i^\top \beta_{s_i}` models the *swing* since last time.
    """
    previous, current = _check_responses(previous), _check_responses(current)
    if previous.state_names != current.state_names:
        raise ValueError("previous and current must have the same states (state_names differ)")
    S = len(current.state_names)
    share_state = (state_sums(previous.y, previous.s, S) + 0.5) / (state_sums(previous.N, previous.s, S) + 1)
    position = {fips: i for i, fips in enumerate(previous.fips)}
    where = torch.tensor([position.get(f, -1) for f in current.fips], dtype=torch.long)
    found = where >= 0
    share = share_state[current.s].clone()
    share[found] = (previous.y[where[found]] + 0.5) / (previous.N[where[found]] + 1)
    return torch.logit(share.to(DTYPE))


def _aligned(responses: Sequence[Responses]) -> tuple[Responses, Tensor, Tensor]:
    """Stack several elections on the counties of the largest one: y, N (years, n), N = 0 where absent."""
    reference = max(responses, key=lambda r: len(r.fips))
    position = {fips: i for i, fips in enumerate(reference.fips)}
    n = len(reference.fips)
    y = torch.zeros(len(responses), n, dtype=DTYPE)
    N = torch.zeros(len(responses), n, dtype=DTYPE)
    for k, r in enumerate(responses):  # a handful of elections
        if r.state_names != reference.state_names:
            raise ValueError(f"election {r.year} has different states from {reference.year}")
        missing = [f for f in r.fips if f not in position]
        if missing:
            raise ValueError(f"election {r.year} has counties that {reference.year} lacks: {missing[:5]}")
        where = torch.tensor([position[f] for f in r.fips], dtype=torch.long)
        if not torch.equal(reference.X[where], r.X):
            raise ValueError(f"covariates of {r.year} and {reference.year} disagree")
        y[k, where], N[k, where] = r.y.to(DTYPE), r.N.to(DTYPE)
    return reference, y, N


@dataclass(frozen=True)
class BacktestResult:
    """Both needles run on past elections.

    Attributes:
        summaries: one row per (model, year, stamp) with the columns of
            :func:`summarize_needle`.
        scores: one row per (year, model): :func:`forecast_scores` plus the actual
            Democratic electors and winner under the rules.
        prior_means: :math:`\\mu` of the baseline needle per year (fitted to year - 4), (years, p).
        num_draws: kept draws per stamp.
    """

    summaries: pd.DataFrame
    scores: pd.DataFrame
    prior_means: Float[Tensor, "num_years num_features"]
    num_draws: int


MODELS = ("baseline", "swing")


def backtest(
    years: Sequence[int] = (2004, 2008, 2012, 2016, 2020),
    *,
    order: Sequence[str] = STATE_ORDER,
    electors: Mapping[str, int] = ELECTORS,
    prior_iters: int = 300,
    prior_burn: int = 100,
    num_iters: int = 300,
    burn: int = 100,
    num_chains: int = 1,
    prior_sd: float = 0.25,
    dispersion: float = 0.1,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> BacktestResult:
    r"""Run the baseline and the swing needle on past elections and score them.

    For each year :math:`Y`:

    - **baseline**: the homework's needle, :math:`\mu` = posterior mean of :math:`\beta_0`
      from the hierarchical fit to :math:`Y - 4` (prior :math:`N(0, I)`, :math:`\nu` =
      ``dispersion``), :math:`\Sigma = \sigma^2 I` with :math:`\sigma` = ``prior_sd``;
    - **swing**: the same model with the offset :func:`swing_offset` (:math:`Y-4`'s
      county shares) and :math:`\mu = 0` (no swing expected), same :math:`\sigma, \nu`.

    The previous-year fits run as one batch over years, and both needles of a year as one
    batch over (model, stamp); every year uses the same reporting ``order`` and the same
    ``electors``. Scores compare each needle with what the votes decide under the rules.
    """
    years = [int(year) for year in years]
    if not years or len(set(years)) != len(years):
        raise ValueError(f"years must be distinct election years; got {years}")
    prior_iters, prior_burn, _ = _check_iters(prior_iters, prior_burn, None)
    num_iters, burn, num_chains = _check_iters(num_iters, burn, num_chains)
    prior_sd, dispersion = _check_positive("prior_sd", prior_sd), _check_positive("dispersion", dispersion)
    current = [load_year(year) for year in years]
    try:
        previous = [load_year(year - 4) for year in years]
    except Exception as err:
        raise ValueError(f"every backtest year needs the election four years earlier in the data: {err}") from err
    reference, y_prev, N_prev = _aligned(previous + current)
    y_prev, N_prev = y_prev[: len(years)], N_prev[: len(years)]
    S, p = len(reference.state_names), reference.X.shape[1]
    electors_t = electors_per_state(reference.state_names, electors)
    order = check_state_order(order, reference.state_names)
    masks = reveal_masks(reference.s, reference.state_names, order)

    # the baseline priors: one batched fit over the previous elections
    prior_draws = _fit(
        reference.s, y_prev, N_prev, reference.X, S, torch.zeros(p, dtype=DTYPE), 1.0, dispersion, None,
        prior_iters, 2, generator, progress,
    )
    prior_means = prior_draws["global_beta"][:, :, prior_burn + 1 :].mean((1, 2))  # (years, p)
    del prior_draws

    summaries, rows = [], []
    for k, (year, resp) in enumerate(zip(years, current)):  # one batched run per election
        _, y_now, N_now = _aligned([reference, resp])
        y_now, N_now = y_now[1], N_now[1]
        swing = swing_offset(previous[k], _reindex(resp, reference))
        offset = torch.stack([torch.zeros_like(swing), swing])  # (models, n): baseline, swing
        means = torch.stack([prior_means[k], torch.zeros(p, dtype=DTYPE)])  # (models, p)
        y_t, N_t = mask_responses(y_now, N_now, masks)  # (T, n)
        draws = _fit(
            reference.s, y_t, N_t, reference.X, S, means.unsqueeze(1), prior_sd, dispersion,
            offset.unsqueeze(1), num_iters, num_chains, generator, progress,
        )
        kept = kept_draws(draws, burn, chains=True)["local_betas"]  # (models, T, M, S, p)
        del draws
        forecast = predict_electors(
            kept, reference.X, reference.s, y_now, N_now, masks, electors_t,
            offset=offset.unsqueeze(1), generator=generator,
        )
        del kept
        actual = decide_election(
            state_sums(y_now, reference.s, S), state_sums(N_now - y_now, reference.s, S), electors_t
        )
        for j, model in enumerate(MODELS):
            one = Outcome(
                forecast.dem_states[j], forecast.dem_electors[j], forecast.rep_electors[j], forecast.dem_wins[j]
            )
            table = summarize_needle(one, order, num_chains=num_chains)
            scores = forecast_scores(
                table["p_dem_win"].to_numpy(), table["dem_electors_lower"].to_numpy(),
                table["dem_electors_upper"].to_numpy(), int(actual.dem_electors), bool(actual.dem_wins),
                num_draws=forecast.dem_electors.shape[-1], p_win_se=table["p_dem_win_se"].to_numpy(),
            )
            rows.append({"year": year, "model": model, **scores,
                         "actual_dem_electors": int(actual.dem_electors), "dem_won": bool(actual.dem_wins)})
            summaries.append(table.reset_index().assign(model=model, year=year))
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["model", "year", *[c for c in summary.columns if c not in ("model", "year")]]]
    return BacktestResult(
        summaries=summary,
        scores=pd.DataFrame(rows).set_index(["year", "model"]),
        prior_means=prior_means,
        num_draws=(num_iters - burn) * num_chains,
    )


def _reindex(responses: Responses, reference: Responses) -> Responses:
    """``responses`` on the counties of ``reference`` (absent counties: y = N = 0)."""
    _, y, N = _aligned([reference, responses])
    return Responses(
        year=responses.year, fips=list(reference.fips), state_names=list(reference.state_names),
        covariate_names=list(reference.covariate_names), X=reference.X, y=y[1], N=N[1], s=reference.s,
    )
