"""Draw the landing page's teaser figure into _static/ (run by hand: `make teaser`).

The figure is the data the book starts from: the Democratic share of the
two-party vote in each county in 2020. It is drawn with the package's own
`plot_counties`, so it looks like the maps inside the book.

    BAYESGLM_DATA_DIR=../shared/data python scripts/make_teaser.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import bayesglm.data
import bayesglm.plotting

OUT = Path(__file__).resolve().parents[1] / "_static" / "teaser_2020_vote_share.png"


def main() -> None:
    responses = bayesglm.data.load_year(2020)
    share = 100 * responses.y / responses.N
    fig = bayesglm.plotting.plot_counties(
        responses.fips,
        share,
        label="Democratic share (%)",
        cmap="RdBu",
        interactive=True,
        range_color=(0, 100),
    )
    fig.update_layout(font={"size": 14})
    fig.write_image(OUT, format="png", width=900, height=500, scale=1.0)
    print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    sys.exit(main())
