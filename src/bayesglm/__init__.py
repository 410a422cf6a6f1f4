"""bayesglm: Bayesian binomial GLMs with Pólya-gamma Gibbs sampling, in torch.

The helper package of the course book: data, samplers, forecast, figures, grading.
"""

from .data import load_county_geojson, load_demographics, load_votes, load_year
from .diagnostics import effective_sample_size, split_rhat, summarize_draws
from .gaussian import sample_gaussian_information

__version__ = "0.1.0"

__all__ = [
    "load_votes",
    "load_demographics",
    "load_county_geojson",
    "load_year",
    "split_rhat",
    "effective_sample_size",
    "summarize_draws",
    "sample_gaussian_information",
]
