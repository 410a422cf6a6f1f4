"""County maps: one location per county, clear errors for bad input."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from IPython.display import Image

from bayesglm import data
from bayesglm.plotting import plot_counties


def test_interactive_map_has_every_county():
    demo = data.load_demographics()
    fig = plot_counties(demo["fips"], demo["median_hh_inc"], label="median income", interactive=True)
    assert isinstance(fig, go.Figure)
    trace = fig.data[0]
    assert len(trace.locations) == 3111
    assert list(trace.locations) == list(demo["fips"])
    assert fig.layout.coloraxis.colorbar.title.text == "median income"


def test_static_map_is_a_png():
    demo = data.load_demographics().head(50)
    image = plot_counties(demo["fips"], demo["white_pct"], interactive=False)
    assert isinstance(image, Image)
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        plot_counties(["01001", "01003"], [1.0], interactive=True)


def test_unknown_fips():
    with pytest.raises(ValueError, match="99999"):
        plot_counties(["01001", "99999"], [1.0, 2.0], interactive=True)


def test_integer_fips_are_rejected():
    with pytest.raises(ValueError, match="5-digit"):
        plot_counties([1001], [1.0], interactive=True)
