"""The data layer: verified files, clear errors, preprocessing, alignment."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from bayesglm import data


@pytest.fixture
def demo() -> pd.DataFrame:
    return data.load_demographics()


@pytest.fixture
def votes() -> pd.DataFrame:
    return data.load_votes()


def test_files_match_published_hashes():
    for name, (_, sha) in data.FILES.items():
        path = data.fetch(name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


def test_corrupt_file_is_refused_with_hash_mismatch(tmp_path, monkeypatch):
    source = data.fetch("votes.csv")
    corrupt = tmp_path / "votes.csv"
    corrupt.write_bytes(source.read_bytes()[:-10] + b"0000000000")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(data.DataError, match="hash mismatch"):
        data.fetch("votes.csv")


def test_missing_file_offline_names_file_url_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(data.pooch, "retrieve", offline)
    with pytest.raises(data.DataError) as info:
        data.fetch("demographics.csv")
    message = str(info.value)
    assert "demographics.csv" in message
    assert data.FILES["demographics.csv"][0] in message
    assert data.DATA_DIR_ENV in message


def test_good_copy_in_data_dir_is_used_without_network(tmp_path, monkeypatch):
    shutil.copy(data.fetch("geojson-counties-fips.json"), tmp_path)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(data.pooch, "retrieve", lambda *a, **k: pytest.fail("must not download"))
    assert data.fetch("geojson-counties-fips.json") == tmp_path / "geojson-counties-fips.json"


def test_unknown_file_name():
    with pytest.raises(data.DataError, match="unknown data file"):
        data.fetch("nope.csv")


def test_fips_are_five_character_strings(votes, demo):
    for frame in (votes, demo):
        assert frame["fips"].map(type).eq(str).all()
        assert frame["fips"].str.fullmatch(r"\d{5}").all()
    assert "01001" in set(demo["fips"])  # leading zero kept
    geo_ids = {f["id"] for f in data.load_county_geojson()["features"]}
    assert set(demo["fips"]) <= geo_ids


def test_tables_have_published_shapes(votes, demo):
    assert votes.shape == (63211, 9)
    assert demo.shape == (3111, 39)
    assert "ALASKA" not in set(votes["state"])
    assert votes["state"].nunique() == 50


def test_covariates_standardized_one_hot_and_intercept(demo):
    X = data.preprocess_covariates(demo)
    assert X.shape == (3111, 23)
    assert X.columns[0] == "intercept" and (X["intercept"] == 1).all()
    scalars = X[list(data.SCALAR_COVARIATES)]
    np.testing.assert_allclose(scalars.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(scalars.std(), 1, atol=1e-12)
    one_hot = X.filter(like="ruralurban_cc_")
    levels = sorted(demo["ruralurban_cc"].astype(int).unique())
    assert list(one_hot.columns) == [f"ruralurban_cc_{k}" for k in levels[1:]]  # first level dropped
    base = demo.sort_values("fips")["ruralurban_cc"].astype(int).to_numpy()
    np.testing.assert_array_equal(one_hot.sum(axis=1).to_numpy(), (base != levels[0]).astype(float))
    np.testing.assert_array_equal(one_hot.to_numpy().argmax(axis=1)[base != levels[0]] + 2, base[base != levels[0]])
    assert X.index.is_monotonic_increasing


def test_standardization_uses_raw_values(demo):
    X = data.preprocess_covariates(demo)
    raw = demo.set_index("fips").loc[X.index, "median_hh_inc"]
    np.testing.assert_allclose(X["median_hh_inc"], (raw - raw.mean()) / raw.std())


def test_missing_column_is_named(demo):
    with pytest.raises(data.DataError, match="rural_pct"):
        data.preprocess_covariates(demo.drop(columns="rural_pct"))


def test_responses_2016_aligned_with_covariates(votes, demo):
    responses, states = data.extract_responses(votes, 2016)
    X = data.preprocess_covariates(demo)
    assert (responses["fips"].to_numpy() == X.index.to_numpy()).all()
    assert len(states) == 50 and states == sorted(states)
    assert responses["s"].between(0, 49).all()
    assert (responses["y"] <= responses["N"]).all()
    autauga = responses.set_index("fips").loc["01001"]
    assert (autauga["y"], autauga["N"]) == (5936, 5936 + 18172)  # Clinton, Clinton + Trump
    assert states[autauga["s"]] == "ALABAMA"


def test_2000_lacks_broomfield(votes):
    responses, _ = data.extract_responses(votes, 2000)
    assert "08014" not in set(responses["fips"])
    assert len(responses) == 3110
    aligned = data.load_year(2000)
    assert len(aligned.fips) == aligned.X.shape[0] == aligned.y.shape[0] == 3110
    assert "08014" not in aligned.fips


def test_unknown_year(votes):
    with pytest.raises(data.DataError, match="2018"):
        data.extract_responses(votes, 2018)


def test_load_year_tensors():
    r = data.load_year(2020)
    assert r.X.dtype == torch.float64 and r.s.dtype == torch.long
    assert r.X.shape == (3111, 23) and r.y.shape == r.N.shape == r.s.shape == (3111,)
    assert r.covariate_names[0] == "intercept"
    assert r.fips == sorted(r.fips)
