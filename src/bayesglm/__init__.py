"""bayesglm: Bayesian binomial GLMs with Pólya-gamma Gibbs sampling, in torch.

The helper package of the course book. One module per idea:

- :mod:`~bayesglm.data`: download, verify, cache and preprocess the county data;
- :mod:`~bayesglm.polyagamma`: PG(b, c) moments and samplers; :mod:`~bayesglm.gaussian`:
  the batched Gaussian conditional every Gibbs step draws from;
- :mod:`~bayesglm.glm`, :mod:`~bayesglm.hierarchical`: the binomial GLM and its
  state-level hierarchical version; :mod:`~bayesglm.needle`: the election-night forecast;
- :mod:`~bayesglm.pooling`, :mod:`~bayesglm.mrp`: the course chapters' models;
- :mod:`~bayesglm.checks`, :mod:`~bayesglm.spatial`, :mod:`~bayesglm.diagnostics`:
  residuals, spatial correlation, R-hat and ESS;
- :mod:`~bayesglm.plotting`: county maps; :mod:`~bayesglm.grading`: student versions
  and the grader (imported on demand: ``import bayesglm.grading``).
"""

from . import mrp, needle, pooling, spatial
from .checks import deviance_residuals, total_deviance
from .data import load_county_geojson, load_demographics, load_votes, load_year
from .diagnostics import effective_sample_size, split_rhat, summarize_draws
from .gaussian import sample_gaussian_information
from .glm import BinomialGLM
from .hierarchical import HierarchicalBinomialGLM
from .plotting import plot_counties
from .polyagamma import pg_mean, pg_variance, sample_pg, sample_pg_naive

__version__ = "0.1.0"

__all__ = [
    "load_votes",
    "load_demographics",
    "load_county_geojson",
    "load_year",
    "sample_pg",
    "sample_pg_naive",
    "pg_mean",
    "pg_variance",
    "sample_gaussian_information",
    "BinomialGLM",
    "HierarchicalBinomialGLM",
    "deviance_residuals",
    "total_deviance",
    "split_rhat",
    "effective_sample_size",
    "summarize_draws",
    "plot_counties",
    "needle",
    "mrp",
    "pooling",
    "spatial",
]
