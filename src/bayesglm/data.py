"""The homework's data: download, verify, cache, load and preprocess.

Three public files feed the book (see the table in ``FILES``). Each is fetched
once from its upstream URL with :mod:`pooch`, checked against its SHA-256 and
cached. Set the environment variable ``BAYESGLM_DATA_DIR`` to a folder that
already holds the files (tests and CI point it at ``../shared/data``) and
nothing touches the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pooch
import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = [
    "DATA_DIR_ENV",
    "ELECTION_YEARS",
    "SCALAR_COVARIATES",
    "CATEGORICAL_COVARIATES",
    "DataError",
    "Responses",
    "data_dir",
    "fetch",
    "load_votes",
    "load_demographics",
    "load_county_geojson",
    "preprocess_covariates",
    "extract_responses",
    "load_year",
]

DATA_DIR_ENV = "BAYESGLM_DATA_DIR"

_HW2 = "https://raw.githubusercontent.com/slinderman/stats305b/winter2024/assignments/hw2/"
FILES: dict[str, tuple[str, str]] = {
    "votes.csv": (
        _HW2 + "votes.csv",
        "1c037a863cf5112dd013a7d9019acf6b373b681c96139661c5089f22fc038b89",
    ),
    "demographics.csv": (
        _HW2 + "demographics.csv",
        "6adb6c57da711f6cd23accf897f8f3d04a537032d4073ea6a6c0d12bdeffbb6a",
    ),
    "geojson-counties-fips.json": (
        "https://raw.githubusercontent.com/plotly/datasets/master/geojson-counties-fips.json",
        "e540149b7525e71ee6b6cab6dea2a95205f11e0c3e7374d27a7c9c47ea96e8c0",
    ),
}

ELECTION_YEARS = (2000, 2004, 2008, 2012, 2016, 2020)

SCALAR_COVARIATES = (
    "white_pct",
    "black_pct",
    "hispanic_pct",
    "foreignborn_pct",
    "female_pct",
    "age29andunder_pct",
    "age65andolder_pct",
    "median_hh_inc",
    "clf_unemploy_pct",
    "lesshs_pct",
    "lesscollege_pct",
    "lesshs_whites_pct",
    "lesscollege_whites_pct",
    "rural_pct",
)
CATEGORICAL_COVARIATES = ("ruralurban_cc",)


class DataError(RuntimeError):
    """A data file is missing, corrupt, or does not have the expected content."""


def data_dir() -> Path:
    """The folder where data files are looked up and cached.

    ``$BAYESGLM_DATA_DIR`` when set, else the user's cache folder
    (``~/.cache/bayesglm`` on Linux).
    """
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(pooch.os_cache("bayesglm"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str) -> Path:
    """Path to a verified local copy of the data file ``name``.

    Uses the copy in :func:`data_dir` when there is one, otherwise downloads it
    from its upstream URL. Either way the SHA-256 must match, or
    :class:`DataError` is raised and the file is not used.
    """
    if name not in FILES:
        raise DataError(f"unknown data file {name!r}; expected one of {sorted(FILES)}")
    url, sha256 = FILES[name]
    folder = data_dir()
    path = folder / name
    if not path.exists():
        pooch.get_logger().setLevel(logging.WARNING)  # no "Downloading ..." lines in notebook outputs
        try:
            pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=name, path=folder)
        except Exception as err:  # network, permissions, or pooch's own hash check
            raise DataError(
                f"Could not get {name!r}: it is not in {folder} and downloading it from "
                f"{url} failed ({type(err).__name__}: {str(err)[:160]}). Connect to the internet, or "
                f"download the file yourself and set the environment variable "
                f"{DATA_DIR_ENV} to the folder that holds it."
            ) from err
    actual = _sha256(path)
    if actual != sha256:
        raise DataError(
            f"SHA-256 hash mismatch for {path}: expected {sha256}, found {actual}. The file "
            f"is corrupt or is not the published one, so it was not used. Delete it and run "
            f"again to download a fresh copy from {url} (or fix the copy in ${DATA_DIR_ENV})."
        )
    return path


def _fips_strings(column: pd.Series) -> pd.Series:
    """FIPS codes as 5-character strings (``'01001'``), whatever the CSV reader made of them."""
    return column.map(lambda code: str(int(float(code))).zfill(5))


@lru_cache(maxsize=None)
def _read_votes() -> pd.DataFrame:
    votes = pd.read_csv(fetch("votes.csv"), dtype={"fips": str})
    votes["fips"] = _fips_strings(votes["fips"])
    return votes


@lru_cache(maxsize=None)
def _read_demographics() -> pd.DataFrame:
    demo = pd.read_csv(fetch("demographics.csv"), dtype={"fips": str})
    demo["fips"] = _fips_strings(demo["fips"])
    return demo


def load_votes() -> pd.DataFrame:
    """County presidential votes, 2000-2020: one row per county, year and candidate.

    Columns: year, state, state_po, county_name, fips (5-character string),
    candidate, party, totalvotes, candidatevotes. Alaska is absent.
    """
    return _read_votes().copy()


def load_demographics() -> pd.DataFrame:
    """2018 county demographics (MIT Election Lab), one row per county, 39 columns."""
    return _read_demographics().copy()


@lru_cache(maxsize=None)
def load_county_geojson() -> dict:
    """US county polygons keyed by 5-digit FIPS in ``feature["id"]`` (3221 features).

    Cached: the same (read-only by convention) dict is returned on every call.
    """
    with open(fetch("geojson-counties-fips.json")) as f:
        return json.load(f)


def preprocess_covariates(demo: pd.DataFrame) -> pd.DataFrame:
    r"""The design matrix of the homework, one row per county sorted by FIPS.

    Columns, in order: ``intercept`` (all ones); the 14 scalar covariates of
    ``SCALAR_COVARIATES`` standardized to mean 0 and (sample) standard deviation 1
    across counties; and ``ruralurban_cc`` one-hot encoded without its first
    level, so the first level is the baseline absorbed by the intercept. With the
    2018 table this is n = 3111 rows and p = 23 columns. The index is the FIPS code.
    """
    needed = set(SCALAR_COVARIATES) | set(CATEGORICAL_COVARIATES) | {"fips"}
    missing = sorted(needed - set(demo.columns))
    if missing:
        raise DataError(
            f"demographics table is missing the column(s) {missing}; preprocess_covariates "
            f"needs {sorted(needed)} (the table from load_demographics() has them)"
        )
    demo = demo.sort_values("fips")
    scalars = demo[list(SCALAR_COVARIATES)].astype(float)
    if scalars.isna().any().any():
        bad = scalars.columns[scalars.isna().any()].tolist()
        raise DataError(f"demographics table has missing values in {bad}")
    standardized = (scalars - scalars.mean()) / scalars.std()
    levels = [
        pd.get_dummies(demo[name].astype(int), prefix=name, drop_first=True, dtype=float)
        for name in CATEGORICAL_COVARIATES
    ]
    design = pd.concat([standardized, *levels], axis=1)
    design.insert(0, "intercept", 1.0)
    design.index = pd.Index(demo["fips"].to_numpy(), name="fips")
    return design


def extract_responses(votes: pd.DataFrame, year: int) -> tuple[pd.DataFrame, list[str]]:
    """Responses of one election, one row per county sorted by FIPS.

    Returns a frame with columns ``fips``, ``state``, ``s`` (state code 0..S-1 in
    alphabetical order of state names), ``y`` (Democratic votes) and ``N``
    (Democratic + Republican votes), and the sorted list of state names.
    """
    if year not in ELECTION_YEARS:
        raise DataError(f"no election in {year!r}; the data cover {list(ELECTION_YEARS)}")
    this_year = votes[votes["year"] == year]
    by_party = this_year.pivot_table(
        index=["fips", "state"], columns="party", values="candidatevotes", aggfunc="sum"
    ).reset_index()
    by_party = by_party.sort_values("fips", ignore_index=True)
    state_names = sorted(by_party["state"].unique())
    responses = pd.DataFrame(
        {
            "fips": by_party["fips"],
            "state": by_party["state"],
            "s": pd.Categorical(by_party["state"], categories=state_names).codes.astype(int),
            "y": by_party["DEMOCRAT"].astype(int),
            "N": (by_party["DEMOCRAT"] + by_party["REPUBLICAN"]).astype(int),
        }
    )
    return responses, state_names


@dataclass(frozen=True)
class Responses:
    """One election as tensors, aligned county by county with the covariates.

    Attributes:
        year: the election year.
        fips: county FIPS codes (5-character strings), sorted.
        state_names: the S state names in alphabetical order; ``s`` indexes it.
        covariate_names: the p column names of ``X``.
        X: the design matrix.
        y: Democratic votes.
        N: Democratic + Republican votes.
        s: state code of each county.
    """

    year: int
    fips: list[str]
    state_names: list[str]
    covariate_names: list[str]
    X: Float[Tensor, "num_counties num_features"]
    y: Float[Tensor, " num_counties"]
    N: Float[Tensor, " num_counties"]
    s: Int[Tensor, " num_counties"]


def load_year(year: int, dtype: torch.dtype = torch.float64) -> Responses:
    """Covariates and responses of one election as aligned tensors.

    Counties without a result that year (Broomfield CO in 2000) are dropped from
    both, so row i of ``X`` is always the county of ``y[i]``.
    """
    covariates = preprocess_covariates(load_demographics())
    responses, state_names = extract_responses(load_votes(), year)
    responses = responses[responses["fips"].isin(covariates.index)].reset_index(drop=True)
    covariates = covariates.loc[responses["fips"]]
    return Responses(
        year=year,
        fips=responses["fips"].tolist(),
        state_names=state_names,
        covariate_names=covariates.columns.tolist(),
        X=torch.tensor(covariates.to_numpy(dtype=float), dtype=dtype),
        y=torch.tensor(responses["y"].to_numpy(), dtype=dtype),
        N=torch.tensor(responses["N"].to_numpy(), dtype=dtype),
        s=torch.tensor(responses["s"].to_numpy(), dtype=torch.long),
    )
