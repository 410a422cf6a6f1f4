r"""Which counties border each other, and how spatially clustered a county map is.

- :func:`county_neighbours`: the county adjacency graph from the county
  polygons (two counties are neighbours when their boundaries share a point,
  "queen" contiguity), aligned to a list of FIPS codes.
- :func:`morans_i`: Moran's :math:`I` of values on that graph, with its
  expectation under no spatial association, a normal-approximation z-score and
  optionally a permutation test.

Moran's :math:`I` of values :math:`x_1, \dots, x_n` with spatial weights
:math:`w_{ij}` (:math:`w_{ii} = 0`) and :math:`z_i = x_i - \bar x` is

.. math::

    I = \frac{n}{S_0} \frac{\sum_{i,j} w_{ij} z_i z_j}{\sum_i z_i^2},
    \qquad S_0 = \sum_{i,j} w_{ij},

positive when neighbours have similar values, about :math:`E[I] = -1/(n-1)`
when values are placed at random (Cliff & Ord 1981).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .data import load_county_geojson

__all__ = ["CountyGraph", "MoransI", "county_neighbours", "morans_i"]


@dataclass(frozen=True)
class CountyGraph:
    """An undirected graph on counties.

    Attributes:
        fips: the n county FIPS codes; node i is ``fips[i]``.
        edges: (E, 2) long tensor, one row (i, j) with i < j per pair of neighbours.
    """

    fips: list[str]
    edges: Int[Tensor, "num_edges 2"]

    @property
    def num_nodes(self) -> int:
        return len(self.fips)

    def degree(self) -> Int[Tensor, " num_nodes"]:
        """Number of neighbours of every node."""
        return torch.bincount(self.edges.reshape(-1), minlength=self.num_nodes)

    def neighbours_of(self, fips: str) -> list[str]:
        """The FIPS codes of the neighbours of one county, sorted."""
        i = self.fips.index(fips)
        mask = (self.edges == i).any(-1)
        others = self.edges[mask].sum(-1) - i
        return sorted(self.fips[j] for j in others.tolist())

    def weighted_edges(self, weights: str = "row") -> tuple[Tensor, Tensor, Tensor]:
        """Every edge in both directions as (source, target, weight), sources ``i``, targets ``j``.

        ``weights="binary"``: :math:`w_{ij} = 1` for neighbours, else 0.
        ``weights="row"``: row-standardized, :math:`w_{ij} = 1/\\deg(i)`, so every
        row of a node with neighbours sums to 1 (a node without neighbours, an
        island, keeps a zero row). Row k + E is row k reversed (E = number of edges).
        """
        if weights not in ("binary", "row"):
            raise ValueError(f'weights must be "binary" or "row" (row-standardized); got {weights!r}')
        source = torch.cat([self.edges[:, 0], self.edges[:, 1]])
        target = torch.cat([self.edges[:, 1], self.edges[:, 0]])
        w = torch.ones(source.shape[0], dtype=torch.float64)
        if weights == "row":
            w = w / self.degree()[source].to(torch.float64)
        return source, target, w

    def adjacency(self, weights: str = "row") -> Tensor:
        """The (n, n) spatial weight matrix W as a sparse COO tensor (float64); see :meth:`weighted_edges`."""
        source, target, w = self.weighted_edges(weights)
        n = self.num_nodes
        return torch.sparse_coo_tensor(torch.stack([source, target]), w, (n, n), check_invariants=True).coalesce()


def _rings(geometry: dict) -> list:
    if geometry["type"] == "Polygon":
        return geometry["coordinates"]
    if geometry["type"] == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    raise ValueError(f"unexpected geometry type {geometry['type']!r} in the county geojson")


def county_neighbours(fips: Sequence[str] | None = None, *, decimals: int = 6) -> CountyGraph:
    """The county adjacency graph: counties are neighbours when their polygons share a boundary point.

    Every vertex of every county polygon is rounded to ``decimals`` decimal
    degrees (6, about 0.1 m, is the precision of the file) and hashed; counties
    that own the same vertex are neighbours. Vectorized with numpy: sort the
    (vertex, county) pairs by vertex and pair the counties of each vertex.

    Args:
        fips: the counties to keep, as 5-character FIPS strings, in the order of
            the nodes (e.g. ``responses.fips``); default: every county of the file.
        decimals: rounding of the coordinates before matching.

    Raises:
        ValueError: when a FIPS code has no polygon in the file, or is repeated.
    """
    features = load_county_geojson()["features"]
    file_fips = [feature["id"] for feature in features]
    if fips is None:
        fips = sorted(file_fips)
    fips = [str(code) for code in fips]
    if len(set(fips)) != len(fips):
        raise ValueError("fips has repeated codes; each county must appear once")
    node_of = {code: i for i, code in enumerate(fips)}
    missing = sorted(set(fips) - set(file_fips))
    if missing:
        raise ValueError(f"{len(missing)} FIPS code(s) have no polygon in the county geojson, e.g. {missing[:5]}")

    # one row per polygon vertex: (node, lon, lat); counties outside `fips` are dropped
    owners, points = [], []
    for feature in features:
        node = node_of.get(feature["id"])
        if node is None:
            continue
        vertices = np.concatenate([np.asarray(ring, dtype=float).reshape(-1, 2) for ring in _rings(feature["geometry"])])
        points.append(vertices)
        owners.append(np.full(len(vertices), node))
    owner = np.concatenate(owners)
    scaled = np.round(np.concatenate(points) * 10**decimals).astype(np.int64)
    _, vertex = np.unique(scaled, axis=0, return_inverse=True)
    vertex = vertex.reshape(-1)
    # unique (vertex, county) pairs, sorted by vertex: the counties of a vertex are consecutive
    pairs = np.unique(np.stack([vertex, owner], 1), axis=0)
    edges = []
    # the counties of a vertex are consecutive rows: pair each row with the rows `lag` below it
    # (a loop over the largest number of counties at one vertex, about 6, not over counties)
    for lag in range(1, len(pairs)):
        same = pairs[lag:, 0] == pairs[:-lag, 0]
        if not same.any():
            break
        edges.append(np.stack([pairs[:-lag, 1][same], pairs[lag:, 1][same]], 1))
    edges = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    return CountyGraph(fips=fips, edges=torch.as_tensor(edges, dtype=torch.long).reshape(-1, 2))


@dataclass(frozen=True)
class MoransI:
    """Moran's I with its reference values.

    Attributes:
        statistic: Moran's :math:`I`.
        expected: :math:`E[I] = -1/(n-1)` under no spatial association.
        variance: :math:`\\mathrm{Var}[I]` under the normality assumption (Cliff & Ord).
        z: :math:`(I - E[I]) / \\sqrt{\\mathrm{Var}[I]}`.
        p_value: two-sided normal-approximation p-value of ``z``.
        weights: "row" or "binary".
        permutation_z: z-score against ``permutations`` random relabellings (None if none).
        permutation_p_value: two-sided pseudo p-value of the permutation test,
            (1 + #{|I_perm - E| >= |I - E|}) / (1 + permutations) (None if none).
    """

    statistic: float
    expected: float
    variance: float
    z: float
    p_value: float
    weights: str
    permutation_z: float | None = None
    permutation_p_value: float | None = None


def _moran_statistic(z: Tensor, source: Tensor, target: Tensor, w: Tensor, s0: float) -> Tensor:
    """I for every column of centred values z (n, k): n / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2."""
    n = z.shape[0]
    cross = (w[:, None] * z[source] * z[target]).sum(0)
    return n / s0 * cross / (z**2).sum(0)


def morans_i(
    values: Float[Tensor, " num_nodes"],
    graph: CountyGraph,
    *,
    weights: str = "row",
    permutations: int = 0,
    generator: torch.Generator | None = None,
) -> MoransI:
    r"""Moran's :math:`I` of ``values`` (one per node of ``graph``) with its null reference values.

    Args:
        values: one number per node, in the order of ``graph.fips``.
        graph: the neighbour graph (e.g. from :func:`county_neighbours`).
        weights: ``"row"`` (default; row-standardized, each node's neighbours
            share weight 1) or ``"binary"`` (weight 1 per neighbour pair).
        permutations: if > 0, also a permutation test with that many random
            relabellings of the values over the nodes.
        generator: for the permutations.

    The variance is the normality-assumption one,
    :math:`\mathrm{Var}[I] = \frac{n^2 S_1 - n S_2 + 3 S_0^2}{S_0^2 (n^2 - 1)} - E[I]^2`,
    :math:`S_1 = \tfrac12\sum_{ij}(w_{ij} + w_{ji})^2`, :math:`S_2 = \sum_i (w_{i\cdot} + w_{\cdot i})^2`.
    """
    if not isinstance(graph, CountyGraph):
        raise TypeError(f"graph must be a CountyGraph (from county_neighbours); got {type(graph).__name__}")
    values = torch.as_tensor(values, dtype=torch.float64)
    n = graph.num_nodes
    if values.shape != (n,):
        raise ValueError(f"values must have shape (num_nodes,) = ({n},), one per county of the graph; got {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError("values must be finite; found NaN or inf")
    if n < 3:
        raise ValueError(f"Moran's I needs at least 3 nodes; got {n}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative integer; got {permutations!r}")
    if len(graph.edges) == 0:
        raise ValueError("the graph has no edges: Moran's I is undefined")
    z = values - values.mean()
    if not bool((z != 0).any()):
        raise ValueError("values are all equal: Moran's I is undefined")
    source, target, w = graph.weighted_edges(weights)
    s0 = float(w.sum())
    # S1 = 1/2 sum_ij (w_ij + w_ji)^2: every neighbour pair appears in both directions, w_ji is the reversed row
    reverse = torch.cat([w[len(graph.edges):], w[: len(graph.edges)]])
    s1 = 0.5 * float(((w + reverse) ** 2).sum())
    row_sums = torch.zeros(n, dtype=torch.float64).index_add_(0, source, w)
    col_sums = torch.zeros(n, dtype=torch.float64).index_add_(0, target, w)
    s2 = float(((row_sums + col_sums) ** 2).sum())
    statistic = float(_moran_statistic(z[:, None], source, target, w, s0)[0])
    expected = -1.0 / (n - 1)
    variance = (n**2 * s1 - n * s2 + 3 * s0**2) / (s0**2 * (n**2 - 1)) - expected**2
    zscore = (statistic - expected) / math.sqrt(variance)
    p_value = math.erfc(abs(zscore) / math.sqrt(2))
    perm_z = perm_p = None
    if permutations:
        order = torch.argsort(torch.rand(permutations, n, generator=generator, dtype=torch.float64), dim=1)
        null = _moran_statistic(z[order].T, source, target, w, s0)  # (permutations,)
        perm_z = float((statistic - null.mean()) / null.std())
        extreme = int(((null - expected).abs() >= abs(statistic - expected)).sum())
        perm_p = (1 + extreme) / (1 + permutations)
    return MoransI(statistic, expected, variance, zscore, p_value, weights, perm_z, perm_p)
