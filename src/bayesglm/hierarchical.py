r"""A hierarchical binomial GLM: one weight vector per state, tied to a global one.

The model, for counties :math:`i = 1, \dots, n` in states :math:`s_i \in \{0, \dots, S-1\}`:

.. math::

    \beta_0 \sim N(\mu, \Sigma), \qquad
    \beta_s \mid \beta_0 \sim N(\beta_0, \nu^2 I) \quad (s = 0, \dots, S-1), \qquad
    y_i \sim \mathrm{Bin}\big(N_i, \sigma(x_i^\top \beta_{s_i} + o_i)\big),

with a known offset :math:`o_i` (0 by default). The dispersion :math:`\nu` is a
*standard deviation*: each local weight sits about :math:`\nu` away from the
global one. Pólya-gamma augmentation (Polson, Scott & Windle 2013) makes every
conditional of the Gibbs sampler a standard distribution:

* :math:`\omega_i \mid \cdot \sim \mathrm{PG}(N_i, x_i^\top \beta_{s_i} + o_i)`;
* :math:`\beta_s \mid \cdot \sim N(J_s^{-1} h_s, J_s^{-1})` with
  :math:`J_s = \nu^{-2} I + \sum_{i: s_i = s} \omega_i x_i x_i^\top` and
  :math:`h_s = \nu^{-2} \beta_0 + \sum_{i: s_i = s} (\kappa_i - \omega_i o_i) x_i`,
  :math:`\kappa_i = y_i - N_i / 2`, independently over states;
* :math:`\beta_0 \mid \cdot \sim N(J_0^{-1} h_0, J_0^{-1})` with
  :math:`J_0 = \Sigma^{-1} + S \nu^{-2} I` and
  :math:`h_0 = \Sigma^{-1}\mu + \nu^{-2} \sum_s \beta_s`.

Everything is batched: responses may carry leading batch dimensions
``(*batch, n)`` (e.g. one row per election-night time stamp) over a shared
design ``X`` and state index ``s``, and several chains run side by side. All
states, batch entries and chains are updated at once, with one batched Cholesky
factorization per update.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import NamedTuple

import torch
from fastprogress.fastprogress import progress_bar
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .gaussian import sample_gaussian_information
from .glm import binomial_log_likelihood, check_binomial_data
from .polyagamma import sample_pg

__all__ = ["HierarchicalBinomialGLM"]

DTYPE = torch.float64


class _Blocks(NamedTuple):
    """Blocks of one size: county indices, the state of each block, and the padded features."""

    index: Tensor  # (blocks, K), counties (n = padding)
    state: Tensor  # (blocks,)
    X: Tensor  # (blocks, K, p)
    outer: Tensor  # (blocks, K, p(p+1)/2): upper triangles of x_i x_i^T


class _Pairs(NamedTuple):
    """The (state, batch entry) pairs whose weights need a Gaussian update (those with data)."""

    index: Tensor  # flat indices s * B + b into (S, B) of the pairs with data
    gather: Tensor  # flat positions in the packed (S, B, q) Gram sums of all p x p entries of their J
    complete: bool  # every pair has data


class _StateBlocks:
    r"""Counties grouped by state into zero-padded blocks, for fast per-state sums.

    With the counties sorted by state and cut into blocks that each hold
    counties of one state only (padded with zero rows), every per-state sum
    :math:`\sum_{i: s_i = s} w_i f(x_i)` becomes a batched matrix product over
    blocks followed by an ``index_add`` of the blocks into their states. A state
    fills blocks of 128 counties and puts its remaining counties into one block
    of the smallest size among 16, 32, 64, 128 that holds them, so that little
    of the work is padding; each size is one batched product. The per-county
    products :math:`x_i x_i^\top` (upper triangles) are computed once, here.
    """

    SIZES = (16, 32, 64, 128)

    def __init__(self, s: Tensor, X: Tensor, num_states: int) -> None:
        n, p = X.shape
        sizes = torch.tensor(self.SIZES)
        big = self.SIZES[-1]
        counts = torch.bincount(s, minlength=num_states)
        full, rest = counts // big, counts % big
        rest_class = torch.searchsorted(sizes, rest)  # index into SIZES of each state's last block
        has_rest = rest > 0
        order = torch.argsort(s, stable=True)  # counties sorted by state
        state = s[order]
        rank = torch.arange(n) - (torch.cumsum(counts, 0) - counts)[state]  # position within the state
        in_full = rank < full[state] * big
        num_full = int(full.sum())
        county_class = torch.where(in_full, len(self.SIZES) - 1, rest_class[state])
        # block number within its size class: full blocks first, then one rest block per state
        rest_number = torch.zeros(num_states, dtype=torch.long)
        for c in range(len(self.SIZES)):  # a loop over the four block sizes
            members = has_rest & (rest_class == c)
            rest_number[members] = torch.cumsum(members.long(), 0)[members] - 1
        rest_number = rest_number + torch.where(rest_class == len(self.SIZES) - 1, num_full, 0)
        full_number = (torch.cumsum(full, 0) - full)[state] + rank // big
        county_block = torch.where(in_full, full_number, rest_number[state])
        county_slot = torch.where(in_full, rank % big, rank - full[state] * big)
        padded = torch.cat([X, X.new_zeros(1, p)])  # row n: the zero padding row
        rows, cols = torch.triu_indices(p, p)
        self.n, self.p, self.num_states = n, p, num_states
        self.classes: list[_Blocks] = []  # one entry per block size in use
        for c, size in enumerate(self.SIZES):
            mine = county_class == c
            num_blocks = int(county_block[mine].max()) + 1 if bool(mine.any()) else 0
            if num_blocks == 0:
                continue
            index = torch.full((num_blocks, size), n, dtype=torch.long)
            index[county_block[mine], county_slot[mine]] = order[mine]
            block_state = torch.full((num_blocks,), -1, dtype=torch.long)
            block_state[county_block[mine]] = state[mine]
            X_blocks = padded[index]  # (blocks, K, p)
            outer_blocks = X_blocks[..., rows] * X_blocks[..., cols]  # (blocks, K, p(p+1)/2)
            self.classes.append(_Blocks(index, block_state, X_blocks, outer_blocks))
        # position in the packed upper triangle of every entry (j, k) of a p x p matrix
        packed = torch.empty(p, p, dtype=torch.long)
        packed[rows, cols] = torch.arange(rows.numel())
        packed[cols, rows] = torch.arange(rows.numel())
        self.unpack_index = packed.reshape(-1)

    def _per_state_sum(self, weights: Float[Tensor, "B n"], features: str) -> Float[Tensor, "S B d"]:
        """Sum over each state's counties of weight times ``features`` ("X" or "outer") per county."""
        padded = torch.cat([weights, weights.new_zeros(weights.shape[0], 1)], dim=1).T  # (n + 1, B)
        d = getattr(self.classes[0], features).shape[-1]
        out = weights.new_zeros(self.num_states, weights.shape[0], d)
        for blocks in self.classes:
            # (blocks, B, K) @ (blocks, K, d): the weighted sum over each block's counties
            out.index_add_(0, blocks.state, padded[blocks.index].mT @ getattr(blocks, features))
        return out

    def gram(self, weights: Float[Tensor, "B n"]) -> Float[Tensor, "S B q"]:
        r""":math:`\sum_{i: s_i = s} w_i x_i x_i^\top` for every state and batch entry,
        packed: the q = p(p+1)/2 entries of the upper triangle (``unpack_index`` maps them back)."""
        return self._per_state_sum(weights, "outer")

    def pairs(self, informed: Bool[Tensor, "B S"]) -> _Pairs:
        """Index the (state, batch) pairs with data, and where their J entries sit in :meth:`gram`'s output."""
        index = informed.T.reshape(-1).nonzero().squeeze(-1)
        q = self.p * (self.p + 1) // 2
        gather = (index[:, None] * q + self.unpack_index).reshape(-1)
        return _Pairs(index, gather, bool(informed.all()))

    def weighted_sum(self, weights: Float[Tensor, "B n"]) -> Float[Tensor, "S B p"]:
        r""":math:`\sum_{i: s_i = s} w_i x_i` for every state and batch entry."""
        return self._per_state_sum(weights, "X")

    def linear_predictor(self, local_betas: Float[Tensor, "B S p"]) -> Float[Tensor, "B n"]:
        r""":math:`x_i^\top \beta_{s_i}` for every batch entry and county."""
        B = local_betas.shape[0]
        by_state = local_betas.transpose(0, 1)  # (S, B, p)
        out = local_betas.new_empty(B, self.n + 1)  # column n collects the padding
        for blocks in self.classes:
            per_block = by_state[blocks.state] @ blocks.X.mT  # (blocks, B, K)
            out[:, blocks.index.reshape(-1)] = per_block.transpose(0, 1).reshape(B, -1)
        return out[:, : self.n]


class HierarchicalBinomialGLM:
    r"""Hierarchical binomial GLM with Pólya-gamma Gibbs sampling (see the module docstring).

    Args:
        num_states: :math:`S`, the number of states (groups); state codes run 0..S-1.
        prior_mean: :math:`\mu`, prior mean of the global weights, shape (p,).
        prior_cov: :math:`\Sigma`, prior covariance of the global weights, (p, p),
            symmetric positive definite.
        dispersion: :math:`\nu > 0`, the prior *standard deviation* of each local
            weight around the global one (:math:`\beta_s \mid \beta_0 \sim N(\beta_0, \nu^2 I)`).

    Computations run in float64 (vote counts reach millions, which makes
    single-precision Gram matrices lose digits); draws are float64.
    """

    num_states: int
    prior_mean: Float[Tensor, " num_features"]
    prior_cov: Float[Tensor, "num_features num_features"]
    dispersion: float

    def __init__(
        self,
        num_states: int,
        prior_mean: Float[Tensor, " num_features"],
        prior_cov: Float[Tensor, "num_features num_features"],
        dispersion: float,
    ) -> None:
        if isinstance(num_states, bool) or not isinstance(num_states, Integral) or num_states < 1:
            raise ValueError(f"num_states must be a positive integer; got {num_states!r}")
        for name, value in (("prior_mean", prior_mean), ("prior_cov", prior_cov)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
        if prior_mean.ndim != 1:
            raise ValueError(f"prior_mean must have shape (num_features,); got {tuple(prior_mean.shape)}")
        p = prior_mean.shape[0]
        if prior_cov.shape != (p, p):
            raise ValueError(
                f"prior_cov must have shape (num_features, num_features) = ({p}, {p}) to match "
                f"prior_mean; got {tuple(prior_cov.shape)}"
            )
        mean, cov = prior_mean.to(DTYPE), prior_cov.to(DTYPE)
        if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
            raise ValueError("prior_mean and prior_cov must be finite; found NaN or inf")
        if not torch.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
            raise ValueError("prior_cov must be symmetric")
        chol, info = torch.linalg.cholesky_ex(cov)
        if info > 0:
            raise ValueError("prior_cov must be positive definite (its Cholesky factorization failed)")
        if isinstance(dispersion, Tensor):
            if dispersion.numel() != 1:
                raise ValueError(f"dispersion must be a scalar; got shape {tuple(dispersion.shape)}")
            dispersion = dispersion.item()
        if isinstance(dispersion, bool) or not isinstance(dispersion, Real):
            raise TypeError(f"dispersion must be a positive number (nu, a standard deviation); got {dispersion!r}")
        if not (math.isfinite(dispersion) and dispersion > 0):
            raise ValueError(f"dispersion must be a positive finite number (nu, a standard deviation); got {dispersion}")
        self.num_states = int(num_states)
        self.prior_mean = prior_mean
        self.prior_cov = prior_cov
        self.dispersion = float(dispersion)
        self._mean, self._cov_chol = mean, chol
        self._prior_precision = torch.cholesky_inverse(chol)
        self._prior_linear = self._prior_precision @ mean  # Sigma^{-1} mu
        self._prior_logdet = 2 * chol.diagonal().log().sum()  # log det Sigma

    @property
    def num_features(self) -> int:
        """p, the length of every weight vector."""
        return self.prior_mean.shape[0]

    # ------------------------------------------------------------------ checks
    def _check_states(self, s: Tensor, n: int) -> Tensor:
        if not isinstance(s, Tensor):
            raise TypeError(f"s must be a torch.Tensor of state codes; got {type(s).__name__}")
        if s.dtype == torch.bool or s.dtype.is_floating_point or s.dtype.is_complex:
            raise TypeError(f"s must hold integer state codes (e.g. torch.long); got dtype {s.dtype}")
        if s.shape != (n,):
            raise ValueError(f"s must have shape (num_counties,) = ({n},) like the rows of X; got {tuple(s.shape)}")
        if n and (s.min() < 0 or s.max() >= self.num_states):
            raise ValueError(
                f"state codes s must lie in [0, num_states) = [0, {self.num_states}); "
                f"found values from {int(s.min())} to {int(s.max())}"
            )
        return s.long()

    def _check_data(self, s, y, N, X) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        y, N, X = check_binomial_data(y, N, X, batch_ok=True)
        if X.shape[1] != self.num_features:
            raise ValueError(
                f"X has {X.shape[1]} columns but the prior has num_features = {self.num_features}"
            )
        s = self._check_states(s, X.shape[0])
        return s, y.to(DTYPE), N.to(DTYPE), X.to(DTYPE)

    def _check_weights(self, name: str, value: Tensor, trailing: tuple[int, ...]) -> Tensor:
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
        if value.ndim < len(trailing) or tuple(value.shape[value.ndim - len(trailing):]) != trailing:
            dims = ", ".join(map(str, trailing))
            raise ValueError(f"{name} must have shape (*batch, {dims}); got {tuple(value.shape)}")
        value = value.to(DTYPE)
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} must be finite; found NaN or inf")
        return value

    def _check_offset(self, offset: Tensor | None, n: int) -> Tensor:
        if offset is None:
            return torch.zeros(n, dtype=DTYPE)
        offset = torch.as_tensor(offset).to(DTYPE)
        if offset.ndim == 0 or offset.shape[-1] not in (1, n):
            raise ValueError(f"offset must be broadcastable to (*batch, num_counties = {n}); got {tuple(offset.shape)}")
        if not torch.isfinite(offset).all():
            raise ValueError("offset must be finite; found NaN or inf")
        return offset

    @staticmethod
    def _batch_shape(*shapes: torch.Size) -> torch.Size:
        try:
            return torch.broadcast_shapes(*shapes)
        except RuntimeError as err:
            raise ValueError(f"leading batch dimensions do not broadcast: {[tuple(x) for x in shapes]}") from err

    # ----------------------------------------------------- the math, flattened
    # The private helpers below take a flat batch: y, N, omega, offset (B, n);
    # local betas (B, S, p); global beta (B, p).
    def _log_prior(self, local_betas, global_beta) -> Tensor:
        """log N(beta_0; mu, Sigma) + sum_s log N(beta_s; beta_0, nu^2 I)."""
        S, p, nu = self.num_states, self.num_features, self.dispersion
        white = torch.linalg.solve_triangular(
            self._cov_chol, (global_beta - self._mean).unsqueeze(-1), upper=False
        ).squeeze(-1)
        log_global = -0.5 * (white**2).sum(-1) - 0.5 * self._prior_logdet - 0.5 * p * math.log(2 * math.pi)
        spread = ((local_betas - global_beta.unsqueeze(-2)) ** 2).sum((-2, -1))
        log_local = -0.5 * spread / nu**2 - S * p * math.log(nu) - 0.5 * S * p * math.log(2 * math.pi)
        return log_global + log_local

    def _sample_local(
        self, blocks: _StateBlocks, y, N, omega, offset, global_beta, generator, pairs: _Pairs | None = None
    ) -> Tensor:
        r"""Every :math:`\beta_s \mid \beta_0, \omega, y` at once, shape (B, S, p).

        ``pairs`` (from :meth:`_StateBlocks.pairs`, default: all): the (state, batch)
        pairs with data. The others are drawn from the prior :math:`N(\beta_0, \nu^2 I)`
        directly, which skips their Cholesky factorizations. Internally
        state-major, (S, B, ...), the layout of the per-state sums.
        """
        S, (B, p), nu = self.num_states, global_beta.shape, self.dispersion
        if pairs is None:
            pairs = blocks.pairs(torch.ones(B, S, dtype=torch.bool))
        # J_s = nu^-2 I + sum_{i: s_i = s} omega_i x_i x_i^T  (sums packed as (S, B, q), unpacked here)
        J = blocks.gram(omega).reshape(-1).index_select(0, pairs.gather).view(-1, p, p)
        J.diagonal(dim1=-2, dim2=-1).add_(nu**-2)
        # h_s = nu^-2 beta_0 + sum_{i: s_i = s} (kappa_i - omega_i o_i) x_i,  kappa_i = y_i - N_i / 2
        h = (blocks.weighted_sum(y - N / 2 - omega * offset) + nu**-2 * global_beta).reshape(S * B, p)
        if pairs.complete:  # one batched draw for all states
            return sample_gaussian_information(J, h, generator=generator).view(S, B, p).transpose(0, 1)
        # pairs without data: beta_s | beta_0 ~ N(beta_0, nu^2 I), no factorization needed
        local = global_beta + nu * torch.randn(S, B, p, dtype=DTYPE, generator=generator)
        draws = sample_gaussian_information(J, h.index_select(0, pairs.index), generator=generator)
        local.view(S * B, p).index_copy_(0, pairs.index, draws)
        return local.transpose(0, 1)

    def _sample_global(self, local_betas, generator, informed: Tensor | None = None) -> Tensor:
        r"""Draw :math:`\beta_0 \mid \{\beta_s\}`: :math:`J_0 = \Sigma^{-1} + S\nu^{-2} I`,
        :math:`h_0 = \Sigma^{-1}\mu + \nu^{-2}\sum_s \beta_s`.

        With ``informed`` ((B, S) booleans: which states of each batch entry have data) and
        some state without data, the step is *collapsed*: the uninformed states enter the
        joint only through :math:`N(\beta_s; \beta_0, \nu^2 I)`, so integrating them out gives
        :math:`\beta_0 \mid \{\beta_s\}_{s \in \mathcal I}` (the sums above over the informed
        states only), after which the uninformed :math:`\beta_s \sim N(\beta_0, \nu^2 I)` are
        redrawn in place. That is an exact blocked Gibbs step, and it keeps :math:`\beta_0`
        mixing when most states have no data (election night): the plain step moves it by
        only about :math:`\nu/\sqrt{S}` per sweep there.
        """
        nu_precision = self.dispersion**-2
        eye = torch.eye(self.num_features, dtype=DTYPE)
        if informed is None or bool(informed.all()):
            J = self._prior_precision + self.num_states * nu_precision * eye
            h = self._prior_linear + nu_precision * local_betas.sum(-2)
            return sample_gaussian_information(J.expand(*h.shape, h.shape[-1]), h, generator=generator)
        weights = informed.to(DTYPE)
        J = self._prior_precision + (nu_precision * weights.sum(-1))[:, None, None] * eye
        h = self._prior_linear + nu_precision * (weights.unsqueeze(-1) * local_betas).sum(-2)
        global_beta = sample_gaussian_information(J, h, generator=generator)
        prior_only = ~informed
        noise = torch.randn(int(prior_only.sum()), self.num_features, dtype=DTYPE, generator=generator)
        local_betas[prior_only] = global_beta.unsqueeze(1).expand_as(local_betas)[prior_only] + self.dispersion * noise
        return global_beta

    # ------------------------------------------------- the assignment's methods
    def log_prob(
        self,
        s: Int[Tensor, " num_counties"],
        y: Float[Tensor, "*batch num_counties"],
        N: Float[Tensor, "*batch num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        local_betas: Float[Tensor, "*batch num_states num_features"],
        global_beta: Float[Tensor, "*batch num_features"],
        *,
        offset: Float[Tensor, "*batch num_counties"] | None = None,
    ) -> Float[Tensor, "*batch"]:
        r"""Log joint density :math:`\log p(y, \{\beta_s\}, \beta_0)`, normalizing constants included.

        :math:`\log N(\beta_0; \mu, \Sigma) + \sum_s \log N(\beta_s; \beta_0, \nu^2 I)
        + \sum_i \log \mathrm{Bin}(y_i; N_i, \sigma(x_i^\top \beta_{s_i} + o_i))`.
        Leading batch dimensions of the data and the weights broadcast.
        """
        s, y, N, X = self._check_data(s, y, N, X)
        S, p = self.num_states, self.num_features
        local_betas = self._check_weights("local_betas", local_betas, (S, p))
        global_beta = self._check_weights("global_beta", global_beta, (p,))
        offset = self._check_offset(offset, X.shape[0])
        psi = (local_betas[..., s, :] * X).sum(-1) + offset
        batch = self._batch_shape(y.shape[:-1], psi.shape[:-1], global_beta.shape[:-1])
        prior = self._log_prior(local_betas.expand(*batch, S, p), global_beta.expand(*batch, p))
        return prior + binomial_log_likelihood(y, N, psi)

    def _gibbs_update_global_beta(
        self,
        local_betas: Float[Tensor, "*batch num_states num_features"],
        *,
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "*batch num_features"]:
        r"""Draw :math:`\beta_0 \mid \{\beta_s\} \sim N(J_0^{-1} h_0, J_0^{-1})`,
        :math:`J_0 = \Sigma^{-1} + S\nu^{-2} I`, :math:`h_0 = \Sigma^{-1}\mu + \nu^{-2}\sum_s \beta_s`."""
        local_betas = self._check_weights("local_betas", local_betas, (self.num_states, self.num_features))
        return self._sample_global(local_betas, generator)

    def _gibbs_update_local_betas(
        self,
        s: Int[Tensor, " num_counties"],
        y: Float[Tensor, "*batch num_counties"],
        N: Float[Tensor, "*batch num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        omegas: Float[Tensor, "*batch num_counties"],
        global_beta: Float[Tensor, "*batch num_features"],
        *,
        offset: Float[Tensor, "*batch num_counties"] | None = None,
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "*batch num_states num_features"]:
        r"""Draw every :math:`\beta_s \mid \beta_0, \omega, y` at once (independent across states).

        :math:`\beta_s \sim N(J_s^{-1} h_s, J_s^{-1})`,
        :math:`J_s = \nu^{-2} I + \sum_{i: s_i = s} \omega_i x_i x_i^\top`,
        :math:`h_s = \nu^{-2}\beta_0 + \sum_{i: s_i = s} (y_i - N_i/2 - \omega_i o_i) x_i`.
        A state without counties (or with all :math:`N_i = 0`) is drawn from its prior
        :math:`N(\beta_0, \nu^2 I)`.
        """
        s, y, N, X = self._check_data(s, y, N, X)
        n, p = X.shape
        omegas = self._check_weights("omegas", omegas, (n,))
        if (omegas < 0).any():
            raise ValueError("omegas must be non-negative (Pólya-gamma draws)")
        global_beta = self._check_weights("global_beta", global_beta, (p,))
        offset = self._check_offset(offset, n)
        batch = self._batch_shape(y.shape[:-1], omegas.shape[:-1], offset.shape[:-1], global_beta.shape[:-1])
        B = math.prod(batch)
        flat = [t.expand(*batch, n).reshape(B, n) for t in (y, N, omegas, offset)]
        blocks = _StateBlocks(s, X, self.num_states)
        local = self._sample_local(blocks, *flat, global_beta.expand(*batch, p).reshape(B, p), generator)
        return local.reshape(*batch, self.num_states, p)

    def _gibbs_update_omegas(
        self,
        s: Int[Tensor, " num_counties"],
        N: Float[Tensor, "*batch num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        local_betas: Float[Tensor, "*batch num_states num_features"],
        *,
        offset: Float[Tensor, "*batch num_counties"] | None = None,
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "*batch num_counties"]:
        r"""Draw :math:`\omega_i \sim \mathrm{PG}(N_i, x_i^\top \beta_{s_i} + o_i)` (0 where :math:`N_i = 0`)."""
        _, N, X = check_binomial_data(N, N, X, batch_ok=True)
        X, N = X.to(DTYPE), N.to(DTYPE)
        s = self._check_states(s, X.shape[0])
        local_betas = self._check_weights("local_betas", local_betas, (self.num_states, self.num_features))
        psi = (local_betas[..., s, :] * X).sum(-1) + self._check_offset(offset, X.shape[0])
        return sample_pg(N, psi, generator=generator)

    def gibbs(
        self,
        s: Int[Tensor, " num_counties"],
        y: Float[Tensor, "*batch num_counties"],
        N: Float[Tensor, "*batch num_counties"],
        X: Float[Tensor, "num_counties num_features"],
        init_beta: Float[Tensor, "*batch num_features"],
        num_iters: int,
        verbose: bool | None = None,
        *,
        num_chains: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
        offset: Float[Tensor, "*batch num_counties"] | None = None,
    ) -> dict[str, Tensor]:
        r"""Run the Pólya-gamma Gibbs sampler; return the stacked draws, draw 0 = the initial state.

        Each iteration draws :math:`\omega \mid \beta`, then all :math:`\beta_s \mid \omega, \beta_0`,
        then :math:`\beta_0 \mid \{\beta_s\}`. The chain starts at :math:`\beta_0 = \beta_s =`
        ``init_beta`` (shape (p,), or broadcastable to (*batch, [num_chains,] p) for
        different starts per batch entry or chain).

        Args:
            s, y, N, X: state codes (n,), successes and trials (*batch, n), design (n, p).
                Counties with N = 0 carry no information (unrevealed results).
            init_beta: the starting weights.
            num_iters: number of Gibbs sweeps (>= 1).
            verbose: the assignment's name for ``progress`` (overrides it when given).
            num_chains: run this many independent chains (a chain axis after the batch axes).
            generator: a torch.Generator for reproducible draws.
            progress: show a progress bar.
            offset: known offset :math:`o_i` added to every linear predictor, broadcastable to y.

        Returns:
            dict with ``global_beta`` (*batch, [C,] num_iters+1, p), ``local_betas``
            (*batch, [C,] num_iters+1, S, p) and ``lp`` (*batch, [C,] num_iters+1), the
            log joint of each draw.
        """
        s, y, N, X = self._check_data(s, y, N, X)
        n, p = X.shape
        S = self.num_states
        if isinstance(num_iters, bool) or not isinstance(num_iters, Integral) or num_iters < 1:
            raise ValueError(f"num_iters must be an integer >= 1; got {num_iters!r}")
        if num_chains is not None and (
            isinstance(num_chains, bool) or not isinstance(num_chains, Integral) or num_chains < 1
        ):
            raise ValueError(f"num_chains must be None or an integer >= 1; got {num_chains!r}")
        if verbose is not None:
            progress = bool(verbose)
        offset = self._check_offset(offset, n)
        init_beta = self._check_weights("init_beta", init_beta, (p,))
        data_batch = self._batch_shape(y.shape[:-1], offset.shape[:-1])
        chains = () if num_chains is None else (int(num_chains),)
        try:
            batch = torch.broadcast_shapes(data_batch + chains, init_beta.shape[:-1])
        except RuntimeError:
            batch = None
        if batch != data_batch + chains:
            raise ValueError(
                f"init_beta of shape {tuple(init_beta.shape)} must broadcast to (*batch, [num_chains,] p) = "
                f"{tuple(data_batch + chains) + (p,)}"
            )

        def flat(t: Tensor) -> Tensor:  # (*data_batch, n) -> (B, n) with the chain axis inserted
            t = t.expand(*data_batch, n)
            if chains:
                t = t.unsqueeze(-2).expand(*data_batch, *chains, n)
            return t.reshape(-1, n)

        y_, N_, offset_ = flat(y), flat(N), flat(offset)
        B = y_.shape[0]
        blocks = _StateBlocks(s, X, S)
        informed = torch.zeros(B, S, dtype=DTYPE).index_add_(1, s, N_) > 0  # (batch entry, state) with data
        pairs = blocks.pairs(informed)
        # sum_i log C(N_i, y_i), fixed over iterations: binomial_log_likelihood at logits 0, plus N log 2
        log_choose = binomial_log_likelihood(y_, N_, torch.zeros_like(y_)) + math.log(2) * N_.sum(-1)

        def log_joint(psi, local_betas, global_beta):
            log_lik = log_choose + (y_ * psi - N_ * torch.nn.functional.softplus(psi)).sum(-1)
            return self._log_prior(local_betas, global_beta) + log_lik

        global_beta = init_beta.expand(*batch, p).reshape(B, p).clone()
        local_betas = global_beta.unsqueeze(1).expand(B, S, p).clone()
        psi = blocks.linear_predictor(local_betas) + offset_
        out_global = torch.empty(B, num_iters + 1, p, dtype=DTYPE)
        out_local = torch.empty(B, num_iters + 1, S, p, dtype=DTYPE)
        out_lp = torch.empty(B, num_iters + 1, dtype=DTYPE)
        out_global[:, 0], out_local[:, 0] = global_beta, local_betas
        out_lp[:, 0] = log_joint(psi, local_betas, global_beta)
        iterations = progress_bar(range(num_iters)) if progress else range(num_iters)
        for it in iterations:
            omega = sample_pg(N_, psi, generator=generator)
            local_betas = self._sample_local(blocks, y_, N_, omega, offset_, global_beta, generator, pairs)
            global_beta = self._sample_global(local_betas, generator, informed)  # collapsed where states lack data
            psi = blocks.linear_predictor(local_betas) + offset_
            out_global[:, it + 1], out_local[:, it + 1] = global_beta, local_betas
            out_lp[:, it + 1] = log_joint(psi, local_betas, global_beta)
        return {
            "global_beta": out_global.reshape(*batch, num_iters + 1, p),
            "local_betas": out_local.reshape(*batch, num_iters + 1, S, p),
            "lp": out_lp.reshape(*batch, num_iters + 1),
        }
