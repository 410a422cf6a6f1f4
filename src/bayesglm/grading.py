r"""Student versions of the solution notebooks, and a grader for what students hand back.

Three jobs, one declarative file of checks per folder of solutions
(``hw2_solutions/grading.toml``):

* **Student versions.** :func:`student_version` empties every cell tagged
  ``solution`` (code: ``# YOUR CODE HERE``; markdown: *Your answer here.*),
  keeps prompts and provided code, and clears all outputs.
* **Grading.** :func:`grade_notebook` runs a submission in its own Jupyter
  kernel, in a temporary folder, with a time limit per cell and for the whole
  notebook (a cell that raises or hangs is recorded and the next cell runs).
  Then every check of the assignment runs *inside the student's kernel*, as an
  extra cell with its own time limit, and returns JSON: the student's functions
  on fixed inputs against the reference implementation or a closed form, and
  their posterior summaries against the solution's, with tolerances set by
  Monte Carlo error (see :func:`posterior_tolerance`).
* **Reports.** One Markdown and one JSON report per student; a CSV summary for
  a folder of submissions. Problems graded by hand are collected for the
  instructor and scored from a CSV file.

The statistical checks and their error rates:

* ``mvn_draws`` (a Gaussian conditional, e.g. ``_gibbs_update_beta``): ``K``
  calls give draws :math:`x_k`; whitened by the exact conditional,
  :math:`z_k = L^{-1}(x_k - m)` with :math:`LL^\top = C`, they are iid
  :math:`N(0, I)` when the student is right. Then :math:`K\|\bar z\|^2 \sim
  \chi^2_d` (the mean test) and every entry of the sample covariance of the
  :math:`z_k` is within :math:`z_{crit}\sqrt{1/K}` (off-diagonal) or
  :math:`z_{crit}\sqrt{2/K}` (diagonal) of the identity (the spread test).
  Each test gets half of the false-alarm rate ``alpha`` (Bonferroni over the
  covariance entries), so a correct sampler fails with probability <= alpha.
* ``moment_draws`` (elementwise random outputs, e.g. Pólya-gamma draws):
  :math:`\sum_i K(\bar x_i - m_i)^2 / v_i \approx \chi^2_n` for the means, and
  the pooled variance ratio :math:`\sum_i s_i^2 / \sum_i v_i` within
  :math:`z_{crit}` of its standard error (estimated from the fourth moments)
  of 1 for the spread.
* ``posterior``: see :func:`posterior_tolerance`.

What this does **not** give: a security sandbox. Student code runs with the
grader's user rights, can read and write anything that user can, and can even
tamper with the checks that run in its kernel. Run the grader in a container
or a throw-away account when that matters.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace
from typing import Any

import nbformat
import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SOLUTION_TAG",
    "ANSWER_TAG",
    "CODE_PLACEHOLDER",
    "MARKDOWN_PLACEHOLDER",
    "GradingError",
    "Check",
    "Assignment",
    "GradingConfig",
    "load_config",
    "student_version",
    "graded_names",
    "write_student_versions",
    "substitute_source",
    "CheckResult",
    "Report",
    "grade_notebook",
    "grade_submissions",
    "build_key",
    "load_key",
    "apply_manual_scores",
    "write_summary_csv",
    "posterior_tolerance",
    "synthetic_glm",
    "synthetic_hierarchical",
    "glm_beta_conditional",
    "glm_log_joint",
    "hierarchical_local_conditional",
    "hierarchical_global_conditional",
    "hierarchical_log_joint",
    "main",
]

SOLUTION_TAG = "solution"
ANSWER_TAG = "answer"
CODE_PLACEHOLDER = "# YOUR CODE HERE"
MARKDOWN_PLACEHOLDER = "*Your answer here.*"
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
RESULT_MIME = "application/vnd.bayesglm.grade+json"
KERNEL_NAME = "bayesglm-grader"
INTERRUPT_GRACE_S = 15.0  # seconds an interrupted cell gets to stop before its kernel is killed
STUDENT_NOTE = (
    "> **Assignment version.** Fill in every cell that says `# YOUR CODE HERE` or "
    "*Your answer here.*, and keep the variable, class and method names that the text "
    "uses: the grader looks them up by name. Run the whole notebook from the top "
    "(Restart & Run All) before you hand it in."
)

# Markers of an answer written in a cell that is not tagged `solution` (it would leak).
ANSWER_MARKERS = re.compile(r"\*{1,2}\s*Answer\s*[.:]?\s*\*{1,2}|^\s*Answer\s*:", re.IGNORECASE | re.MULTILINE)
# Shell and package-manager lines are not run by the grader.
_SHELL_LINE = re.compile(r"^(\s*)(!|%pip\b|%conda\b|%mamba\b|%system\b|%sx\b)(.*)$")
_SHELL_CELL = re.compile(r"^\s*%%(bash|sh|script|system|sx|writefile)\b")


class GradingError(RuntimeError):
    """The grading set-up is wrong: a bad ``grading.toml``, a missing notebook or key."""


# ---------------------------------------------------------------------------------------------
# Configuration: hw2_solutions/grading.toml
# ---------------------------------------------------------------------------------------------

KINDS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (required parameters, optional parameters)
    "equal": ({"student", "reference"}, {"setup", "rtol", "atol", "up_to_constant", "dtypes", "max_mismatch_fraction"}),
    "mvn_draws": ({"student", "reference"}, {"setup", "num_draws", "alpha", "dtypes"}),
    "moment_draws": ({"student", "reference"}, {"setup", "num_draws", "alpha", "dtypes"}),
    "posterior": ({"draws"}, {"burn_in", "estimate", "event_dims", "alpha", "sd_fraction", "names", "reference",
                              "reference_burn_in", "binary"}),
    "expect": ({"expr", "message"}, {"setup"}),
    "manual": ({"heading"}, {"rubric"}),
}
_COMMON_KEYS = {"id", "problem", "title", "points", "kind", "hint", "flag_reference", "seed", "label"}
_LIMIT_KEYS = {"cell_timeout", "notebook_timeout", "check_timeout", "memory_limit_mb"}
_STAT_DEFAULTS = {
    "alpha": 1e-3,
    "num_draws": 1000,
    "rtol": 1e-6,
    "atol": 1e-8,
    "sd_fraction": 0.25,
    "burn_in": 0,
    "event_dims": 1,
    "seed": 0,
    "dtypes": ["float64", "float32"],
}
_LIMIT_DEFAULTS = {"cell_timeout": 120.0, "notebook_timeout": 900.0, "check_timeout": 120.0, "memory_limit_mb": 0}


@dataclass(frozen=True)
class Check:
    """One graded item of an assignment: a kind of test, its parameters and its points."""

    id: str
    problem: str
    title: str
    points: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    hint: str = ""
    flag_reference: tuple[str, ...] = ()

    def spec(self) -> dict[str, Any]:
        """What the kernel-side check receives (JSON)."""
        return {"id": self.id, "kind": self.kind, "flag_reference": list(self.flag_reference), **self.params}

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Assignment:
    """One solution notebook and the checks that grade its student version."""

    name: str
    notebook: Path
    title: str
    checks: tuple[Check, ...]
    cell_timeout: float
    notebook_timeout: float
    check_timeout: float
    memory_limit_mb: int = 0

    @property
    def max_points(self) -> float:
        return float(sum(check.points for check in self.checks))


@dataclass(frozen=True)
class GradingConfig:
    """All assignments of one folder of solutions."""

    path: Path
    assignments: dict[str, Assignment]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def key_path(self) -> Path:
        """Where :func:`build_key` stores the reference posterior summaries by default."""
        return self.folder / "grading_key.json"

    def assignment(self, name: str) -> Assignment:
        if name not in self.assignments:
            raise GradingError(f"no assignment {name!r} in {self.path}; it has {sorted(self.assignments)}")
        return self.assignments[name]


def _positive(value: Any, what: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GradingError(f"{what} must be a number; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise GradingError(f"{what} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    return float(value)


def _parse_check(raw: dict[str, Any], where: str, defaults: dict[str, Any]) -> Check:
    if "kind" not in raw or raw["kind"] not in KINDS:
        raise GradingError(f"{where}: 'kind' must be one of {sorted(KINDS)}; got {raw.get('kind')!r}")
    kind = raw["kind"]
    required, optional = KINDS[kind]
    for key in ("id", "problem", "points"):
        if key not in raw:
            raise GradingError(f"{where}: missing '{key}'")
    unknown = set(raw) - _COMMON_KEYS - required - optional
    if unknown:
        allowed = sorted(_COMMON_KEYS | required | optional)
        raise GradingError(f"{where} (kind {kind!r}): unknown key(s) {sorted(unknown)}; allowed: {allowed}")
    missing = required - set(raw)
    if missing:
        raise GradingError(f"{where} (kind {kind!r}): missing key(s) {sorted(missing)}")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", str(raw["id"])):
        raise GradingError(f"{where}: id {raw['id']!r} may only hold letters, digits, '.', '_' and '-'")
    points = _positive(raw["points"], f"{where}: points", allow_zero=True)
    params = {key: raw[key] for key in (required | optional | {"label"}) if key in raw}
    for key in ("alpha", "num_draws", "rtol", "atol", "sd_fraction", "burn_in", "event_dims", "dtypes"):
        if key in required | optional and key not in params:
            params[key] = defaults[key]
    params["seed"] = raw.get("seed", defaults["seed"])
    if "alpha" in params and not 0 < params["alpha"] < 0.5:
        raise GradingError(f"{where}: alpha (the false-alarm rate) must lie in (0, 0.5); got {params['alpha']}")
    if "num_draws" in params and (not isinstance(params["num_draws"], int) or params["num_draws"] < 20):
        raise GradingError(f"{where}: num_draws must be an integer >= 20; got {params['num_draws']!r}")
    reference = params.get("reference")
    if reference is not None and not (isinstance(reference, str) or (
        isinstance(reference, dict) and reference and all(isinstance(v, str) for v in reference.values())
    )):
        raise GradingError(f"{where}: reference must be an expression or a table {{label = expression}}")
    flags = raw.get("flag_reference", [])
    if isinstance(flags, str):
        flags = [flags]
    return Check(
        id=str(raw["id"]),
        problem=str(raw["problem"]),
        title=str(raw.get("title", raw["id"])),
        points=points,
        kind=kind,
        params=params,
        hint=str(raw.get("hint", "")),
        flag_reference=tuple(flags),
    )


def load_config(path: str | os.PathLike) -> GradingConfig:
    """Read and validate a ``grading.toml``; :class:`GradingError` says what is wrong and where."""
    path = Path(path)
    if path.is_dir():
        path = path / "grading.toml"
    if not path.exists():
        raise GradingError(f"no grading configuration at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise GradingError(f"{path} is not valid TOML: {err}") from err
    unknown = set(raw) - {"defaults", "assignments"}
    if unknown:
        raise GradingError(f"{path}: unknown top-level table(s) {sorted(unknown)}; expected 'defaults', 'assignments'")
    defaults = {**_STAT_DEFAULTS, **_LIMIT_DEFAULTS, **raw.get("defaults", {})}
    bad = set(defaults) - set(_STAT_DEFAULTS) - set(_LIMIT_DEFAULTS)
    if bad:
        raise GradingError(f"{path} [defaults]: unknown key(s) {sorted(bad)}")
    assignments = {}
    for name, table in raw.get("assignments", {}).items():
        where = f"{path} [assignments.{name}]"
        unknown = set(table) - {"notebook", "title", "checks"} - _LIMIT_KEYS
        if unknown:
            raise GradingError(f"{where}: unknown key(s) {sorted(unknown)}")
        notebook = path.parent / table.get("notebook", f"{name}.ipynb")
        checks = [_parse_check(c, f"{where} check {i + 1}", defaults) for i, c in enumerate(table.get("checks", []))]
        ids = [c.id for c in checks]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise GradingError(f"{where}: duplicated check id(s) {duplicated}")
        limits = {key: _positive(table.get(key, defaults[key]), f"{where}: {key}", allow_zero=key == "memory_limit_mb")
                  for key in _LIMIT_KEYS}
        assignments[name] = Assignment(
            name=name,
            notebook=notebook,
            title=str(table.get("title", name)),
            checks=tuple(checks),
            cell_timeout=limits["cell_timeout"],
            notebook_timeout=limits["notebook_timeout"],
            check_timeout=limits["check_timeout"],
            memory_limit_mb=int(limits["memory_limit_mb"]),
        )
    return GradingConfig(path=path, assignments=assignments)


# ---------------------------------------------------------------------------------------------
# Student versions
# ---------------------------------------------------------------------------------------------


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _strip_solution_regions(source: str, placeholder: str) -> str | None:
    """Replace every ``BEGIN SOLUTION`` ... ``END SOLUTION`` region by the placeholder.

    Returns None when the source has no markers (then the whole cell is the answer).
    """
    lines = source.splitlines()
    if not any(BEGIN_SOLUTION in line for line in lines):
        return None
    out, inside = [], False
    for line in lines:
        if BEGIN_SOLUTION in line:
            if inside:
                raise GradingError(f"nested {BEGIN_SOLUTION} markers in a cell:\n{source[:200]}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + placeholder)
        elif END_SOLUTION in line:
            if not inside:
                raise GradingError(f"{END_SOLUTION} without {BEGIN_SOLUTION} in a cell:\n{source[:200]}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GradingError(f"{BEGIN_SOLUTION} without {END_SOLUTION} in a cell:\n{source[:200]}")
    return "\n".join(out)


def _heading_of(cells, index: int) -> str:
    for cell in reversed(cells[: index + 1]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


_INJECTED = {"grading", "bayesglm", "torch", "np", "dtype"}


def graded_names(assignment: Assignment) -> list[str]:
    """The names of the student's notebook that the automatic checks read (in order of first use).

    Taken from the checks' student-side code (``student``, ``draws``, ``estimate``, ``expr``,
    ``setup``); names the check defines itself (in ``setup`` or a comprehension), the
    grader's own (``grading``, ``bayesglm``, ``torch``, ``np``, ``dtype``) and builtins are left out.
    """
    import ast
    import builtins

    found: list[str] = []
    for check in assignment.checks:
        defined = set(_INJECTED) | set(dir(builtins))
        sources = [check.params.get(key) for key in ("setup", "student", "draws", "estimate", "expr", "burn_in")]
        for source in sources:
            if not isinstance(source, str) or not source.strip():
                continue
            tree = ast.parse(source)
            for node in ast.walk(tree):  # names bound anywhere in this snippet (setup, comprehensions)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    defined.add(node.id)
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined:
                    if node.id not in found:
                        found.append(node.id)
    return found


def student_version(
    nb: nbformat.NotebookNode, *, assignment: str | None = None, names: list[str] | None = None
) -> tuple[nbformat.NotebookNode, list[str]]:
    """The assignment a student receives, and warnings about possible leaks.

    Cells tagged ``solution`` are emptied (code: ``# YOUR CODE HERE``; markdown:
    *Your answer here.*) and re-tagged ``answer``; inside a tagged code cell, only the
    lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` are removed when such
    markers exist. All outputs and execution counts are cleared. A warning is returned
    for every untagged cell that reads like an answer ("*Answer.*") and for every tagged
    cell that also holds a heading (it would vanish). ``names`` (see :func:`graded_names`)
    are listed in the note added under the title, so that students keep them.
    """
    nb = copy.deepcopy(nb)
    warnings = []
    for index, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if SOLUTION_TAG in tags:
            heading = re.search(r"^#+\s+(.*)$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
            if heading and _strip_solution_regions(cell.source, "") is None:
                warnings.append(
                    f"cell {index + 1} is tagged '{SOLUTION_TAG}' but holds the heading '{heading.group(1).strip()}': "
                    f"the heading and the problem statement vanish from the student version. Put them in their "
                    f"own untagged cell."
                )
            placeholder = CODE_PLACEHOLDER if cell.cell_type == "code" else MARKDOWN_PLACEHOLDER
            stripped = _strip_solution_regions(cell.source, placeholder)
            cell.source = placeholder if stripped is None else stripped
            cell.metadata["tags"] = [ANSWER_TAG if t == SOLUTION_TAG else t for t in tags]
            cell.pop("attachments", None)
        elif cell.cell_type == "markdown" and ANSWER_MARKERS.search(cell.source):
            heading = _heading_of(nb.cells, index)
            warnings.append(
                f"cell {index + 1} (markdown, under '{heading}') reads like an answer but is not tagged "
                f"'{SOLUTION_TAG}': students would see it. Move the answer to its own cell tagged '{SOLUTION_TAG}'."
            )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "markdown":
        lines = first.source.split("\n", 1)
        rest = lines[1] if len(lines) > 1 else ""
        note = STUDENT_NOTE
        if names:
            note += " The grader reads: " + ", ".join(f"`{n}`" for n in names) + "."
        first.source = f"{lines[0]}\n\n{note}\n{rest}"
    nb.metadata["bayesglm"] = {"assignment": assignment, "student_version": True}
    return nb, warnings


def _solution_notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def write_student_versions(
    solutions: str | os.PathLike, out: str | os.PathLike, *, strict: bool = False
) -> tuple[list[Path], list[str]]:
    """Write the student version of every notebook of ``solutions`` into ``out``.

    Returns the written paths and the leak warnings (prefixed with the notebook's
    name). With ``strict``, warnings raise :class:`GradingError` and nothing is written.
    """
    solutions, out = Path(solutions), Path(out)
    assignments = _assignments_by_notebook(solutions)
    paths = _solution_notebooks(solutions)
    if not paths:
        raise GradingError(f"no notebooks in {solutions}")
    results, all_warnings = [], []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        assignment = assignments.get(path.name)
        student, warnings = student_version(nb, assignment=assignment.name if assignment else path.stem,
                                            names=graded_names(assignment) if assignment else None)
        if not any(ANSWER_TAG in _tags(cell) for cell in student.cells):
            warnings.append(f"no cell is tagged '{SOLUTION_TAG}': the student version equals the solution")
        all_warnings += [f"{path.name}: {w}" for w in warnings]
        results.append((path, student))
    if strict and all_warnings:
        raise GradingError("student versions not written:\n" + "\n".join(all_warnings))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, student in results:
        target = out / path.name
        nbformat.write(student, target)
        written.append(target)
    return written, all_warnings


def _assignments_by_notebook(solutions: Path) -> dict[str, Assignment]:
    """Notebook file name -> its assignment, from the folder's grading.toml (none without one)."""
    if not (solutions / "grading.toml").exists():
        return {}
    return {a.notebook.name: a for a in load_config(solutions / "grading.toml").assignments.values()}


def substitute_source(nb: nbformat.NotebookNode, replacements: dict[str, str]) -> nbformat.NotebookNode:
    r"""A copy of ``nb`` with regular-expression replacements applied to its code cells.

    Used to grade a *reduced* solution (e.g. ``{r"num_iters=\d+": "num_iters=60"}``, or
    another seed) in tests and quick runs. Every pattern must match somewhere, so a
    replacement that silently stopped applying (the notebook changed) is an error.
    """
    nb = copy.deepcopy(nb)
    for pattern, replacement in replacements.items():
        hits = 0
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source, n = re.subn(pattern, replacement, cell.source)
                hits += n
        if not hits:
            raise GradingError(f"substitute_source: pattern {pattern!r} matches no code cell")
    return nb


# ---------------------------------------------------------------------------------------------
# Fixtures and closed forms used by the checks (kernel side)
# ---------------------------------------------------------------------------------------------


def synthetic_glm(
    num_counties: int = 40,
    num_features: int = 3,
    *,
    seed: int = 1,
    max_trials: int = 30,
    dtype: torch.dtype = torch.float64,
) -> SimpleNamespace:
    """A small binomial GLM data set with fixed Pólya-gamma variables, for checking samplers.

    Fields: ``X`` (intercept + standard normal columns), ``N`` (1..max_trials), ``y``
    drawn from the model at ``beta_true``, ``prior_mean`` (0.1 everywhere) and
    ``prior_cov`` (an SPD matrix with correlations, so that a sampler that ignores
    the prior's off-diagonal terms is caught), ``omegas`` (positive, fixed),
    ``beta`` (one test point) and ``betas`` (five test points, rows).
    """
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(num_counties, num_features, generator=g, dtype=torch.float64)
    X[:, 0] = 1.0
    N = torch.randint(1, max_trials + 1, (num_counties,), generator=g).double()
    beta_true = torch.randn(num_features, generator=g, dtype=torch.float64) * 0.7
    y = torch.binomial(N, torch.sigmoid(X @ beta_true), generator=g)
    A = torch.randn(num_features, num_features, generator=g, dtype=torch.float64)
    prior_cov = 0.5 * torch.eye(num_features, dtype=torch.float64) + 0.3 * (A @ A.T) / num_features
    prior_mean = torch.full((num_features,), 0.1, dtype=torch.float64)
    omegas = 0.05 + torch.rand(num_counties, generator=g, dtype=torch.float64) * N / 4
    betas = torch.randn(5, num_features, generator=g, dtype=torch.float64)
    data = dict(X=X, N=N, y=y, beta_true=beta_true, prior_mean=prior_mean, prior_cov=prior_cov,
                omegas=omegas, beta=betas[0], betas=betas)
    return SimpleNamespace(**{k: v.to(dtype) for k, v in data.items()})


def synthetic_hierarchical(
    num_states: int = 4,
    counties_per_state: int = 12,
    num_features: int = 3,
    *,
    seed: int = 2,
    dispersion: float = 0.5,
    max_trials: int = 30,
    dtype: torch.dtype = torch.float64,
) -> SimpleNamespace:
    """A small hierarchical binomial GLM data set (states of equal size, shuffled order).

    Fields as :func:`synthetic_glm`, plus ``s`` (state codes, long), ``num_states``,
    ``dispersion`` (:math:`\\nu`), ``global_beta`` and ``local_betas`` (a test point), and
    ``points``: five test points ``(local_betas, global_beta)`` for log densities.
    """
    g = torch.Generator().manual_seed(seed)
    base = synthetic_glm(num_states * counties_per_state, num_features, seed=seed + 1000, max_trials=max_trials)
    s = torch.arange(num_states).repeat_interleave(counties_per_state)[torch.randperm(len(base.N), generator=g)]
    global_beta = torch.randn(num_features, generator=g, dtype=torch.float64) * 0.5
    local_betas = global_beta + dispersion * torch.randn(num_states, num_features, generator=g, dtype=torch.float64)
    y = torch.binomial(base.N, torch.sigmoid((base.X * local_betas[s]).sum(-1)), generator=g)
    data = dict(X=base.X, N=base.N, y=y, prior_mean=base.prior_mean, prior_cov=base.prior_cov, omegas=base.omegas,
                global_beta=global_beta, local_betas=local_betas)
    out = {k: v.to(dtype) for k, v in data.items()}
    globals_ = global_beta + 0.3 * torch.randn(5, num_features, generator=g, dtype=torch.float64)
    noise = torch.randn(5, num_states, num_features, generator=g, dtype=torch.float64)
    locals_ = globals_[:, None] + dispersion * noise
    points = [(local.to(dtype), glob.to(dtype)) for local, glob in zip(locals_, globals_)]
    return SimpleNamespace(**out, s=s, num_states=num_states, dispersion=float(dispersion), points=points)


def _f64(*tensors: Tensor) -> list[Tensor]:
    return [torch.as_tensor(t).to(torch.float64) for t in tensors]


def glm_beta_conditional(data: SimpleNamespace) -> tuple[Float[Tensor, " p"], Float[Tensor, "p p"]]:
    r"""Mean and covariance of :math:`\beta \mid y, \omega \sim N(J^{-1}h, J^{-1})`,
    :math:`J = \Sigma^{-1} + X^\top \mathrm{diag}(\omega) X`,
    :math:`h = \Sigma^{-1}\mu + X^\top(y - N/2)`."""
    from .gaussian import gaussian_information_moments

    X, y, N, omegas, mu, Sigma = _f64(data.X, data.y, data.N, data.omegas, data.prior_mean, data.prior_cov)
    prior_precision = torch.linalg.inv(Sigma)
    J = prior_precision + X.T @ (omegas[:, None] * X)
    h = prior_precision @ mu + X.T @ (y - N / 2)
    return gaussian_information_moments(J, h)


def glm_log_joint(data: SimpleNamespace, betas: Tensor) -> Float[Tensor, " m"]:
    r""":math:`\log N(\beta; \mu, \Sigma) + \sum_i \log \mathrm{Bin}(y_i; N_i, \sigma(x_i^\top\beta))`,
    one value per row of ``betas``."""
    from .glm import binomial_log_likelihood

    X, y, N, mu, Sigma, betas = _f64(data.X, data.y, data.N, data.prior_mean, data.prior_cov, betas)
    prior = torch.distributions.MultivariateNormal(mu, covariance_matrix=Sigma)
    return prior.log_prob(betas) + binomial_log_likelihood(y, N, betas @ X.T)


def _nu_squared(data: SimpleNamespace, convention: str) -> float:
    if convention not in ("sd", "variance"):
        raise ValueError(f"convention must be 'sd' or 'variance'; got {convention!r}")
    return data.dispersion**2 if convention == "sd" else data.dispersion


def hierarchical_local_conditional(data: SimpleNamespace, convention: str = "sd") -> tuple[Tensor, Tensor]:
    r"""Moments of every :math:`\beta_s \mid \beta_0, \omega, y`: :math:`J_s = \nu^{-2} I + \sum_{i:s_i=s}
    \omega_i x_i x_i^\top`, :math:`h_s = \nu^{-2}\beta_0 + \sum_{i:s_i=s}(y_i - N_i/2) x_i`, shapes (S, p), (S, p, p).

    ``convention`` reads the dispersion :math:`\nu` as a standard deviation ("sd") or a variance."""
    from .gaussian import gaussian_information_moments

    X, y, N, omegas, global_beta = _f64(data.X, data.y, data.N, data.omegas, data.global_beta)
    S, p = data.num_states, X.shape[1]
    inv_var = 1.0 / _nu_squared(data, convention)
    onehot = torch.nn.functional.one_hot(data.s, S).to(torch.float64)  # (n, S)
    J = torch.einsum("is,i,ij,ik->sjk", onehot, omegas, X, X) + inv_var * torch.eye(p, dtype=torch.float64)
    h = onehot.T @ ((y - N / 2)[:, None] * X) + inv_var * global_beta
    return gaussian_information_moments(J, h)


def hierarchical_global_conditional(data: SimpleNamespace, convention: str = "sd") -> tuple[Tensor, Tensor]:
    r"""Moments of :math:`\beta_0 \mid \{\beta_s\}`: :math:`J_0 = \Sigma^{-1} + S\nu^{-2} I`,
    :math:`h_0 = \Sigma^{-1}\mu + \nu^{-2}\sum_s \beta_s`."""
    from .gaussian import gaussian_information_moments

    mu, Sigma, local_betas = _f64(data.prior_mean, data.prior_cov, data.local_betas)
    S, p = local_betas.shape
    inv_var = 1.0 / _nu_squared(data, convention)
    prior_precision = torch.linalg.inv(Sigma)
    J = prior_precision + S * inv_var * torch.eye(p, dtype=torch.float64)
    h = prior_precision @ mu + inv_var * local_betas.sum(0)
    return gaussian_information_moments(J, h)


def hierarchical_log_joint(data: SimpleNamespace, convention: str = "sd") -> Float[Tensor, " m"]:
    r""":math:`\log N(\beta_0;\mu,\Sigma) + \sum_s \log N(\beta_s; \beta_0, \nu^2 I) + \sum_i \log\mathrm{Bin}(y_i; N_i,
    \sigma(x_i^\top\beta_{s_i}))` at each test point ``(local_betas, global_beta)`` of ``data.points``."""
    from .glm import binomial_log_likelihood

    X, y, N, mu, Sigma = _f64(data.X, data.y, data.N, data.prior_mean, data.prior_cov)
    local = torch.stack([p[0] for p in data.points]).to(torch.float64)  # (m, S, p)
    glob = torch.stack([p[1] for p in data.points]).to(torch.float64)  # (m, p)
    nu2 = _nu_squared(data, convention)
    log_global = torch.distributions.MultivariateNormal(mu, covariance_matrix=Sigma).log_prob(glob)
    log_local = torch.distributions.Normal(glob[:, None], math.sqrt(nu2)).log_prob(local).sum((-2, -1))
    return log_global + log_local + binomial_log_likelihood(y, N, (X * local[:, data.s]).sum(-1))


# ---------------------------------------------------------------------------------------------
# Kernel side: the checks run inside the student's kernel and answer in JSON
# ---------------------------------------------------------------------------------------------


class _StudentError(Exception):
    """The student's code failed or returned something unusable (the check fails)."""


class _ReferenceError(Exception):
    """The reference side of a check failed (a grader problem: the instructor must look)."""


def _describe_exception(err: BaseException, expr: str) -> str:
    if isinstance(err, NameError):
        name = getattr(err, "name", None) or str(err)
        return (f"`{name}` is not defined when the grader evaluates `{expr}`. Did the cell that defines it "
                f"run without an error, and does it use exactly this name?")
    if isinstance(err, (KeyError, IndexError)):
        return f"`{expr}` raised {type(err).__name__}: {err}"
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"`{expr}` raised {type(err).__name__}" + (f": {message[:300]}" if message else "")


def _student_eval(expr: str, ns: dict) -> Any:
    try:
        return eval(compile(expr, "<grader>", "eval"), ns)
    except Exception as err:
        raise _StudentError(_describe_exception(err, expr)) from err


def _student_exec(code: str, ns: dict) -> None:
    try:
        exec(compile(code, "<grader setup>", "exec"), ns)
    except Exception as err:
        raise _StudentError("setting up the check failed: " + _describe_exception(err, code.strip())) from err


def _reference_eval(expr: str, ns: dict) -> Any:
    try:
        return eval(compile(expr, "<reference>", "eval"), ns)
    except Exception as err:
        raise _ReferenceError(f"the reference `{expr}` failed: {type(err).__name__}: {err}") from err


def _as_array(value: Any, what: str) -> np.ndarray:
    """Numbers of a tensor, array, frame, series, list or scalar as a numpy array."""
    try:
        if isinstance(value, Tensor):
            value = value.detach().cpu()
            return value.double().numpy() if not value.dtype.is_complex else value.numpy()
        if hasattr(value, "to_numpy"):  # pandas
            array = value.to_numpy()
        else:
            array = np.asarray(value)
        if array.dtype == object or array.dtype == bool:
            try:
                return array.astype(float)
            except (TypeError, ValueError):
                return array
        return array
    except Exception as err:
        raise _StudentError(f"{what} is a {type(value).__name__}, which the grader cannot read as numbers") from err


def _label(value: Any, index: tuple[int, ...]) -> str:
    """Human-readable position of an entry (row and column labels of a frame when known)."""
    import pandas as pd

    if isinstance(value, pd.DataFrame) and len(index) == 2:
        return f"row {value.index[index[0]]!r}, column {value.columns[index[1]]!r}"
    if isinstance(value, pd.Series) and len(index) == 1:
        return f"entry {value.index[index[0]]!r}"
    return "entry " + (str(index[0]) if len(index) == 1 else str(tuple(int(i) for i in index)))


def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{x:.6g}"
    return repr(x.item() if hasattr(x, "item") else x)


def _fmt_vector(v: np.ndarray, limit: int = 6) -> str:
    v = np.ravel(v)
    shown = ", ".join(f"{x:.4g}" for x in v[:limit])
    return f"[{shown}{', ...' if v.size > limit else ''}]"


def _compare_values(student: Any, reference: Any, what: str, rtol: float, atol: float, up_to_constant: bool,
                    max_mismatch_fraction: float = 0.0) -> str | None:
    """None when equal within tolerance, else the reason in words."""
    a, b = _as_array(student, what), _as_array(reference, "the reference")
    if a.shape != b.shape:
        reason = f"{what} has shape {tuple(a.shape)}, but the reference has shape {tuple(b.shape)}"
        if hasattr(student, "columns") and hasattr(reference, "columns") and a.ndim == b.ndim == 2:
            if a.shape[1] != b.shape[1]:
                cols = list(map(str, student.columns))
                reason += (f": it has {a.shape[1]} columns where {b.shape[1]} are expected"
                           + (f" (yours: {cols})" if len(cols) <= 30 else ""))
            if a.shape[0] != b.shape[0]:
                reason += f"; {a.shape[0]} rows where {b.shape[0]} are expected"
        return reason + "."
    numeric = np.issubdtype(b.dtype, np.number)
    if numeric and not np.issubdtype(a.dtype, np.number):
        return f"{what} holds non-numeric entries (dtype {a.dtype}) where numbers are expected."
    if not numeric:
        bad = a != b
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
        if up_to_constant and a.size:
            a, b = a - a.flat[0], b - b.flat[0]
        bad = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    if not np.any(bad) or np.sum(bad) <= max_mismatch_fraction * bad.size:
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    where = _label(reference, first)
    allowed = int(max_mismatch_fraction * bad.size)
    reason = (f"{int(np.sum(bad))} of {bad.size} entries of {what} differ from the reference"
              + (f" (relative tolerance {rtol:g}, absolute {atol:g}" if numeric else "")
              + (f"; up to {allowed} may" if allowed else "") + (")" if numeric or allowed else "")
              + f"; the first is {where}: yours {_fmt(a[first])}, reference {_fmt(b[first])}")
    if up_to_constant:
        reason += " (both shifted so that their first entries are 0: constants do not matter here)"
    return reason + "."


def _display(spec: dict) -> str:
    """How the tested expression is named in messages: its ``label``, or the code in backticks."""
    return spec.get("label") or f"`{spec.get('student') or spec.get('draws')}`"


def _alternatives(reference: str | dict[str, str]) -> list[tuple[str, str]]:
    return [("", reference)] if isinstance(reference, str) else list(reference.items())


def _check_equal(ns: dict, spec: dict) -> dict:
    student = _student_eval(spec["student"], ns)
    failures = []
    for label, expr in _alternatives(spec["reference"]):
        reference = _reference_eval(expr, ns)
        reason = _compare_values(student, reference, _display(spec), spec["rtol"], spec["atol"],
                                 bool(spec.get("up_to_constant", False)), float(spec.get("max_mismatch_fraction", 0.0)))
        if reason is None:
            return {"status": "pass", "message": f"{_display(spec)} matches the reference"
                    + (f" ({label})." if label else "."), "details": {"matched": label}}
        failures.append((label, reason))
    return {"status": "fail", "message": _join_alternatives(failures)}


def _join_alternatives(failures: list[tuple[str, str]]) -> str:
    if len(failures) == 1:
        return failures[0][1]
    return " ".join(f"Compared with the reference ({label}): {reason}" for label, reason in failures)


def _repeat_student(expr: str, ns: dict, num_draws: int) -> np.ndarray:
    code = compile(expr, "<grader>", "eval")
    draws = []
    for k in range(num_draws):
        try:
            value = eval(code, ns)
        except Exception as err:
            raise _StudentError(_describe_exception(err, expr) + (f" (on call {k + 1})" if k else "")) from err
        draws.append(_as_array(value, f"`{expr}`"))
        if k == 0 and not np.issubdtype(draws[0].dtype, np.number):
            raise _StudentError(f"`{expr}` returned {type(value).__name__} holding non-numbers")
        if draws[-1].shape != draws[0].shape:
            raise _StudentError(
                f"`{expr}` returned shape {draws[-1].shape} on call {k + 1} but {draws[0].shape} before")
    array = np.stack(draws).astype(np.float64)
    if not np.isfinite(array).all():
        raise _StudentError(f"`{expr}` returned NaN or infinite values")
    return array


def _chi2_sf(statistic: float, dof: int) -> float:
    """P(chi^2_dof > statistic), via the regularized upper incomplete gamma function."""
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                         torch.tensor(statistic / 2.0, dtype=torch.float64)))


def _z_crit(tail: float) -> float:
    """The standard normal quantile with upper tail probability ``tail``."""
    return NormalDist().inv_cdf(1.0 - tail)


def _constant_draws(x: np.ndarray, m: np.ndarray, expr: str) -> dict | None:
    """The failure for a 'sampler' that returns the same value on every call (None if it varies)."""
    if np.any(np.ptp(x, axis=0) > 0):
        return None
    is_mean = np.allclose(x[0], m, rtol=1e-4, atol=1e-8)
    return {"status": "fail", "message": (
        f"{expr} returns the same value on every call" + (" (the conditional mean)" if is_mean else "")
        + ": it must return a random draw from the conditional distribution.")}


def _check_mvn(draws: np.ndarray, mean: np.ndarray, cov: np.ndarray, alpha: float, expr: str) -> dict:
    K = draws.shape[0]
    d = mean.shape[-1]
    batch = int(np.prod(mean.shape[:-1], dtype=int))
    x = draws.reshape(K, batch, d)
    m, C = mean.reshape(batch, d), cov.reshape(batch, d, d)
    constant = _constant_draws(x, m, expr)
    if constant is not None:
        return constant
    L = np.linalg.cholesky(C)
    z = np.linalg.solve(L[None], (x - m[None])[..., None])[..., 0]  # (K, batch, d), iid N(0, I) if right
    zbar = z.mean(axis=0)
    statistic = float(K * np.sum(zbar**2))
    p_mean = _chi2_sf(statistic, batch * d)
    centred = z - zbar
    S = np.einsum("kbi,kbj->bij", centred, centred) / (K - 1)
    iu = np.triu_indices(d)
    standardized = (S - np.eye(d))[:, iu[0], iu[1]] / np.where(iu[0] == iu[1], math.sqrt(2.0 / K), math.sqrt(1.0 / K))
    crit = _z_crit(alpha / (4 * standardized.size))
    worst_sd = float(np.max(np.abs(standardized)))
    details = {"num_draws": K, "mean_chi2": statistic, "mean_dof": batch * d, "mean_p_value": p_mean,
               "max_covariance_z": worst_sd, "covariance_z_limit": crit, "alpha": alpha}
    sample_mean = x.mean(axis=0)
    sample_sd = x.std(axis=0, ddof=1)
    exact_sd = np.sqrt(np.diagonal(C, axis1=-2, axis2=-1))
    mean_bad, spread_bad = p_mean < alpha / 2, worst_sd > crit
    if not (mean_bad or spread_bad):
        return {"status": "pass", "details": details, "message": (
            f"Over {K} calls, the draws of {expr} have the mean and covariance of the exact conditional "
            f"(mean test p = {p_mean:.2g}).")}
    # Where is the mean wrong? Judged with the draws' own spread when the spread is wrong too.
    own_sd = sample_sd if spread_bad else exact_sd
    gap = np.abs(sample_mean - m) / (own_sd / math.sqrt(K))
    b, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
    gap_limit = _z_crit(alpha / (4 * batch * d))
    where = f"coordinate {j}" + (f" of block {b}" if batch > 1 else "")
    mean_text = (f"Averaged over {K} calls, {where} is {sample_mean[b, j]:.4g} where the exact conditional mean is "
                 f"{m[b, j]:.4g}: {gap[b, j]:.1f} standard errors away (a correct sampler stays within about "
                 f"{gap_limit:.1f}). Your average {_fmt_vector(sample_mean[b])}; exact mean {_fmt_vector(m[b])}.")
    spread_text = (f"Standard deviations of your draws {_fmt_vector(sample_sd[int(b)])}; exact "
                   f"{_fmt_vector(exact_sd[int(b)])} (covariance {worst_sd:.1f} standard errors off where about "
                   f"{crit:.1f} is allowed).")
    if not spread_bad:
        message = f"The draws of {expr} do not have the right mean. {mean_text}"
    elif np.max(gap) <= gap_limit:
        message = (f"The draws of {expr} have the right mean but the wrong spread: their covariance is not the "
                   f"exact conditional covariance. {spread_text}")
    else:
        message = f"The draws of {expr} have neither the right mean nor the right spread. {mean_text} {spread_text}"
    return {"status": "fail", "details": details, "message": message}


def _check_moments(draws: np.ndarray, mean: np.ndarray, var: np.ndarray, alpha: float, expr: str) -> dict:
    K = draws.shape[0]
    x = draws.reshape(K, -1)
    m = np.broadcast_to(mean, draws.shape[1:]).reshape(-1)
    v = np.broadcast_to(var, draws.shape[1:]).reshape(-1)
    fixed = v <= 0
    if np.any(fixed) and not np.allclose(x[:, fixed], m[fixed], rtol=1e-9, atol=1e-12):
        i = int(np.flatnonzero(fixed & ~np.all(np.isclose(x, m, rtol=1e-9, atol=1e-12), axis=0))[0])
        return {"status": "fail", "message": (
            f"{expr} should return exactly {m[i]:.4g} for entry {i} (a degenerate case, e.g. zero trials) "
            f"but returned values such as {x[0, i]:.4g}.")}
    x, m, v = x[:, ~fixed], m[~fixed], v[~fixed]
    constant = _constant_draws(x, m, expr)
    if constant is not None:
        return constant
    n = m.size
    xbar = x.mean(axis=0)
    zbar = (xbar - m) / np.sqrt(v / K)
    statistic = float(np.sum(zbar**2))
    p_mean = _chi2_sf(statistic, n)
    s2 = x.var(axis=0, ddof=1)
    m4 = np.mean((x - xbar) ** 4, axis=0)
    var_s2 = np.maximum(m4 - s2**2 * (K - 3) / (K - 1), 0.0) / K
    ratio = float(s2.sum() / v.sum())
    se_ratio = float(math.sqrt(var_s2.sum()) / v.sum())
    crit = _z_crit(alpha / 4)
    details = {"num_draws": K, "mean_chi2": statistic, "mean_dof": n, "mean_p_value": p_mean,
               "variance_ratio": ratio, "variance_ratio_se": se_ratio, "z_limit": crit, "alpha": alpha}
    mean_bad, spread_bad = p_mean < alpha / 2, abs(ratio - 1.0) > crit * se_ratio
    if not (mean_bad or spread_bad):
        return {"status": "pass", "details": details, "message": (
            f"Over {K} calls, the draws of {expr} have the exact mean and variance (mean test p = {p_mean:.2g}, "
            f"variance ratio {ratio:.3f}).")}
    own = (xbar - m) / np.sqrt(np.maximum(s2, 1e-300) / K)  # the mean judged with the draws' own spread
    own_ok = _chi2_sf(float(np.sum(own**2)), n) >= alpha / 2
    i = int(np.argmax(np.abs(own if spread_bad else zbar)))
    mean_text = (f"Over {K} calls, entry {i} averages {xbar[i]:.4g} where the exact mean is {m[i]:.4g}. Your averages "
                 f"{_fmt_vector(xbar)}; exact {_fmt_vector(m)}.")
    spread_text = (f"Their variance is {ratio:.3g} times the exact variance ({abs(ratio - 1) / se_ratio:.1f} standard "
                   f"errors from 1; about {crit:.1f} is allowed).")
    if not spread_bad:
        message = f"The draws of {expr} do not have the right mean. {mean_text}"
    elif own_ok:
        message = f"The draws of {expr} have the right mean but the wrong spread. {spread_text}"
    else:
        message = f"The draws of {expr} have neither the right mean nor the right variance. {mean_text} {spread_text}"
    return {"status": "fail", "details": details, "message": message}


def _run_draw_check(ns: dict, spec: dict, tester) -> dict:
    failures = []
    draws_cache: dict[str, np.ndarray] = {}
    for label, expr in _alternatives(spec["reference"]):
        reference = _reference_eval(expr, ns)
        if not (isinstance(reference, (tuple, list)) and len(reference) == 2):
            raise _ReferenceError(f"the reference `{expr}` must return a pair (mean, covariance or variance)")
        first, second = (_as_array(r, "the reference").astype(np.float64) for r in reference)
        if "draws" not in draws_cache:
            draws_cache["draws"] = _repeat_student(spec["student"], ns, spec["num_draws"])
        draws = draws_cache["draws"]
        expected_shape = first.shape if tester is _check_mvn else np.broadcast_shapes(first.shape, second.shape)
        if draws.shape[1:] != tuple(expected_shape):
            raise _StudentError(
                f"{_display(spec)} returned shape {draws.shape[1:]}, but {tuple(expected_shape)} is expected.")
        result = tester(draws, first, second, spec["alpha"], _display(spec))
        if result["status"] == "pass":
            if label:
                result["message"] += f" It matches the reference ({label})."
                result.setdefault("details", {})["matched"] = label
            return result
        failures.append((label, result["message"]))
    return {"status": "fail", "message": _join_alternatives(failures)}


def posterior_tolerance(
    mcse_student: np.ndarray, mcse_reference: np.ndarray, sd_reference: np.ndarray, *, alpha: float, sd_fraction: float
) -> tuple[np.ndarray, float]:
    r"""Allowed gap between a student's and the reference's posterior estimates, per coordinate.

    .. math::

        |\hat\theta_s - \hat\theta_r| \le z\sqrt{\mathrm{MCSE}_s^2 + \mathrm{MCSE}_r^2} + \delta\, \mathrm{sd}_r,
        \qquad z = \Phi^{-1}\big(1 - \tfrac{\alpha}{2K}\big).

    Two correct runs differ only by Monte Carlo error, whose standard deviation is
    :math:`\sqrt{\mathrm{MCSE}_s^2 + \mathrm{MCSE}_r^2}` (:math:`\mathrm{MCSE} =
    \mathrm{sd}/\sqrt{\mathrm{ESS}}`); the Bonferroni :math:`z` over the :math:`K`
    coordinates bounds the chance that a correct run fails by :math:`\alpha`. The
    slack :math:`\delta\,\mathrm{sd}_r` (a fraction of a posterior standard
    deviation) absorbs what the MCSE misses in short chains (ESS estimated from a
    few dozen draws, the end of the burn-in) and is scientifically negligible: a gap
    of a quarter of the posterior uncertainty changes no conclusion. Returns the
    per-coordinate limits and :math:`z`.
    """
    K = max(int(np.size(sd_reference)), 1)
    z = _z_crit(alpha / (2 * K))
    limit = z * np.sqrt(np.square(mcse_student) + np.square(mcse_reference)) + sd_fraction * np.asarray(sd_reference)
    return limit, z


def _posterior_summary(draws: np.ndarray, event_dims: int, burn_in: int, expr: str, *, binary: bool = False) -> dict:
    """Mean, sd, ESS and MCSE per coordinate of the draws after the burn-in.

    ``binary``: the draws are 0/1 indicators, whose sd is taken from the smoothed
    proportion (k + 1) / (n + 2), so that an estimate of exactly 0 or 1 still has a
    Monte Carlo error (of order 1/n) instead of none.
    """
    from .diagnostics import effective_sample_size

    if draws.ndim == event_dims + 1:
        draws = draws[None]
    elif draws.ndim != event_dims + 2:
        raise _StudentError(
            f"`{expr}` has shape {tuple(draws.shape)}; expected (num_draws, ...) or (num_chains, num_draws, ...) "
            f"with {event_dims} parameter dimension(s)")
    if not np.isfinite(draws).all():
        raise _StudentError(f"`{expr}` contains NaN or infinite draws")
    kept = draws[:, burn_in:]
    if kept.shape[1] < 4:
        raise _StudentError(
            f"`{expr}` has {draws.shape[1]} draws per chain; after discarding the first {burn_in} as burn-in "
            f"only {kept.shape[1]} remain (at least 4 are needed)")
    flat = kept.reshape(-1, *kept.shape[2:])
    sd = flat.std(axis=0, ddof=1)
    if binary:
        if not np.all((flat == 0) | (flat == 1)):
            raise _StudentError(f"`{expr}` should hold 0/1 (false/true) draws")
        smoothed = (flat.sum(axis=0) + 1) / (flat.shape[0] + 2)
        sd = np.sqrt(smoothed * (1 - smoothed))
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = np.nan_to_num(effective_sample_size(kept), nan=float(flat.shape[0]))
        mcse = np.where(sd > 0, sd / np.sqrt(np.maximum(ess, 1.0)), 0.0)
    if binary:  # ESS is undefined for constant indicators: then the draws count as independent
        ess = np.where(np.ptp(flat, axis=0) > 0, ess, float(flat.shape[0]))
        mcse = sd / np.sqrt(np.maximum(ess, 1.0))
    return {"mean": flat.mean(axis=0).tolist(), "sd": sd.tolist(), "mcse": mcse.tolist(), "ess": ess.tolist(),
            "num_chains": int(kept.shape[0]), "num_draws": int(kept.shape[1]), "burn_in": int(burn_in),
            "shape": list(kept.shape[2:])}


def _posterior_burn_in(ns: dict, spec: dict) -> int:
    burn_in = spec.get("burn_in", 0)
    if isinstance(burn_in, str):
        burn_in = _student_eval(burn_in, ns)
    if isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)) or burn_in < 0:
        raise _StudentError(f"the burn-in `{spec['burn_in']}` must be a non-negative integer; got {burn_in!r}")
    return int(burn_in)


def _record_posterior(ns: dict, spec: dict) -> dict:
    """In the solution's kernel: summaries of the reference draws (one per alternative) for the key."""
    references = _alternatives(spec.get("reference") or spec["draws"])
    burn_in = int(spec.get("reference_burn_in", _posterior_burn_in(ns, spec)))
    summaries = {}
    for label, expr in references:
        draws = _as_array(_reference_eval(expr, ns), f"`{expr}`").astype(np.float64)
        try:
            summaries[label] = _posterior_summary(draws, spec["event_dims"], burn_in, expr,
                                                  binary=bool(spec.get("binary", False)))
        except _StudentError as err:
            raise _ReferenceError(f"the solution's draws `{expr}` are unusable: {err}") from err
    names = [str(n) for n in _reference_eval(spec["names"], ns)] if spec.get("names") else None
    return {"status": "recorded", "message": f"reference summaries of {len(summaries)} run(s) recorded",
            "details": {"summaries": summaries, "names": names}}


def _compare_posterior(estimate: np.ndarray, summary: dict, reference: dict, spec: dict, what: str,
                       names: list[str] | None) -> tuple[bool, float, str, dict]:
    """(passed, worst gap / limit, reason, details) against one reference summary."""
    ref_mean, ref_sd, ref_mcse = (np.asarray(reference[k], dtype=np.float64) for k in ("mean", "sd", "mcse"))
    if estimate.shape != ref_mean.shape:
        raise _StudentError(
            f"{what} has shape {tuple(estimate.shape)}; the reference has shape {tuple(ref_mean.shape)}")
    mcse = np.asarray(summary["mcse"], dtype=np.float64)
    limit, z = posterior_tolerance(mcse, ref_mcse, ref_sd, alpha=spec["alpha"], sd_fraction=spec["sd_fraction"])
    gap = np.abs(estimate - ref_mean)
    ratio = gap / np.maximum(limit, 1e-300)
    details = {"estimate": estimate.tolist(), "reference_mean": ref_mean.tolist(), "limit": limit.tolist(), "z": z,
               "sd_fraction": spec["sd_fraction"]}
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), gap.shape))
    if not np.any(gap > limit):
        return True, float(np.max(ratio)), "", details
    flat_index = int(np.ravel_multi_index(worst, gap.shape)) if gap.ndim else 0
    name = (f"'{names[flat_index]}'" if names and len(names) == gap.size else
            "coordinate " + (str(worst[0]) if len(worst) == 1 else str(worst)))
    reason = (f"{what[0].upper() + what[1:]} differs from the reference in {int(np.sum(gap > limit))} of {gap.size} "
              f"coordinates, by more than Monte Carlo error allows. The largest gap is {name}: yours "
              f"{estimate[worst]:.4g}, reference {ref_mean[worst]:.4g}, allowed ±{limit[worst]:.2g} ({z:.1f} Monte "
              f"Carlo standard errors plus {spec['sd_fraction']:g} posterior standard deviation).")
    return False, float(np.max(ratio)), reason, details


def _check_posterior(ns: dict, spec: dict) -> dict:
    if spec.get("mode") == "record":
        return _record_posterior(ns, spec)
    key = spec.get("reference_summaries")
    if not key:
        raise _ReferenceError("no reference summary for this check: build the key with `bayesglm-grade key`")
    expr = spec["draws"]
    draws = _as_array(_student_eval(expr, ns), f"`{expr}`")
    if not np.issubdtype(draws.dtype, np.number):
        raise _StudentError(f"`{expr}` does not hold numbers")
    burn_in = _posterior_burn_in(ns, spec)
    summary = _posterior_summary(draws.astype(np.float64), spec["event_dims"], burn_in, expr,
                                 binary=bool(spec.get("binary", False)))
    what = f"the posterior mean of {_display(spec)}"
    if burn_in:
        what += f" after discarding the first {burn_in} draws"
    if spec.get("estimate"):
        estimate = _as_array(_student_eval(spec["estimate"], ns), f"`{spec['estimate']}`").astype(np.float64)
        what = f"`{spec['estimate']}`"
    else:
        estimate = np.asarray(summary["mean"], dtype=np.float64)
    outcomes = []
    for label, reference in key["summaries"].items():
        passed, ratio, reason, details = _compare_posterior(estimate, summary, reference, spec, what, key.get("names"))
        details["student_summary"] = summary
        if passed:
            matched = f" (the reference {label})" if label else ""
            return {"status": "pass", "details": {**details, "matched": label}, "message": (
                f"{what[0].upper() + what[1:]} agrees with the reference{matched} in all {len(details['limit'])} "
                f"coordinates, within Monte Carlo error (largest gap {ratio:.2f} of the allowed one).")}
        outcomes.append((ratio, label, reason, details))
    ratio, label, reason, details = min(outcomes)
    if len(outcomes) > 1:
        reason = f"Compared with the closest reference ({label}): {reason}"
    return {"status": "fail", "details": details, "message": (
        reason + " Common causes: no burn-in, too few iterations, or a mistake in the sampler.")}


def _check_expect(ns: dict, spec: dict) -> dict:
    value = _student_eval(spec["expr"], ns)
    try:
        ok = bool(value)
    except Exception as err:  # e.g. the truth value of a multi-element tensor
        raise _StudentError(f"`{spec['expr']}` is not true or false: {err}") from err
    if ok:
        return {"status": "pass", "message": f"`{spec['expr']}` holds."}
    return {"status": "fail", "message": spec["message"]}


_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _reference_flags(ns: dict, names: list[str]) -> list[str]:
    flags = []
    for name in names:
        obj = ns.get(name)
        if obj is None:
            continue
        classes = [c for c in getattr(obj, "__mro__", ())[:-1]] if isinstance(obj, type) else [obj]
        for c in classes:
            module = getattr(c, "__module__", "") or ""
            if module == "bayesglm" or module.startswith("bayesglm."):
                what = "is" if c is obj else "builds on"
                qualname = getattr(c, "__qualname__", getattr(c, "__name__", "?"))
                flags.append(f"`{name}` {what} the book's reference implementation ({module}.{qualname}), "
                             f"not the student's own code")
                break
    return flags


_REFERENCE_MODULES = ("data", "polyagamma", "gaussian", "glm", "hierarchical", "checks", "diagnostics", "needle")


def _run_check(student_ns: dict, spec: dict) -> dict:
    import importlib

    import bayesglm

    for module in _REFERENCE_MODULES:  # so that `bayesglm.checks...` works in reference expressions
        try:
            importlib.import_module(f"bayesglm.{module}")
        except ImportError:  # a module this version of the package lacks: expressions using it will say so
            pass

    kind = spec["kind"]
    flags = _reference_flags(student_ns, spec.get("flag_reference", []))
    dtypes = spec.get("dtypes") or ["float64"]
    errors = []
    for dtype_name in dtypes:
        ns = dict(student_ns)
        ns.update(grading=sys.modules[__name__], bayesglm=bayesglm, torch=torch, np=np,
                  dtype=_DTYPES.get(dtype_name, torch.float64))
        torch.manual_seed(int(spec.get("seed", 0)))
        np.random.seed(int(spec.get("seed", 0)) % 2**32)
        try:
            if spec.get("setup"):
                _student_exec(spec["setup"], ns)
            if kind == "equal":
                result = _check_equal(ns, spec)
            elif kind == "mvn_draws":
                result = _run_draw_check(ns, spec, _check_mvn)
            elif kind == "moment_draws":
                result = _run_draw_check(ns, spec, _check_moments)
            elif kind == "posterior":
                result = _check_posterior(ns, spec)
            elif kind == "expect":
                result = _check_expect(ns, spec)
            else:
                raise _ReferenceError(f"kind {kind!r} cannot run in the kernel")
        except _StudentError as err:
            errors.append(str(err))
            if kind in ("equal", "mvn_draws", "moment_draws") and len(errors) < len(dtypes):
                continue  # maybe the student's code wants single precision: try the next dtype
            result = {"status": "fail", "message": errors[0]}
        if result["status"] == "pass" and dtype_name != dtypes[0]:
            result["message"] += f" (Checked with {dtype_name} inputs: with {dtypes[0]} inputs, {errors[0]})"
        break
    result.setdefault("details", {})
    result["flags"] = flags
    return result


def _evaluate_check(student_ns: dict, spec: dict) -> dict:
    """Run one check on a namespace; a failure of the reference side becomes status 'error'."""
    try:
        return _run_check(student_ns, spec)
    except _ReferenceError as err:
        return {"status": "error", "message": str(err)}
    except Exception as err:
        return {"status": "error", "message": f"the check itself failed: {type(err).__name__}: {err}"}


def _kernel_run_check(student_ns: dict, spec_json: str) -> None:
    """Entry point of the cell that the grader injects: run one check and display its JSON result."""
    from IPython.display import display

    result = _evaluate_check(student_ns, json.loads(spec_json))
    display({RESULT_MIME: json.loads(json.dumps(result, default=_json_default))}, raw=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ---------------------------------------------------------------------------------------------
# Grader side: run a submission in its own kernel, then the checks
# ---------------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The outcome of one check for one student."""

    id: str
    problem: str
    title: str
    max_points: float
    status: str  # pass | fail | error | pending | graded
    points: float | None
    message: str
    hint: str = ""
    details: dict = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    comment: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> CheckResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Report:
    """A student's grade for one assignment, with the reasons, ready for Markdown and JSON."""

    student: str
    assignment: str
    title: str
    submission: str
    checks: list[CheckResult]
    notebook: dict = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    graded_at: str = ""
    bayesglm_version: str = ""

    @property
    def score(self) -> float:
        return float(sum(c.points or 0.0 for c in self.checks))

    @property
    def max_score(self) -> float:
        return float(sum(c.max_points for c in self.checks))

    @property
    def pending(self) -> float:
        return float(sum(c.max_points for c in self.checks if c.status == "pending"))

    @property
    def needs_attention(self) -> list[str]:
        notes = [f"{c.id}: could not be checked ({c.message})" for c in self.checks if c.status == "error"]
        notes += [f"{c.id}: {flag}" for c in self.checks for flag in c.flags]
        return notes + list(self.flags)

    def to_dict(self) -> dict:
        return {
            "student": self.student, "assignment": self.assignment, "title": self.title,
            "submission": self.submission, "graded_at": self.graded_at, "bayesglm_version": self.bayesglm_version,
            "score": self.score, "max_score": self.max_score, "pending_points": self.pending,
            "checks": [c.__dict__ for c in self.checks], "notebook": self.notebook, "flags": self.flags,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        return cls(
            student=data["student"], assignment=data["assignment"], title=data["title"],
            submission=data["submission"], checks=[CheckResult.from_dict(c) for c in data["checks"]],
            notebook=data.get("notebook", {}), flags=data.get("flags", []),
            graded_at=data.get("graded_at", ""), bayesglm_version=data.get("bayesglm_version", ""),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    def to_markdown(self) -> str:
        """The student's report: score, a table per check, the reasons, and what happened in the notebook."""
        pts = _points
        lines = [f"# {self.title}: grading report for {self.student}", ""]
        score = f"**Score: {pts(self.score)} / {pts(self.max_score)}**"
        if self.pending:
            score += f" ({pts(self.pending)} of them graded by hand, not yet scored)"
        lines += [score, "", f"Submission `{self.submission}`, graded {self.graded_at} "
                  f"(bayesglm {self.bayesglm_version}).", ""]
        lines += ["| Problem | Check | Points | Result |", "|---|---|---|---|"]
        for c in self.checks:
            got = "–" if c.points is None else pts(c.points)
            cells = [c.problem, c.title, f"{got} / {pts(c.max_points)}", _STATUS_WORDS[c.status]]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
        explained = [c for c in self.checks if c.status in ("fail", "error", "graded", "pending") or c.comment]
        if explained:
            lines += ["## Details", ""]
            for c in explained:
                got = "–" if c.points is None else pts(c.points)
                lines += [f"### {c.problem} · {c.title} ({got} / {pts(c.max_points)})", ""]
                if c.message:
                    lines += [c.message, ""]
                if c.hint and c.status == "fail":
                    lines += [f"*Hint:* {c.hint}", ""]
                if c.comment:
                    lines += [f"*Instructor:* {c.comment}", ""]
                if c.status == "pending" and c.details.get("answer"):
                    lines += ["<details><summary>Your answer, as the grader found it</summary>", "", "```text",
                              c.details["answer"].strip()[:4000], "```", "", "</details>", ""]
        nb = self.notebook
        lines += ["## Your notebook", ""]
        if nb.get("read_error"):
            lines += [f"- The notebook could not be read: {nb['read_error']}", ""]
        else:
            if nb.get("executed", True):
                lines.append(f"- {nb.get('cells_run', 0)} of {nb.get('code_cells', 0)} code cells ran, "
                             f"in {nb.get('runtime_s', 0):.0f} s (limits: {nb.get('cell_timeout', 0):.0f} s per cell, "
                             f"{nb.get('notebook_timeout', 0):.0f} s in all).")
            elif nb.get("code_cells"):
                lines.append("- The notebook was not run: this assignment has only problems graded by hand.")
            for issue in nb.get("issues", []):
                where = f"Code cell {issue['cell']}: " if issue.get("cell") else ""
                lines.append(f"- {where}{issue['message']}")
            lines.append("")
        attention = self.needs_attention
        if attention:
            lines += ["## Notes for the instructor", ""] + [f"- {note}" for note in attention] + [""]
        return "\n".join(lines)


_STATUS_WORDS = {"pass": "passed", "fail": "failed", "error": "not checked (grader problem)",
                 "pending": "graded by hand: pending", "graded": "graded by hand"}


def _points(x: float) -> str:
    return f"{x:g}"


def _kernel_spec_dir(workdir: Path) -> Path:
    """A kernel spec for this very interpreter, so the kernel sees the same packages as the grader."""
    folder = workdir / ".kernels"
    spec = folder / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "bayesglm grader", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return folder


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "BAYESGLM_STATIC_FIGURES": "0",  # plotly figures stay objects: no browser needed to grade
        "BAYESGLM_GRADING": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    })
    return env


def _memory_limiter(limit_mb: int):
    if not limit_mb or os.name != "posix":
        return None

    def limit() -> None:  # runs in the kernel process before it starts
        import resource

        size = int(limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return limit


def _sanitize(source: str) -> tuple[str, list[str]]:
    """Drop shell and package-manager commands (``!pip``, ``%pip``, ``%%bash``...): the grader does not run them."""
    if _SHELL_CELL.match(source):
        return "pass  # (a shell cell: not run by the grader)", ["a shell cell (%%...) was not run"]
    out, skipped = [], []
    for line in source.splitlines():
        match = _SHELL_LINE.match(line)
        if match:
            out.append(f"{match.group(1)}pass  # (not run by the grader)")
            skipped.append(f"`{line.strip()[:80]}` was not run (shell and package commands are skipped)")
        else:
            out.append(line)
    return "\n".join(out), skipped


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            return line.strip()[:80]
    return source.strip()[:80]


def _error_output(cell) -> dict | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output
    return None


def _check_result_output(cell) -> dict | None:
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if RESULT_MIME in data:
            return data[RESULT_MIME]
    return None


@dataclass
class _Run:
    issues: list[dict] = field(default_factory=list)
    cells_run: int = 0
    code_cells: int = 0
    runtime_s: float = 0.0
    dead: str = ""  # why the kernel is gone, when it is
    results: dict[str, dict] = field(default_factory=dict)


async def _execute(nb, assignment: Assignment, specs: list[dict], *, cell_timeout: float, notebook_timeout: float,
                   check_timeout: float) -> _Run:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    run = _Run()
    grace = INTERRUPT_GRACE_S
    code_cells = []
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and cell.get("source", "").strip():
            source, skipped = _sanitize(cell.source)
            code_cells.append((nbformat.v4.new_code_cell(source), skipped, cell.source))
    run.code_cells = len(code_cells)
    with tempfile.TemporaryDirectory(prefix="bayesglm-grade-") as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        ksm = KernelSpecManager(kernel_dirs=[str(_kernel_spec_dir(Path(tmp)))])
        km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
        exec_nb = nbformat.v4.new_notebook()
        exec_nb.cells = [c for c, _, _ in code_cells]
        quiet = logging.getLogger("bayesglm.grading.kernel")  # timeouts are reported, not logged
        quiet.setLevel(logging.CRITICAL)
        client = NotebookClient(exec_nb, km=km, timeout=int(cell_timeout), allow_errors=True,
                                interrupt_on_timeout=True, record_timing=False, startup_timeout=120, log=quiet)
        log = open(Path(tmp) / "kernel.log", "w")
        kwargs = {"cwd": str(workdir), "env": _kernel_env(), "stdout": log, "stderr": log}
        limiter = _memory_limiter(assignment.memory_limit_mb)
        if limiter is not None:
            kwargs["preexec_fn"] = limiter
        start = time.monotonic()

        async def run_cell(cell, index: int, timeout: float) -> str:
            """Run one cell; return '' or why the kernel is gone."""
            client.timeout = max(1, int(math.ceil(timeout)))
            task = asyncio.ensure_future(client.async_execute_cell(cell, index))
            done, _ = await asyncio.wait({task}, timeout=client.timeout + grace)
            if not done:  # interrupted at client.timeout, still running: kill the kernel
                try:
                    await km.shutdown_kernel(now=True)
                except Exception:
                    pass
                done, _ = await asyncio.wait({task}, timeout=10)
                if not done:
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved, so that asyncio does not log it
                return f"did not stop within {grace:.0f} s of being interrupted, so the kernel was stopped"
            try:
                task.result()
            except DeadKernelError:
                return "the kernel stopped (the code crashed it, ran out of memory or called exit())"
            return ""

        try:
            await client.async_start_new_kernel(**kwargs)
            await client.async_start_new_kernel_client()
        except Exception as err:
            log.close()
            raise GradingError(f"could not start a Python kernel to grade with: {type(err).__name__}: {err}") from err
        try:
            # Import the grader (torch, numpy, the package) before the clock starts: time
            # limits are about the student's code, not about loading libraries.
            prelude = nbformat.v4.new_code_cell("import bayesglm.grading as _bayesglm_grading\ndel _bayesglm_grading")
            exec_nb.cells.append(prelude)
            dead = await run_cell(prelude, len(exec_nb.cells) - 1, 300)
            if dead:
                raise GradingError(f"the grader could not import bayesglm in the kernel: {dead}")
            start = time.monotonic()
            deadline = start + notebook_timeout
            for index, (cell, skipped, original) in enumerate(code_cells):
                number = index + 1
                for note in skipped:
                    run.issues.append({"cell": number, "kind": "skipped", "message": note})
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    run.issues.append({"cell": number, "kind": "not_run", "message": (
                        f"not run: the notebook's time limit ({notebook_timeout:.0f} s) was reached")})
                    continue
                timeout = min(cell_timeout, remaining)
                began = time.monotonic()
                dead = await run_cell(cell, index, timeout)
                elapsed = time.monotonic() - began
                if dead:
                    run.dead = f"code cell {number} (`{_first_line(original)}`): {dead}"
                    run.issues.append({"cell": number, "kind": "kernel_died", "message": dead})
                    break
                run.cells_run += 1
                error = _error_output(cell)
                if error is not None and error.get("ename") == "KeyboardInterrupt" and elapsed >= timeout - 1:
                    limit = "per cell" if timeout >= cell_timeout else "left for the notebook"
                    run.issues.append({"cell": number, "kind": "timeout", "message": (
                        f"stopped after {timeout:.0f} s (the time limit {limit}); `{_first_line(original)}`")})
                elif error is not None:
                    evalue = str(error.get("evalue", "")).strip().splitlines()
                    run.issues.append({"cell": number, "kind": "error", "message": (
                        f"raised {error.get('ename')}" + (f": {evalue[0][:200]}" if evalue else "")
                        + f" (in `{_first_line(original)}`)")})
            run.runtime_s = time.monotonic() - start
            for spec in specs:
                if run.dead:
                    break
                code = ("import bayesglm.grading as _bayesglm_grading\n"
                        f"_bayesglm_grading._kernel_run_check(globals(), {json.dumps(spec)!r})")
                cell = nbformat.v4.new_code_cell(code)
                exec_nb.cells.append(cell)
                dead = await run_cell(cell, len(exec_nb.cells) - 1, check_timeout)
                if dead:
                    run.dead = f"the check {spec['id']}: {dead}"
                    run.results[spec["id"]] = {"status": "fail", "message": f"While this check ran, {dead}."}
                    break
                result = _check_result_output(cell)
                if result is None:
                    error = _error_output(cell)
                    if error is not None and error.get("ename") == "KeyboardInterrupt":
                        result = {"status": "fail", "message": (
                            f"The check did not finish within {check_timeout:.0f} s: your code ran too long "
                            f"(or forever) on the grader's inputs.")}
                    else:
                        why = f"{error.get('ename')}: {error.get('evalue')}" if error else "no result"
                        result = {"status": "error", "message": f"the check produced no result ({why})"}
                run.results[spec["id"]] = result
        finally:
            run.runtime_s = run.runtime_s or time.monotonic() - start
            try:
                if await km.is_alive():
                    await km.shutdown_kernel(now=True)
            except Exception:
                pass
            if client.kc is not None:
                client.kc.stop_channels()
            try:
                await km.cleanup_resources()
            except Exception:
                pass
            log.close()
    return run


def _read_notebook(path_or_nb) -> tuple[nbformat.NotebookNode | None, str]:
    if isinstance(path_or_nb, nbformat.NotebookNode):
        return path_or_nb, ""
    try:
        nb = nbformat.read(str(path_or_nb), as_version=4)
    except Exception as err:
        return None, f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    if not isinstance(nb, nbformat.NotebookNode) or "cells" not in nb:
        return None, "not a Jupyter notebook"
    return nb, ""


def _section(cells, heading: str) -> list:
    """The cells from the markdown heading that names ``heading`` up to the next heading of the same or higher level."""
    pattern = re.compile(r"^(#+)\s.*?" + re.escape(heading) + r"(?![A-Za-z0-9])", re.IGNORECASE | re.MULTILINE)
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        match = pattern.search(cell.source)
        if not match:
            continue
        level = len(match.group(1))
        section = [cell]
        for later in cells[i + 1:]:
            if later.get("cell_type") == "markdown":
                m = re.search(r"^(#+)\s", later.source, re.MULTILINE)
                if m and len(m.group(1)) <= level:
                    break
            section.append(later)
        return section
    return []


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _manual_answer(nb, check: Check, prompts: set[str]) -> tuple[str, bool]:
    """The student's text for a problem graded by hand, and whether the problem's heading was found."""
    section = _section(nb.cells, check.params["heading"]) if nb is not None else []
    if not section:
        return "", False
    parts = []
    placeholders = {_normalize(CODE_PLACEHOLDER), _normalize(MARKDOWN_PLACEHOLDER)}
    for cell in section:
        full = _normalize(cell.source)
        if not full or full in placeholders or full in prompts:  # untouched prompt, given code or placeholder
            continue
        body = cell.source
        if cell.cell_type == "markdown":  # a heading alone is not an answer
            body = re.sub(r"^\s*#+\s.*$", "", body, flags=re.MULTILINE)
        text = _normalize(body)
        for prompt in prompts:  # the prompt cell with the answer typed into it
            if len(prompt) > 20 and full.startswith(prompt):
                text = full[len(prompt):].strip()
                break
        if text.replace(_normalize(MARKDOWN_PLACEHOLDER), "").strip():
            parts.append(cell.source.strip())
    return "\n\n".join(parts), True


def _prompt_sources(assignment: Assignment) -> set[str]:
    """Normalized sources of the cells a student receives unchanged (prompts and given code)."""
    if not assignment.notebook.exists():
        return set()
    student, _ = student_version(nbformat.read(assignment.notebook, as_version=4), assignment=assignment.name)
    return {_normalize(c.source) for c in student.cells if ANSWER_TAG not in _tags(c) and c.source.strip()}


def _submission_flags(nb) -> list[str]:
    if nb is None:
        return []
    text = "\n".join(c.get("source", "") for c in nb.cells if c.get("cell_type") == "code")
    flags = []
    if re.search(r"bayesglm\.grading|_kernel_run_check|from bayesglm import grading", text):
        flags.append("the submission refers to the grader (bayesglm.grading): look at it before trusting the score")
    return flags


def _code_notebook_hash(nb) -> str:
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]


async def _grade_async(
    submission, assignment: Assignment, *, student: str | None, key: dict | None, mode: str = "grade",
    cell_timeout: float | None = None, notebook_timeout: float | None = None, check_timeout: float | None = None,
    prompts: set[str] | None = None,
) -> Report:
    from . import __version__

    nb, read_error = _read_notebook(submission)
    name = student or (Path(submission).stem if not isinstance(submission, nbformat.NotebookNode) else "submission")
    cell_timeout = cell_timeout or assignment.cell_timeout
    notebook_timeout = notebook_timeout or assignment.notebook_timeout
    check_timeout = check_timeout or assignment.check_timeout
    key_checks = (key or {}).get("assignments", {}).get(assignment.name, {}).get("checks", {})
    specs = []
    for check in assignment.checks:
        if check.kind == "manual":
            continue
        spec = check.spec()
        if check.kind == "posterior":
            if mode == "record":
                spec["mode"] = "record"
            else:
                entry = key_checks.get(check.id)
                if entry is not None and entry.get("spec_hash") == check.spec_hash():
                    spec["reference_summaries"] = {"summaries": entry["summaries"], "names": entry.get("names")}
        specs.append(spec)
    run = _Run()
    if nb is not None and specs:
        run = await _execute(nb, assignment, specs, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                             check_timeout=check_timeout)
    elif nb is not None:
        run.code_cells = sum(1 for c in nb.cells if c.get("cell_type") == "code" and c.get("source", "").strip())
    prompts = _prompt_sources(assignment) if prompts is None else prompts
    results = []
    for check in assignment.checks:
        base = dict(id=check.id, problem=check.problem, title=check.title, max_points=check.points, hint=check.hint)
        if check.kind == "manual":
            rubric = f" Rubric: {check.params['rubric']}" if check.params.get("rubric") else ""
            answer, found = _manual_answer(nb, check, prompts)
            if answer:
                results.append(CheckResult(**base, status="pending", points=None, details={"answer": answer},
                                           message="Graded by hand." + rubric))
            else:
                reason = ("no answer was found under this problem's heading" if found else
                          f"the heading '{check.params['heading']}' was not found in the notebook")
                results.append(CheckResult(**base, status="fail", points=0.0, message=f"No answer: {reason}."))
            continue
        if read_error:
            outcome = {"status": "fail",
                       "message": f"The notebook could not be read ({read_error}), so nothing could be checked."}
        elif check.id in run.results:
            outcome = run.results[check.id]
        elif run.dead:
            outcome = {"status": "fail", "message": f"Not checked: {run.dead}, so the rest could not be run."}
        else:
            outcome = {"status": "fail", "message": "Not checked: the notebook has no code cells."}
        status = outcome.get("status", "error")
        points = check.points if status in ("pass", "recorded") else 0.0
        results.append(CheckResult(**base, status="pass" if status == "recorded" else status, points=points,
                                   message=outcome.get("message", ""), details=outcome.get("details", {}),
                                   flags=outcome.get("flags", [])))
    notebook_info = {"code_cells": run.code_cells, "cells_run": run.cells_run, "runtime_s": round(run.runtime_s, 1),
                     "issues": run.issues, "cell_timeout": cell_timeout, "notebook_timeout": notebook_timeout,
                     "executed": bool(nb is not None and specs)}
    if read_error:
        notebook_info["read_error"] = read_error
    elif nb is not None and not run.code_cells:
        notebook_info["issues"] = [{"cell": 0, "kind": "empty", "message": "The notebook has no code."}]
    return Report(
        student=name, assignment=assignment.name, title=assignment.title,
        submission=str(submission) if not isinstance(submission, nbformat.NotebookNode) else "(in memory)",
        checks=results, notebook=notebook_info, flags=_submission_flags(nb),
        graded_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), bayesglm_version=__version__,
    )


def _run_sync(coroutine):
    from jupyter_core.utils import run_sync

    async def wrapper():
        return await coroutine

    return run_sync(wrapper)()


def grade_notebook(
    submission: str | os.PathLike | nbformat.NotebookNode,
    assignment: Assignment,
    *,
    key: dict | None = None,
    student: str | None = None,
    cell_timeout: float | None = None,
    notebook_timeout: float | None = None,
    check_timeout: float | None = None,
) -> Report:
    """Grade one submission (a path or an in-memory notebook) of ``assignment``.

    Never raises because of the submission: a notebook that cannot be read, raises,
    hangs, kills its kernel or lacks an answer gets a report that says so.
    ``key`` holds the reference posterior summaries (:func:`load_key`); posterior checks
    without one are reported as not checked. Timeouts default to the assignment's.
    """
    return _run_sync(_grade_async(submission, assignment, student=student, key=key, cell_timeout=cell_timeout,
                                  notebook_timeout=notebook_timeout, check_timeout=check_timeout))


def _student_names(paths: list[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))
    return [str(p.relative_to(common).with_suffix("")).replace(os.sep, "__") for p in paths]


def grade_submissions(
    submissions: list[str | os.PathLike],
    assignment: Assignment,
    *,
    key: dict | None = None,
    jobs: int = 1,
    progress=None,
    **timeouts: float | None,
) -> list[Report]:
    """Grade several submissions, ``jobs`` kernels at a time; reports in the input order."""
    paths = [Path(p) for p in submissions]
    names = _student_names(paths)
    prompts = _prompt_sources(assignment)
    semaphore = asyncio.Semaphore(max(1, int(jobs)))

    async def one(path: Path, name: str) -> Report:
        async with semaphore:
            report = await _grade_async(path, assignment, student=name, key=key, prompts=prompts, **timeouts)
            if progress is not None:
                progress(report)
            return report

    async def everything():
        return await asyncio.gather(*(one(p, n) for p, n in zip(paths, names)))

    return _run_sync(everything())


# ---------------------------------------------------------------------------------------------
# The key: reference posterior summaries, recorded from the solution notebooks
# ---------------------------------------------------------------------------------------------


def load_key(path: str | os.PathLike) -> dict:
    """Read a key written by :func:`build_key` ({} when there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _key_is_current(key: dict, assignment: Assignment, nb) -> bool:
    entry = key.get("assignments", {}).get(assignment.name)
    if entry is None or entry.get("notebook_hash") != _code_notebook_hash(nb):
        return False
    wanted = {c.id: c.spec_hash() for c in assignment.checks if c.kind == "posterior"}
    return all(entry["checks"].get(i, {}).get("spec_hash") == h for i, h in wanted.items())


def build_key(
    config: GradingConfig,
    names: list[str] | None = None,
    *,
    notebooks: dict[str, nbformat.NotebookNode] | None = None,
    key: dict | None = None,
    force: bool = False,
) -> tuple[dict, list[Report]]:
    """Run the solution notebooks and record their posterior summaries (the key).

    Every other check is graded on the solution at the same time: a solution that
    does not get full marks means the checks or the solution are wrong, and raises
    :class:`GradingError` with the reasons. ``notebooks`` replaces solution notebooks by
    in-memory versions (e.g. reduced by :func:`substitute_source`). Entries that are
    current (same code cells, same check parameters) are kept unless ``force``.
    Returns the key and the solutions' reports.
    """
    key = copy.deepcopy(key) if key else {}
    key.setdefault("assignments", {})
    reports = []
    for name in names or list(config.assignments):
        assignment = config.assignment(name)
        if not any(c.kind == "posterior" for c in assignment.checks) and notebooks is None:
            continue
        if notebooks and name in notebooks:
            nb = notebooks[name]
        elif assignment.notebook.exists():
            nb = nbformat.read(assignment.notebook, as_version=4)
        else:
            raise GradingError(f"the solution notebook {assignment.notebook} of {name} does not exist")
        if not force and _key_is_current(key, assignment, nb):
            continue
        report = _run_sync(_grade_async(nb, assignment, student="solution", key=None, mode="record"))
        reports.append(report)
        wrong = [c for c in report.checks if c.status not in ("pass", "pending")]
        if wrong:
            reasons = "\n".join(f"- {c.id}: {c.message}" for c in wrong)
            raise GradingError(f"the solution of {name} does not pass its own checks:\n{reasons}")
        key["assignments"][name] = {
            "notebook_hash": _code_notebook_hash(nb),
            "recorded_at": report.graded_at,
            "checks": {c.id: {"spec_hash": assignment_check.spec_hash(), "summaries": c.details["summaries"],
                              "names": c.details.get("names")}
                       for c, assignment_check in zip(report.checks, assignment.checks)
                       if assignment_check.kind == "posterior"},
        }
    key["bayesglm_version"] = reports[0].bayesglm_version if reports else key.get("bayesglm_version", "")
    return key, reports


def ensure_key(config: GradingConfig, names: list[str], key_path: Path, *, log=print) -> dict:
    """The key at ``key_path``, rebuilt (and saved) for the assignments whose entry is missing or stale."""
    key = load_key(key_path)
    stale = []
    for name in names:
        assignment = config.assignment(name)
        if not any(c.kind == "posterior" for c in assignment.checks):
            continue
        if not assignment.notebook.exists():
            raise GradingError(f"the solution notebook {assignment.notebook} of {name} does not exist")
        if not _key_is_current(key, assignment, nbformat.read(assignment.notebook, as_version=4)):
            stale.append(name)
    if stale:
        log(f"building the reference key for {', '.join(stale)} (runs the solution notebook once) ...")
        key, _ = build_key(config, stale, key=key)
        key_path.write_text(json.dumps(key, indent=1))
        log(f"key written to {key_path}")
    return key


# ---------------------------------------------------------------------------------------------
# Manual scores, reports on disk, class summary
# ---------------------------------------------------------------------------------------------


def apply_manual_scores(report: Report, rows: list[dict]) -> Report:
    """Apply the instructor's scores (rows with student, check, points[, comment]) to a report.

    A row for a problem graded by hand scores it; a row for an automatic check
    overrides its points (the report says so). Points must lie in [0, max points].
    """
    by_id = {c.id: c for c in report.checks}
    for row in rows:
        if row.get("student") != report.student or not str(row.get("points", "")).strip():
            continue
        check = by_id.get(row.get("check", ""))
        if check is None:
            raise GradingError(f"manual scores: no check {row.get('check')!r} in {report.assignment}; "
                               f"checks are {sorted(by_id)}")
        try:
            points = float(row["points"])
        except ValueError as err:
            raise GradingError(f"manual scores: points {row['points']!r} for {report.student}/{check.id} "
                               f"is not a number") from err
        if not 0 <= points <= check.max_points:
            raise GradingError(f"manual scores: {points:g} points for {report.student}/{check.id} is outside "
                               f"[0, {check.max_points:g}]")
        comment = (row.get("comment") or "").strip()
        if check.status == "pending" or check.status == "graded":
            check.status = "graded"
        else:
            comment = (f"points set by the instructor (the automatic check gave {check.points or 0:g})"
                       + (f": {comment}" if comment else ""))
        check.points = points
        check.comment = comment
    return report


def read_manual_scores(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"student", "check", "points"} - set(rows[0] if rows else {"student", "check", "points"})
    if missing:
        raise GradingError(f"{path}: the CSV needs the columns student, check, points[, comment]; "
                           f"missing {sorted(missing)}")
    return rows


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{report.student}.md", out / f"{report.student}.json"
    md.write_text(report.to_markdown())
    js.write_text(report.to_json())
    return md, js


def write_summary_csv(reports: list[Report], path: str | os.PathLike) -> Path:
    """One row per student: total, points per check, and what needs the instructor's attention."""
    path = Path(path)
    check_ids = [c.id for c in reports[0].checks] if reports else []
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "score", "max_score", "pending_points", *check_ids,
                         "cells_with_errors", "needs_attention"])
        for r in reports:
            by_id = {c.id: c for c in r.checks}
            points = ["" if by_id.get(i) is None or by_id[i].points is None else f"{by_id[i].points:g}"
                      for i in check_ids]
            bad_cells = sum(1 for issue in r.notebook.get("issues", []) if issue["kind"] != "skipped")
            writer.writerow([r.student, r.assignment, f"{r.score:g}", f"{r.max_score:g}", f"{r.pending:g}", *points,
                             bad_cells, " | ".join(r.needs_attention)])
    return path


def write_manual_template(reports: list[Report], path: Path) -> Path | None:
    rows = [(r.student, c.id, c.max_points) for r in reports for c in r.checks if c.status == "pending"]
    if not rows:
        return None
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "check", "max_points", "points", "comment"])
        for student, check, max_points in rows:
            writer.writerow([student, check, f"{max_points:g}", "", ""])
    return path


# ---------------------------------------------------------------------------------------------
# Command line: bayesglm-grade
# ---------------------------------------------------------------------------------------------


def _infer_assignment(config: GradingConfig, path: Path) -> str | None:
    nb, _ = _read_notebook(path)
    if nb is not None:
        name = nb.metadata.get("bayesglm", {}).get("assignment")
        if name in config.assignments:
            return name
    matches = [n for n in config.assignments if n in path.name]
    return max(matches, key=len) if matches else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesglm-grade",
        description="Make student versions of the solution notebooks, and grade submissions.",
        epilog="Grading is the default: `bayesglm-grade submission.ipynb --assignment 02_binomial_glm`.",
    )
    sub = parser.add_subparsers(dest="command")
    student = sub.add_parser("student", help="write the student version of every solution notebook")
    student.add_argument("solutions", type=Path, help="folder of solution notebooks (e.g. hw2_solutions)")
    student.add_argument("-o", "--out", type=Path, required=True, help="output folder (e.g. student/)")
    student.add_argument("--strict", action="store_true", help="fail when a cell looks like an untagged answer")

    grade = sub.add_parser("grade", help="grade one or more submissions (notebooks or folders of notebooks)")
    grade.add_argument("submissions", type=Path, nargs="+")
    grade.add_argument("-a", "--assignment", help="assignment name (default: from the notebook or its file name)")
    grade.add_argument("-s", "--solutions", type=Path, default=Path("hw2_solutions"),
                       help="folder with grading.toml and the solutions (default: hw2_solutions)")
    grade.add_argument("-o", "--out", type=Path, default=Path("grading_reports"), help="folder for the reports")
    grade.add_argument("--key", type=Path, help="reference key (default: SOLUTIONS/grading_key.json, built if missing)")
    grade.add_argument("--manual-scores", type=Path, help="CSV of scores given by hand: student,check,points[,comment]")
    grade.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded at once (one kernel each)")
    grade.add_argument("--cell-timeout", type=float, help="seconds per cell (default: from grading.toml)")
    grade.add_argument("--notebook-timeout", type=float, help="seconds for the whole notebook")
    grade.add_argument("--check-timeout", type=float, help="seconds per check")

    key = sub.add_parser("key", help="run the solution notebooks and record the reference posterior summaries")
    key.add_argument("solutions", type=Path, nargs="?", default=Path("hw2_solutions"))
    key.add_argument("-a", "--assignment", action="append", help="only this assignment (repeatable)")
    key.add_argument("--key", type=Path, help="where to write it (default: SOLUTIONS/grading_key.json)")
    key.add_argument("--force", action="store_true", help="rebuild entries that look current")

    rescore = sub.add_parser("rescore", help="re-apply hand-given scores to the JSON reports of a folder")
    rescore.add_argument("reports", type=Path, help="folder of reports written by `grade`")
    rescore.add_argument("--manual-scores", type=Path, required=True)
    return parser


def _collect(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        else:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    """The ``bayesglm-grade`` command; returns the exit status (0 ok, 2 usage or set-up error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in {"student", "grade", "key", "rescore", "-h", "--help"}:
        argv.insert(0, "grade")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "student":
            written, warnings = write_student_versions(args.solutions, args.out, strict=args.strict)
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
            print(f"wrote {len(written)} student notebook(s) to {args.out}")
            return 0
        if args.command == "key":
            config = load_config(args.solutions)
            path = args.key or config.key_path
            key, reports = build_key(config, args.assignment, key=load_key(path), force=args.force)
            path.write_text(json.dumps(key, indent=1))
            for r in reports:
                print(f"{r.assignment}: solution graded {r.score:g} / {r.max_score:g} "
                      f"(+{r.pending:g} by hand); recorded")
            print(f"key written to {path}")
            return 0
        if args.command == "rescore":
            rows = read_manual_scores(args.manual_scores)
            reports = [Report.from_dict(json.loads(p.read_text())) for p in sorted(args.reports.glob("*.json"))]
            for report in reports:
                write_report(apply_manual_scores(report, rows), args.reports)
            summary = write_summary_csv(reports, args.reports / "summary.csv")
            print(f"rescored {len(reports)} report(s); summary in {summary}")
            return 0
        # grade
        config = load_config(args.solutions)
        paths = _collect(args.submissions)
        if not paths:
            raise GradingError(f"no notebooks found in {', '.join(map(str, args.submissions))}")
        name = args.assignment or _infer_assignment(config, paths[0])
        if name is None:
            raise GradingError(f"cannot tell which assignment {paths[0].name} is: pass --assignment "
                               f"(one of {sorted(config.assignments)})")
        assignment = config.assignment(name)
        key = ensure_key(config, [name], args.key or config.key_path)
        rows = read_manual_scores(args.manual_scores) if args.manual_scores else []

        def progress(report: Report) -> None:
            print(f"{report.student}: {report.score:g} / {report.max_score:g}"
                  + (f" (+{report.pending:g} by hand)" if report.pending else ""), flush=True)

        reports = grade_submissions(paths, assignment, key=key, jobs=args.jobs, progress=progress,
                                    cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                                    check_timeout=args.check_timeout)
        for report in reports:
            write_report(apply_manual_scores(report, rows), args.out)
        summary = write_summary_csv(reports, args.out / "summary.csv")
        template = write_manual_template(reports, args.out / "manual_scores_template.csv")
        print(f"reports in {args.out}/ (summary: {summary.name}"
              + (f"; problems to grade by hand: {template.name})" if template else ")"))
        return 0
    except GradingError as err:
        print(f"bayesglm-grade: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
