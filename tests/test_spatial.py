"""County adjacency from the polygons, and Moran's I."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bayesglm.data import load_county_geojson, load_year
from bayesglm.spatial import CountyGraph, county_neighbours, morans_i


@pytest.fixture(scope="module")
def responses():
    return load_year(2016)


@pytest.fixture(scope="module")
def graph(responses):
    return county_neighbours(responses.fips)


def _vertices(fips: str, decimals: int = 6) -> set[tuple[int, int]]:
    """All polygon vertices of one county, rounded, straight from the geojson."""
    feature = next(f for f in load_county_geojson()["features"] if f["id"] == fips)
    geometry = feature["geometry"]
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return {
        (round(x * 10**decimals), round(y * 10**decimals))
        for polygon in polygons
        for ring in polygon
        for x, y in ring
    }


# ---------------------------------------------------------------- Moran's I
PATH = CountyGraph(["a", "b", "c", "d"], torch.tensor([[0, 1], [1, 2], [2, 3]]))  # a - b - c - d


def test_morans_i_on_a_path_matches_a_hand_computation():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # z = (-1.5, -0.5, 0.5, 1.5), sum z^2 = 5.
    # binary: S0 = 6, sum_ij w_ij z_i z_j = 2 (0.75 - 0.25 + 0.75) = 2.5, I = 4/6 * 2.5/5 = 1/3;
    #   S1 = 12, S2 = 4 (1 + 4 + 4 + 1) = 40, Var = (16*12 - 4*40 + 3*36) / (36*15) - 1/9 = 80/540.
    binary = morans_i(x, PATH, weights="binary")
    assert binary.statistic == pytest.approx(1 / 3)
    assert binary.expected == pytest.approx(-1 / 3)
    assert binary.variance == pytest.approx(80 / 540)
    assert binary.z == pytest.approx((1 / 3 + 1 / 3) / math.sqrt(80 / 540))
    # row-standardized: rows (0, 1, 0, 0), (.5, 0, .5, 0), (0, .5, 0, .5), (0, 0, 1, 0); S0 = 4,
    #   sum_ij w_ij z_i z_j = 0.75 + 0.25 + 0.25 + 0.75 = 2, I = 4/4 * 2/5 = 0.4;
    #   S1 = 2.25 + 1 + 2.25 = 5.5, column sums (.5, 1.5, 1.5, .5) so S2 = 2.25 + 6.25 + 6.25 + 2.25 = 17,
    #   Var = (16*5.5 - 4*17 + 3*16) / (16*15) - 1/9 = 68/240 - 1/9.
    row = morans_i(x, PATH)
    assert row.weights == "row"
    assert row.statistic == pytest.approx(0.4)
    assert row.variance == pytest.approx(68 / 240 - 1 / 9)
    # alternating values: neighbours always differ, I is negative
    assert morans_i(torch.tensor([1.0, -1.0, 1.0, -1.0]), PATH).statistic == pytest.approx(-1.0)


@pytest.mark.parametrize("weights", ["binary", "row"])
def test_morans_i_matches_a_dense_implementation(weights, generator):
    n = 30
    edges = torch.combinations(torch.arange(n - 1), 2)  # node n - 1 stays an island
    keep = torch.rand(len(edges), generator=generator) < 0.15
    graph = CountyGraph([str(i) for i in range(n)], edges[keep])
    x = torch.randn(n, dtype=torch.float64, generator=generator)
    W = np.zeros((n, n))
    for i, j in graph.edges.tolist():
        W[i, j] = W[j, i] = 1.0
    if weights == "row":
        W = W / np.maximum(W.sum(1, keepdims=True), 1)
    z = x.numpy() - x.numpy().mean()
    s0 = W.sum()
    expected_i = n / s0 * z @ W @ z / (z @ z)
    s1 = 0.5 * ((W + W.T) ** 2).sum()
    s2 = ((W.sum(1) + W.sum(0)) ** 2).sum()
    e = -1 / (n - 1)
    expected_var = (n**2 * s1 - n * s2 + 3 * s0**2) / (s0**2 * (n**2 - 1)) - e**2
    result = morans_i(x, graph, weights=weights)
    assert result.statistic == pytest.approx(expected_i, rel=1e-12)
    assert result.variance == pytest.approx(expected_var, rel=1e-12)
    torch.testing.assert_close(graph.adjacency(weights).to_dense(), torch.as_tensor(W))


def test_permutation_null_is_centred_at_the_expectation(graph, generator):
    """Values placed at random: the permutation null has mean -1/(n-1) and about the normal-theory sd."""
    n = graph.num_nodes
    x = torch.randn(n, dtype=torch.float64, generator=generator)
    result = morans_i(x, graph, permutations=400, generator=generator)
    sd = math.sqrt(result.variance)
    assert abs(result.statistic - result.expected) < 4 * sd  # random values: |z| < 4
    assert abs(result.z) < 4 and abs(result.permutation_z) < 4
    assert result.permutation_p_value > 1e-4


def test_smooth_field_is_positive_and_shuffled_values_are_not(graph, responses, generator):
    # a smooth field: the latitude and longitude of each county's first vertex
    features = {f["id"]: f for f in load_county_geojson()["features"]}

    def first_vertex(fips):
        coords = features[fips]["geometry"]["coordinates"]
        while isinstance(coords[0][0], list):
            coords = coords[0]
        return coords[0]

    lonlat = torch.tensor([first_vertex(f) for f in graph.fips], dtype=torch.float64)
    smooth = torch.sin(lonlat[:, 0] / 10) + torch.cos(lonlat[:, 1] / 5)
    result = morans_i(smooth, graph)
    assert result.statistic > 0.8 and result.z > 50
    shuffled = smooth[torch.randperm(len(smooth), generator=generator)]
    null = morans_i(shuffled, graph)
    assert abs(null.z) < 4  # 4 sds of the null
    assert abs(null.statistic - null.expected) < 4 * math.sqrt(null.variance)
    # the 2016 Democratic share is strongly clustered too
    share = responses.y / responses.N
    assert morans_i(share, graph).statistic > 0.4


# ---------------------------------------------------------------- the county graph
def test_county_graph_is_a_simple_undirected_graph(graph, responses):
    assert graph.fips == responses.fips
    edges = graph.edges
    assert edges.dtype == torch.long and edges.shape[1] == 2
    assert (edges[:, 0] < edges[:, 1]).all()  # no self-loops, each pair once
    assert len(torch.unique(edges, dim=0)) == len(edges)
    A = graph.adjacency("binary").to_dense()
    torch.testing.assert_close(A, A.T)  # neighbour relation symmetric
    degree = graph.degree()
    torch.testing.assert_close(A.sum(1), degree.double())
    # US counties have about 6 neighbours on average; islands have none
    assert 5.5 < degree.double().mean() < 6.2
    islands = {graph.fips[i] for i in (degree == 0).nonzero().squeeze(-1).tolist()}
    assert {"25019", "53055", "15001"} <= islands  # Nantucket MA, San Juan WA, Hawaii HI
    row = graph.adjacency("row").to_dense()
    torch.testing.assert_close(row.sum(1)[degree > 0], torch.ones(int((degree > 0).sum()), dtype=torch.float64))


def test_known_neighbours(graph):
    # Los Angeles borders Kern, Orange, San Bernardino and Ventura, and nothing else
    assert graph.neighbours_of("06037") == ["06029", "06059", "06071", "06111"]
    # ... and really shares boundary points with Orange in the file
    assert _vertices("06037") & _vertices("06059")
    assert not (_vertices("06037") & _vertices("12086"))  # Miami-Dade FL
    assert "12086" not in graph.neighbours_of("06037")
    # Autauga AL: Chilton, Dallas, Elmore, Lowndes, Montgomery
    assert graph.neighbours_of("01001") == ["01021", "01047", "01051", "01085", "01101"]


def test_graph_matches_brute_force_on_new_england(graph):
    """Pairwise vertex-set intersections (no vectorization) for CT, MA, RI, VT, NH, ME."""
    codes = [f for f in graph.fips if f[:2] in ("09", "25", "44", "50", "33", "23")]
    vertices = {f: _vertices(f) for f in codes}
    expected = {
        (a, b) for i, a in enumerate(codes) for b in codes[i + 1:] if vertices[a] & vertices[b]
    }
    found = {
        (graph.fips[i], graph.fips[j]) for i, j in graph.edges.tolist() if graph.fips[i] in vertices and graph.fips[j] in vertices
    }
    assert found == expected
    assert len(expected) > 100  # the region is well connected


def test_graph_follows_the_order_of_the_fips_list(graph):
    subset = ["06037", "06059", "06111", "12086"]
    small = county_neighbours(subset[::-1])  # 12086, 06111, 06059, 06037
    assert small.fips == subset[::-1]
    pairs = {tuple(sorted((small.fips[i], small.fips[j]))) for i, j in small.edges.tolist()}
    assert pairs == {("06037", "06059"), ("06037", "06111")}


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs(graph):
    with pytest.raises(ValueError, match="no polygon"):
        county_neighbours(["06037", "99999"])
    with pytest.raises(ValueError, match="repeated"):
        county_neighbours(["06037", "06037"])
    n = graph.num_nodes
    with pytest.raises(ValueError, match="shape"):
        morans_i(torch.zeros(n - 1), graph)
    with pytest.raises(ValueError, match="finite"):
        morans_i(torch.full((n,), float("nan")), graph)
    with pytest.raises(ValueError, match="all equal"):
        morans_i(torch.ones(n), graph)
    with pytest.raises(ValueError, match="weights"):
        morans_i(torch.arange(n, dtype=torch.float64), graph, weights="queen")
    with pytest.raises(ValueError, match="permutations"):
        morans_i(torch.arange(n, dtype=torch.float64), graph, permutations=-1)
    with pytest.raises(TypeError, match="CountyGraph"):
        morans_i(torch.arange(4.0), torch.eye(4))
    with pytest.raises(ValueError, match="no edges"):
        morans_i(torch.arange(4.0), CountyGraph(list("abcd"), torch.zeros(0, 2, dtype=torch.long)))
