"""Tests of bayesglm.grading: student versions, the statistical checks, and grading real notebooks.

Two layers. The checks' statistics (their false-alarm rates and their power against
planted mistakes) are tested *in this process*, by calling the kernel-side check on
hand-made namespaces: fast, so several seeds are affordable. Grading end to end (a
kernel per submission, time limits, reports) is tested on the reference notebooks and
on small synthetic submissions built with nbformat: each costs one kernel start-up.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from bayesglm import grading
from bayesglm.data import load_demographics, preprocess_covariates


def sample_pg_naive(b, c, trunc: int = 200):
    """The homework's truncated-series PG sampler, as students have it (torch's Gamma, global seed)."""
    b, c = torch.broadcast_tensors(torch.as_tensor(b), torch.as_tensor(c))
    g = torch.moveaxis(torch.distributions.Gamma(b + 1e-8, 1.0).sample((trunc,)), 0, -1)
    k = torch.arange(1, trunc + 1, dtype=b.dtype)
    return (g / ((k - 0.5) ** 2 + c[..., None] ** 2 / (4 * math.pi**2))).sum(-1) / (2 * math.pi**2)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "hw2_solutions"
CONFIG = grading.load_config(SOLUTIONS / "grading.toml")


def check(assignment: str, check_id: str) -> grading.Check:
    return next(c for c in CONFIG.assignment(assignment).checks if c.id == check_id)


def run_in_process(namespace: dict, chk: grading.Check, **overrides) -> dict:
    """The kernel-side check, run here on ``namespace`` (what the student's globals would be)."""
    return grading._evaluate_check(dict(namespace), {**chk.spec(), **overrides})


def notebook(*cells: str) -> nbformat.NotebookNode:
    """A notebook from sources; a source starting with 'md:' is a markdown cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbformat.v4.new_code_cell(c)
                for c in cells]
    return nb


def points(report: grading.Report) -> dict[str, float | None]:
    return {c.id: c.points for c in report.checks}


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def test_config_describes_every_solution_notebook():
    """Every assignment has checks, and every problem graded by hand has its heading in the *student* version."""
    assert "00_preprocessing" in CONFIG.assignments
    missing = [a.name for a in CONFIG.assignments.values() if not a.notebook.exists()]
    lost = []
    for assignment in CONFIG.assignments.values():
        if assignment.name in missing:
            continue
        assert assignment.checks and assignment.max_points > 0
        student, _ = grading.student_version(nbformat.read(assignment.notebook, as_version=4))
        lost += [f"{assignment.name}: {c.params['heading']}" for c in assignment.checks
                 if c.kind == "manual" and not grading._section(student.cells, c.params["heading"])]
    assert not lost, f"headings that the student versions lose (tagged 'solution' with the answer): {lost}"
    assert not missing, f"solution notebook(s) named in grading.toml are missing: {missing}"


def test_config_errors_say_what_is_wrong_and_where(tmp_path):
    bad = tmp_path / "grading.toml"
    bad.write_text('[assignments.a]\n[[assignments.a.checks]]\nid = "x"\nproblem = "1"\npoints = 1\n'
                   'kind = "equal"\nstudent = "y"\nreference = "z"\nrtoll = 1\n')
    with pytest.raises(grading.GradingError, match=r"unknown key\(s\) \['rtoll'\].*allowed"):
        grading.load_config(bad)
    bad.write_text('[assignments.a]\n[[assignments.a.checks]]\nid = "x"\nproblem = "1"\npoints = 1\nkind = "exact"\n')
    with pytest.raises(grading.GradingError, match="kind.*must be one of"):
        grading.load_config(bad)
    bad.write_text('[assignments.a]\n[[assignments.a.checks]]\nid = "x"\nproblem = "1"\npoints = 1\n'
                   'kind = "mvn_draws"\nstudent = "f()"\n')
    with pytest.raises(grading.GradingError, match=r"missing key\(s\) \['reference'\]"):
        grading.load_config(bad)
    bad.write_text('[assignments.a]\n[[assignments.a.checks]]\nid = "x"\nproblem = "1"\npoints = -1\n'
                   'kind = "expect"\nexpr = "True"\nmessage = "m"\n')
    with pytest.raises(grading.GradingError, match="points must be >= 0"):
        grading.load_config(bad)


# ---------------------------------------------------------------------------------------------
# Student versions
# ---------------------------------------------------------------------------------------------


def test_student_version_empties_answers_keeps_prompts_and_clears_outputs():
    solution = nbformat.read(SOLUTIONS / "00_preprocessing.ipynb", as_version=4)
    student, _ = grading.student_version(solution, assignment="00_preprocessing")
    assert len(student.cells) == len(solution.cells)
    for before, after in zip(solution.cells, student.cells):
        if grading.SOLUTION_TAG in before.metadata.get("tags", []):
            assert after.source in (grading.CODE_PLACEHOLDER, grading.MARKDOWN_PLACEHOLDER)
            assert grading.ANSWER_TAG in after.metadata["tags"]
        elif before is not solution.cells[0]:
            assert after.source == before.source  # prompts and provided code untouched
        if after.cell_type == "code":
            assert after.outputs == [] and after.execution_count is None
    assert student.cells[0].source.startswith(solution.cells[0].source.splitlines()[0])
    assert "Assignment version" in student.cells[0].source
    assert student.metadata["bayesglm"]["assignment"] == "00_preprocessing"
    assert any(grading.SOLUTION_TAG in c.metadata.get("tags", []) for c in solution.cells)  # input untouched


def test_solution_markers_remove_only_the_marked_lines():
    nb = notebook("class Model:\n    def f(self, x):\n        # BEGIN SOLUTION\n        return 2 * x\n"
                  "        # END SOLUTION\n\n    def g(self):\n        return 1")
    nb.cells[0].metadata["tags"] = ["solution"]
    student, _ = grading.student_version(nb)
    assert student.cells[0].source == ("class Model:\n    def f(self, x):\n        # YOUR CODE HERE\n\n"
                                       "    def g(self):\n        return 1")
    nb.cells[0].source = "# BEGIN SOLUTION\nx = 1"
    with pytest.raises(grading.GradingError, match="without END SOLUTION"):
        grading.student_version(nb)


def test_an_untagged_answer_is_reported_and_strict_mode_refuses(tmp_path):
    nb = notebook("md:# Title", "md:## Problem 1\nWhy?\n\n*Answer.* Because.", "x = 1")
    nb.cells[2].metadata["tags"] = ["solution"]
    folder = tmp_path / "solutions"
    folder.mkdir()
    nbformat.write(nb, folder / "01_x.ipynb")
    written, warnings = grading.write_student_versions(folder, tmp_path / "student")
    assert [p.name for p in written] == ["01_x.ipynb"]
    assert len(warnings) == 1 and "cell 2" in warnings[0] and "Problem 1" in warnings[0]
    with pytest.raises(grading.GradingError, match="reads like an answer"):
        grading.write_student_versions(folder, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_student_command_writes_a_version_of_every_solution(tmp_path, capsys):
    assert grading.main(["student", str(SOLUTIONS), "-o", str(tmp_path / "student")]) == 0
    names = sorted(p.name for p in (tmp_path / "student").glob("*.ipynb"))
    assert names == sorted(p.name for p in SOLUTIONS.glob("*.ipynb"))
    assert "wrote" in capsys.readouterr().out
    first = nbformat.read(tmp_path / "student" / "00_preprocessing.ipynb", as_version=4).cells[0].source
    assert "The grader reads: `covariates`, `responses`." in first


def test_graded_names_are_what_the_checks_read_from_the_student():
    assert grading.graded_names(CONFIG.assignment("02_binomial_glm")) == ["BinomialGLM", "glm_samples", "beta_hat",
                                                                          "residuals"]
    # names bound by the check itself (data, model, psi, comprehension variables) are not the student's
    assert "data" not in grading.graded_names(CONFIG.assignment("03_hierarchical_glm"))


def test_substitute_source_insists_that_every_pattern_applies():
    nb = notebook("samples = model.gibbs(num_iters=500)")
    assert grading.substitute_source(nb, {r"num_iters=\d+": "num_iters=5"}).cells[0].source.endswith("num_iters=5)")
    with pytest.raises(grading.GradingError, match="matches no code cell"):
        grading.substitute_source(nb, {r"seed=\d+": "seed=1"})


# ---------------------------------------------------------------------------------------------
# The checks' statistics, in process
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demographics():
    return load_demographics()


def wrong_one_hot(demo):
    """A design matrix with every level of ruralurban_cc kept (the planted mistake)."""
    design = preprocess_covariates(demo)
    first_level = (demo.sort_values("fips")["ruralurban_cc"] == 1).to_numpy(float)
    design.insert(15, "ruralurban_cc_1", first_level)
    return design


def test_design_matrix_check(demographics):
    chk = check("00_preprocessing", "0-covariates")
    right = preprocess_covariates(demographics)
    assert run_in_process({"covariates": right}, chk)["status"] == "pass"
    # the assignment's own recipe (pandas' sample sd, boolean dummies named 'ruralurban_cc_2.0'), in float32
    demo = demographics.sort_values("fips")
    names = [c for c in right.columns if c != "intercept" and not c.startswith("ruralurban")]
    scalars = demo[names].astype(np.float32)
    scalars = (scalars - scalars.mean()) / scalars.std(ddof=0)  # population sd: a 0.02% difference, not a mistake
    import pandas as pd

    theirs = pd.concat([scalars, pd.get_dummies(demo[["ruralurban_cc"]], columns=["ruralurban_cc"], drop_first=True)], axis=1)
    theirs.insert(0, "intercept", 1.0)
    assert run_in_process({"covariates": theirs}, chk)["status"] == "pass"
    result = run_in_process({"covariates": wrong_one_hot(demographics)}, chk)
    assert result["status"] == "fail"
    assert "24 columns where 23 are expected" in result["message"]
    shuffled = right.sample(frac=1.0, random_state=0)  # rows not sorted by FIPS
    result = run_in_process({"covariates": shuffled}, chk)
    assert result["status"] == "fail" and "differ from the reference" in result["message"]
    result = run_in_process({}, chk)
    assert result["status"] == "fail" and "`covariates` is not defined" in result["message"]


class StudentGLM:
    """A correct student's BinomialGLM, written the way the assignment suggests (any dtype)."""

    def __init__(self, prior_mean, prior_cov):
        self.prior_mean, self.prior_cov = prior_mean, prior_cov

    def log_prob(self, y, N, X, beta):
        prior = torch.distributions.MultivariateNormal(self.prior_mean, self.prior_cov).log_prob(beta)
        return prior + torch.distributions.Binomial(N, logits=X @ beta).log_prob(y).sum()

    def _kappa(self, y, N):
        return y - N / 2

    def _precision(self, X, omegas):
        return torch.linalg.inv(self.prior_cov) + X.T @ (omegas[:, None] * X)

    def _gibbs_update_beta(self, y, N, X, omegas):
        J = self._precision(X, omegas)
        h = torch.linalg.solve(self.prior_cov, self.prior_mean) + X.T @ self._kappa(y, N)
        return torch.distributions.MultivariateNormal(torch.linalg.solve(J, h), precision_matrix=J).sample()

    def _gibbs_update_omegas(self, N, X, betas):
        return sample_pg_naive(N, X @ betas)  # the assignment's truncated series


class Float32Only(StudentGLM):
    """Works in single precision only, like code that calls .float() on everything."""

    def _gibbs_update_beta(self, y, N, X, omegas):
        if X.dtype != torch.float32:
            raise RuntimeError("expected scalar type Float but found Double")
        return super()._gibbs_update_beta(y, N, X, omegas)


class KappaSign(StudentGLM):
    def _kappa(self, y, N):
        return N / 2 - y


class NoPrior(StudentGLM):
    def _gibbs_update_beta(self, y, N, X, omegas):
        J = X.T @ (omegas[:, None] * X)
        h = X.T @ (y - N / 2)
        return torch.distributions.MultivariateNormal(torch.linalg.solve(J, h), precision_matrix=J).sample()


class PrecisionAsCovariance(StudentGLM):
    def _gibbs_update_beta(self, y, N, X, omegas):
        J = self._precision(X, omegas)
        h = torch.linalg.solve(self.prior_cov, self.prior_mean) + X.T @ (y - N / 2)
        return torch.distributions.MultivariateNormal(torch.linalg.solve(J, h), covariance_matrix=J).sample()


class MeanInsteadOfDraw(StudentGLM):
    def _gibbs_update_beta(self, y, N, X, omegas):
        J = self._precision(X, omegas)
        return torch.linalg.solve(J, torch.linalg.solve(self.prior_cov, self.prior_mean) + X.T @ (y - N / 2))


class NegativeTilt(StudentGLM):
    """Tilt -psi: PG(b, c) = PG(b, -c), so this is *not* a mistake."""

    def _gibbs_update_omegas(self, N, X, betas):
        return sample_pg_naive(N, -(X @ betas))


class ShapeOne(StudentGLM):
    def _gibbs_update_omegas(self, N, X, betas):
        return sample_pg_naive(torch.ones_like(N), X @ betas)


class HalfTilt(StudentGLM):
    def _gibbs_update_omegas(self, N, X, betas):
        return sample_pg_naive(N, X @ betas / 2)


class OmegaMean(StudentGLM):
    def _gibbs_update_omegas(self, N, X, betas):
        from bayesglm.polyagamma import pg_mean

        return pg_mean(N, X @ betas)


class NoPriorInLogProb(StudentGLM):
    def log_prob(self, y, N, X, beta):
        return torch.distributions.Binomial(N, logits=X @ beta).log_prob(y).sum()


class NoConstants(StudentGLM):
    """Leaves out every term that does not depend on beta: fine for a log density up to a constant."""

    def log_prob(self, y, N, X, beta):
        psi = X @ beta
        quad = (beta - self.prior_mean) @ torch.linalg.solve(self.prior_cov, beta - self.prior_mean)
        return -0.5 * quad + (y * psi - N * torch.nn.functional.softplus(psi)).sum()


SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_correct_conditionals_pass_whatever_the_seed(seed):
    """A correct sampler passes with any seed (each check's false-alarm rate is alpha = 0.001)."""
    for cls in (StudentGLM, Float32Only):
        for check_id in ("1d-beta-update", "1d-omega-update", "1d-log_prob"):
            result = run_in_process({"BinomialGLM": cls}, check("02_binomial_glm", check_id), seed=seed)
            assert result["status"] == "pass", (cls.__name__, check_id, result["message"])
    result = run_in_process({"BinomialGLM": Float32Only}, check("02_binomial_glm", "1d-beta-update"), seed=seed)
    assert "float32 inputs" in result["message"]


@pytest.mark.parametrize(
    "cls, check_id, words",
    [
        (KappaSign, "1d-beta-update", "do not have the right mean"),
        (NoPrior, "1d-beta-update", "do not have the right mean"),
        (PrecisionAsCovariance, "1d-beta-update", "wrong spread"),
        (MeanInsteadOfDraw, "1d-beta-update", "same value on every call (the conditional mean)"),
        (ShapeOne, "1d-omega-update", "neither the right mean nor the right variance"),
        (HalfTilt, "1d-omega-update", "neither the right mean nor the right variance"),
        (OmegaMean, "1d-omega-update", "same value on every call"),
        (NoPriorInLogProb, "1d-log_prob", "differ from the reference"),
    ],
)
def test_planted_mistakes_in_the_conditionals_fail(cls, check_id, words):
    for seed in SEEDS[:2]:
        result = run_in_process({"BinomialGLM": cls}, check("02_binomial_glm", check_id), seed=seed)
        assert result["status"] == "fail" and words in result["message"], result["message"]


def test_what_is_not_a_mistake_passes():
    """A negative PG tilt (PG is symmetric in c) and a log density without its constants are right."""
    result = run_in_process({"BinomialGLM": NegativeTilt}, check("02_binomial_glm", "1d-omega-update"))
    assert result["status"] == "pass", result["message"]
    result = run_in_process({"BinomialGLM": NoConstants}, check("02_binomial_glm", "1d-log_prob"))
    assert result["status"] == "pass", result["message"]


def test_using_the_reference_implementation_is_flagged_not_penalized():
    from bayesglm.glm import BinomialGLM

    result = run_in_process({"BinomialGLM": BinomialGLM}, check("02_binomial_glm", "1d-log_prob"))
    assert result["status"] == "pass"
    assert result["flags"] and "reference implementation" in result["flags"][0]
    assert not run_in_process({"BinomialGLM": StudentGLM}, check("02_binomial_glm", "1d-log_prob"))["flags"]



class StudentHierarchical:
    """A correct student's hierarchical GLM that reads nu as a *variance* (the other convention)."""

    def __init__(self, num_states, prior_mean, prior_cov, dispersion):
        self.num_states, self.prior_mean, self.prior_cov, self.dispersion = num_states, prior_mean, prior_cov, dispersion

    def log_prob(self, s, y, N, X, local_betas, global_beta):
        lp = torch.distributions.MultivariateNormal(self.prior_mean, self.prior_cov).log_prob(global_beta)
        lp = lp + torch.distributions.Normal(global_beta, self.dispersion**0.5).log_prob(local_betas).sum()
        return lp + torch.distributions.Binomial(N, logits=(X * local_betas[s]).sum(-1)).log_prob(y).sum()

    def _prior_term(self, global_beta):
        return global_beta / self.dispersion

    def _gibbs_update_local_betas(self, s, y, N, X, omegas, global_beta):
        p = X.shape[1]
        draws = []
        for state in range(self.num_states):  # a loop over states: slow but right
            rows = s == state
            J = torch.eye(p, dtype=X.dtype) / self.dispersion + X[rows].T @ (omegas[rows, None] * X[rows])
            h = self._prior_term(global_beta) + X[rows].T @ (y[rows] - N[rows] / 2)
            draws.append(torch.distributions.MultivariateNormal(torch.linalg.solve(J, h), precision_matrix=J).sample())
        return torch.stack(draws)

    def _gibbs_update_global_beta(self, local_betas):
        p = local_betas.shape[1]
        prior_precision = torch.linalg.inv(self.prior_cov)
        J = prior_precision + self.num_states / self.dispersion * torch.eye(p, dtype=local_betas.dtype)
        h = prior_precision @ self.prior_mean + local_betas.sum(0) / self.dispersion
        return torch.distributions.MultivariateNormal(torch.linalg.solve(J, h), precision_matrix=J).sample()

    def _gibbs_update_omegas(self, s, N, X, local_betas):
        return sample_pg_naive(N, (X * local_betas[s]).sum(-1))


class ForgetsGlobalBeta(StudentHierarchical):
    def _prior_term(self, global_beta):
        return torch.zeros_like(global_beta)


class GlobalTiltForOmegas(StudentHierarchical):
    def _gibbs_update_omegas(self, s, N, X, local_betas):
        return sample_pg_naive(N, X @ local_betas.mean(0))


HIERARCHICAL_CHECKS = ["3e-log_prob", "3e-local-update", "3e-global-update", "3e-omega-update"]


def test_hierarchical_checks_accept_both_readings_of_nu():
    from bayesglm.hierarchical import HierarchicalBinomialGLM

    for cls, reading in ((HierarchicalBinomialGLM, "standard deviation"), (StudentHierarchical, "variance")):
        for check_id in HIERARCHICAL_CHECKS:  # 400 draws instead of 1000: the tests' error rates do not change
            result = run_in_process({"HierarchicalBinomialGLM": cls}, check("03_hierarchical_glm", check_id), num_draws=400)
            assert result["status"] == "pass", (cls.__name__, check_id, result["message"])
            if check_id != "3e-omega-update":
                assert f"nu read as a {reading}" in result["message"]


def test_hierarchical_planted_mistakes_fail():
    result = run_in_process({"HierarchicalBinomialGLM": ForgetsGlobalBeta}, check("03_hierarchical_glm", "3e-local-update"),
                            num_draws=400)
    assert result["status"] == "fail" and "nu read as a variance" in result["message"]
    assert "do not have the right mean" in result["message"]
    result = run_in_process({"HierarchicalBinomialGLM": GlobalTiltForOmegas}, check("03_hierarchical_glm", "3e-omega-update"),
                            num_draws=400)
    assert result["status"] == "fail"
    result = run_in_process({}, check("03_hierarchical_glm", "3e-global-update"))
    assert result["status"] == "fail" and "`HierarchicalBinomialGLM` is not defined" in result["message"]



def test_residual_check_accepts_single_precision_and_catches_wrong_formulas():
    import bayesglm

    data = bayesglm.load_year(2016, dtype=torch.float32)
    beta_hat = torch.linalg.lstsq(data.X.double(), torch.logit(data.y.double() / data.N.double())).solution.float()
    p = torch.sigmoid(data.X @ beta_hat)
    mu = data.N * p
    half = torch.xlogy(data.y, data.y / mu) + torch.xlogy(data.N - data.y, (data.N - data.y) / (data.N - mu))
    chk = check("02_binomial_glm", "2a-residuals")
    for name, residuals, verdict in [
        ("float32", torch.sign(data.y - mu) * torch.sqrt(2 * half), "pass"),
        ("no factor 2", torch.sign(data.y - mu) * torch.sqrt(half), "fail"),
        ("wrong sign", torch.sign(mu - data.y) * torch.sqrt(2 * half), "fail"),
    ]:
        result = run_in_process({"beta_hat": beta_hat, "residuals": residuals}, chk)
        assert result["status"] == verdict, (name, result["message"])

# ---------------------------------------------------------------------------------------------
# Posterior checks: Monte Carlo tolerances
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_glm():
    """A GLM with large counts (a posterior sd ~0.01, like the county data) and the reference's summary."""
    from bayesglm.glm import BinomialGLM

    data = grading.synthetic_glm(60, 3, seed=5, max_trials=20000)
    model = BinomialGLM(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    reference = model.gibbs(data.y, data.N, data.X, torch.zeros(3), 400, num_chains=4, generator=g, progress=False)
    summary = grading._posterior_summary(reference["betas"].numpy(), 1, 20, "reference")
    return data, model, summary


def posterior_result(samples, summary, *, estimate=None, **overrides):
    spec = {**check("02_binomial_glm", "1e-posterior-mean").spec(), **overrides,
            "reference_summaries": {"summaries": {"": summary}, "names": None}}
    namespace = {"glm_samples": samples}
    if estimate is not None:
        namespace["beta_hat"] = estimate
    else:
        spec.pop("estimate", None)
    return grading._evaluate_check(namespace, spec)


def test_posterior_check_passes_correct_runs_with_any_seed(large_glm):
    """100 iterations, the first 20 discarded, as in the assignment: five seeds, all pass."""
    data, model, summary = large_glm
    for seed in range(1, 6):
        g = torch.Generator().manual_seed(seed)
        samples = model.gibbs(data.y, data.N, data.X, torch.zeros(3), 100, generator=g, progress=False)
        estimate = samples["betas"][20:].mean(0)
        result = posterior_result(samples, summary, estimate=estimate)
        assert result["status"] == "pass", (seed, result["message"])
        # the same run, estimated by the grader from the draws (no `estimate` named)
        assert posterior_result(samples, summary)["status"] == "pass"
        ratio = np.max(np.abs(np.array(result["details"]["estimate"]) - summary["mean"]) / result["details"]["limit"])
        assert ratio < 0.8  # not a near miss: correct runs stay well inside the limit


def test_posterior_check_catches_a_missing_burn_in_and_a_wrong_sampler(large_glm):
    data, model, summary = large_glm
    g = torch.Generator().manual_seed(7)
    samples = model.gibbs(data.y, data.N, data.X, torch.zeros(3), 100, generator=g, progress=False)
    result = posterior_result(samples, summary, estimate=samples["betas"].mean(0))  # burn-in kept
    assert result["status"] == "fail" and "no burn-in" in result["message"]

    class Wrong(type(model)):  # kappa with the wrong sign inside the chain
        def _sample_beta(self, X, Xt_kappa, omegas, generator):
            return super()._sample_beta(X, -Xt_kappa, omegas, generator)

    wrong = Wrong(model.prior_mean, model.prior_cov)
    samples = wrong.gibbs(data.y, data.N, data.X, torch.zeros(3), 100, generator=g, progress=False)
    result = posterior_result(samples, summary, estimate=samples["betas"][20:].mean(0))
    assert result["status"] == "fail" and "differs from the reference in 3 of 3" in result["message"]


def test_posterior_check_reports_unusable_draws(large_glm):
    _, _, summary = large_glm
    result = posterior_result({"betas": torch.zeros(15, 3)}, summary)
    assert result["status"] == "fail" and "only 0 remain" in result["message"]
    result = posterior_result({"betas": torch.zeros(101, 4)}, summary, estimate=torch.zeros(4))
    assert result["status"] == "fail" and "shape (4,)" in result["message"]
    result = posterior_result({"lp": torch.zeros(101)}, summary)
    assert result["status"] == "fail" and "KeyError" in result["message"]
    spec = {**check("02_binomial_glm", "1e-posterior-mean").spec()}  # no key: the instructor must build one
    result = grading._evaluate_check({"glm_samples": {"betas": torch.zeros(101, 3)}, "beta_hat": torch.zeros(3)}, spec)
    assert result["status"] == "error" and "bayesglm-grade key" in result["message"]


def test_posterior_check_of_win_probabilities_handles_certain_outcomes():
    """0/1 draws: a probability of exactly 0 or 1 still has a Monte Carlo error of order 1/n."""
    chk = check("04_needle", "4b-win-probability")
    p = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    reference = grading._posterior_summary(torch.bernoulli(p.expand(1200, 5), generator=g).numpy(), 1, 0, "ref",
                                           binary=True)
    key = {"summaries": {"": reference}, "names": None}
    for seed in range(1, 6):
        g = torch.Generator().manual_seed(seed)
        wins = torch.bernoulli(p.expand(100, 5), generator=g).T.bool()  # (stamps, draws), as the homework has it
        result = grading._evaluate_check({"dem_wins": wins}, {**chk.spec(), "reference_summaries": key})
        assert result["status"] == "pass", result["message"]
    wrong = torch.bernoulli(torch.tensor([0.0, 0.2, 0.8, 0.9, 1.0]).expand(100, 5), generator=g).T.bool()
    result = grading._evaluate_check({"dem_wins": wrong}, {**chk.spec(), "reference_summaries": key})
    assert result["status"] == "fail" and "coordinate 2" in result["message"]
    result = grading._evaluate_check({"dem_wins": wins.double() * 2}, {**chk.spec(), "reference_summaries": key})
    assert result["status"] == "fail" and "0/1" in result["message"]

# ---------------------------------------------------------------------------------------------
# Grading notebooks end to end (one kernel per submission)
# ---------------------------------------------------------------------------------------------

PREPROCESSING = CONFIG.assignment("00_preprocessing")
AUTOMATIC_00 = {c.id: c.points for c in PREPROCESSING.checks if c.kind != "manual"}
DEFINE_COVARIATES = ("from bayesglm.data import load_demographics, preprocess_covariates\n"
                     "covariates = preprocess_covariates(load_demographics())")
DEFINE_RESPONSES = ("from bayesglm.data import extract_responses, load_votes\n"
                    "responses, state_names = extract_responses(load_votes(), 2016)")


def test_the_preprocessing_solution_gets_full_marks():
    report = grading.grade_notebook(SOLUTIONS / "00_preprocessing.ipynb", PREPROCESSING)
    automatic = {c.id: c.points for c in report.checks if c.status != "pending"}
    assert automatic == AUTOMATIC_00, report.to_markdown()
    pending = [c for c in report.checks if c.status == "pending"]
    assert {c.id for c in pending} == {"0a", "0b", "0c"}
    assert all(c.details["answer"] for c in pending)  # the answers were found for the instructor
    assert report.notebook["cells_run"] == report.notebook["code_cells"]
    assert not [i for i in report.notebook["issues"] if i["kind"] != "skipped"]  # only the Colab %pip line


def test_a_notebook_that_loops_forever_or_eats_memory_is_stopped_and_the_rest_still_graded():
    import dataclasses

    limited = dataclasses.replace(PREPROCESSING, memory_limit_mb=3000)
    nb = notebook("while True:\n    pass", "import numpy as np\nbig = np.ones(10**9)  # 8 GB", DEFINE_COVARIATES,
                  DEFINE_RESPONSES)
    report = grading.grade_notebook(nb, limited, cell_timeout=5)
    assert points(report)["0-covariates"] == 2
    timeout, memory = report.notebook["issues"]
    assert timeout["cell"] == 1 and timeout["kind"] == "timeout" and "stopped after 5 s" in timeout["message"]
    assert memory["cell"] == 2 and "MemoryError" in memory["message"]
    assert "stopped after 5 s" in report.to_markdown()


def test_a_notebook_that_ignores_interrupts_or_kills_its_kernel_gets_a_report(monkeypatch):
    monkeypatch.setattr(grading, "INTERRUPT_GRACE_S", 2.0)
    stubborn = notebook("import time\nwhile True:\n    try:\n        time.sleep(5)\n    except KeyboardInterrupt:\n        pass",
                        DEFINE_COVARIATES, DEFINE_RESPONSES)
    report = grading.grade_notebook(stubborn, PREPROCESSING, cell_timeout=2)
    assert report.score == 0 and report.notebook["cells_run"] == 0
    assert report.notebook["issues"][0]["kind"] == "kernel_died"
    check_result = next(c for c in report.checks if c.id == "0-covariates")
    assert check_result.status == "fail" and "code cell 1" in check_result.message
    assert "kernel was stopped" in check_result.message

    exits = notebook(DEFINE_COVARIATES, "import os\nos._exit(3)")
    report = grading.grade_notebook(exits, PREPROCESSING)
    assert report.score == 0
    assert report.notebook["issues"][0]["kind"] == "kernel_died"
    assert "called exit()" in next(c for c in report.checks if c.id == "0-covariates").message


def test_empty_and_unreadable_submissions_are_graded_zero(tmp_path):
    report = grading.grade_notebook(nbformat.v4.new_notebook(), PREPROCESSING, student="empty")
    assert report.score == 0 and report.pending == 0
    assert all(c.status == "fail" for c in report.checks)
    assert "no code" in report.to_markdown()
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("this is not a notebook")
    report = grading.grade_notebook(garbage, PREPROCESSING)
    assert report.student == "garbage" and report.score == 0
    assert "could not be read" in report.to_markdown()


def test_grading_a_class_from_the_command_line(tmp_path, demographics, capsys):
    """Three submissions (one raises and answers by hand, one has a wrong one-hot encoding, one answers nothing),
    two kernels at once."""
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    student, _ = grading.student_version(nbformat.read(SOLUTIONS / "00_preprocessing.ipynb", as_version=4))
    first_prompt = next(c.source for c in student.cells if c.cell_type == "markdown" and "Problem 0a" in c.source)
    raises = notebook("md:# My homework", "raise ValueError('oops')", DEFINE_COVARIATES, DEFINE_RESPONSES,
                      "md:" + first_prompt, "md:Because the indicators would add up to the intercept column.",
                      "md:## Problem 0b", "md:" + grading.MARKDOWN_PLACEHOLDER)
    nbformat.write(raises, submissions / "alice.ipynb")
    one_hot = notebook(DEFINE_COVARIATES + "\nlevel_1 = (load_demographics().sort_values('fips').ruralurban_cc == 1)\n"
                       "covariates.insert(15, 'ruralurban_cc_1', level_1.to_numpy(float))", DEFINE_RESPONSES)
    nbformat.write(one_hot, submissions / "bob.ipynb")
    nbformat.write(notebook("import torch\nx = torch.zeros(3)"), submissions / "carol.ipynb")  # answers nothing
    out = tmp_path / "reports"
    status = grading.main(["grade", str(submissions), "-a", "00_preprocessing", "-s", str(SOLUTIONS),
                           "-o", str(out), "-j", "2"])
    assert status == 0
    alice = json.loads((out / "alice.json").read_text())
    bob = json.loads((out / "bob.json").read_text())
    by_id = {c["id"]: c for c in alice["checks"]}
    assert by_id["0-covariates"]["points"] == 2
    assert by_id["0a"]["status"] == "pending" and "add up to the intercept" in by_id["0a"]["details"]["answer"]
    assert by_id["0b"]["status"] == "fail" and "no answer" in by_id["0b"]["message"]  # only the placeholder
    assert by_id["0c"]["status"] == "fail" and "not found" in by_id["0c"]["message"]
    assert alice["notebook"]["issues"][0] == {"cell": 1, "kind": "error",
                                              "message": "raised ValueError: oops (in `raise ValueError('oops')`)"}
    # the planted mistake costs exactly the points of its check
    assert {c["id"]: c["points"] for c in bob["checks"] if c["status"] != "pending"} == {
        **AUTOMATIC_00, "0-covariates": 0.0, "0a": 0.0, "0b": 0.0, "0c": 0.0}
    assert "24 columns where 23 are expected" in (out / "bob.md").read_text()
    carol = json.loads((out / "carol.json").read_text())
    assert carol["score"] == 0 and carol["notebook"]["cells_run"] == 1
    assert "`covariates` is not defined" in next(c for c in carol["checks"] if c["id"] == "0-covariates")["message"]
    with open(out / "summary.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert rows["alice"]["score"] == "2" and rows["bob"]["score"] == "0" and rows["alice"]["pending_points"] == "2"
    assert rows["alice"]["cells_with_errors"] == "1" and rows["carol"]["score"] == "0"
    template = (out / "manual_scores_template.csv").read_text().splitlines()
    assert template == ["student,check,max_points,points,comment", "alice,0a,2,,"]
    scores = tmp_path / "scores.csv"
    scores.write_text("student,check,points,comment\nalice,0a,1.5,right idea; say why the columns are dependent\n"
                      "bob,0-covariates,1,partial credit after review\n")
    assert grading.main(["rescore", str(out), "--manual-scores", str(scores)]) == 0
    assert "right idea" in (out / "alice.md").read_text()
    with open(out / "summary.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert rows["alice"]["score"] == "3.5" and rows["bob"]["score"] == "1"
    assert "points set by the instructor" in (out / "bob.md").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("student,check,points\nalice,0a,5\n")
    assert grading.main(["rescore", str(out), "--manual-scores", str(bad)]) == 2
    assert "outside [0, 2]" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The binomial GLM: the solution (reduced), and synthetic students graded against its key
# ---------------------------------------------------------------------------------------------

GLM = CONFIG.assignment("02_binomial_glm")
# The documented way to grade a shorter version of a solution: regular-expression
# substitutions on its code (grading.substitute_source). 120 iterations instead of 500,
# and 30 iterations of the truncated sampler instead of 100, keep the test near a minute.
# What both synthetic students write first: the data, and the homework's truncated PG sampler.
STUDENT_PREAMBLE = '''
import torch
from torch.distributions import Gamma, MultivariateNormal
from bayesglm.data import extract_responses, load_demographics, load_votes, preprocess_covariates

covariates = preprocess_covariates(load_demographics())
responses, state_names = extract_responses(load_votes(), 2016)

def sample_pg(b, c, trunc=200):  # the homework's truncated series
    b, c = torch.broadcast_tensors(b.float(), c.float())
    g = torch.moveaxis(Gamma(b + 1e-8, 1.0).sample((trunc,)), 0, -1)
    k = torch.arange(trunc) + 1
    return (g / ((k - 0.5) ** 2 + c[..., None] ** 2 / (4 * torch.pi ** 2))).sum(-1) / (2 * torch.pi ** 2)
'''

REDUCED_02 = {r"num_chains, num_iters = 4, \d+": "num_chains, num_iters = 4, 120",
              r"(glm_naive\.gibbs\(y, N, X, glm_samples\[\"betas\"\]\[:, -1\], )\d+": r"\g<1>30"}

STUDENT_02 = STUDENT_PREAMBLE + '''
class BinomialGLM:
    def __init__(self, prior_mean, prior_cov):
        self.prior_mean, self.prior_cov = prior_mean, prior_cov

    def log_prob(self, y, N, X, beta):
        lp = MultivariateNormal(self.prior_mean, self.prior_cov).log_prob(beta)
        return lp + torch.distributions.Binomial(N, logits=X @ beta).log_prob(y).sum()

    def _gibbs_update_beta(self, y, N, X, omegas):
        J = torch.linalg.inv(self.prior_cov) + X.T @ (omegas[:, None] * X)
        h = torch.linalg.solve(self.prior_cov, self.prior_mean) + X.T @ (y - N / 2)
        cov = torch.linalg.inv(J)
        cov = (cov + cov.T) / 2  # exactly symmetric in single precision
        return MultivariateNormal(cov @ h, covariance_matrix=cov).sample()

    def _gibbs_update_omegas(self, N, X, betas):
        return sample_pg(N, TILT_SIGN * (X @ betas))

    def gibbs(self, y, N, X, init_beta, num_iters):
        betas, samples = init_beta, [dict(betas=init_beta)]
        for _ in range(num_iters):
            betas = self._gibbs_update_beta(y, N, X, self._gibbs_update_omegas(N, X, betas))
            samples.append(dict(betas=betas))
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

torch.manual_seed(SEED)
y = torch.tensor(responses.y.values).float()
N = torch.tensor(responses.N.values).float()
X = torch.tensor(covariates.values.astype(float)).float()
glm = BinomialGLM(torch.zeros(X.shape[1]), torch.eye(X.shape[1]))
glm_samples = glm.gibbs(y, N, X, init_beta=torch.zeros(X.shape[1]), num_iters=100)
beta_hat = glm_samples["betas"][BURN_IN:].mean(0)
p = torch.sigmoid(X @ beta_hat)
residuals = torch.sign(y - N * p) * torch.sqrt(2 * (torch.xlogy(y, y / (N * p)) + torch.xlogy(N - y, (N - y) / (N * (1 - p)))))
'''


@pytest.fixture(scope="module")
def glm_key():
    """The key recorded from the reduced solution; the solution's own grade comes with it."""
    assert GLM.notebook.exists(), "02_binomial_glm.ipynb is missing"
    solution = grading.substitute_source(nbformat.read(GLM.notebook, as_version=4), REDUCED_02)
    key, (report,) = grading.build_key(CONFIG, ["02_binomial_glm"], notebooks={"02_binomial_glm": solution})
    return key, report


def test_the_glm_solution_gets_full_marks(glm_key):
    key, report = glm_key  # build_key raises unless the solution passes every automatic check
    assert report.score == GLM.max_points - report.pending
    assert {c.id for c in report.checks if c.status == "pending"} == {c.id for c in GLM.checks if c.kind == "manual"}
    summaries = key["assignments"]["02_binomial_glm"]["checks"]["1e-posterior-mean"]["summaries"]
    assert len(summaries) == 2 and key["assignments"]["02_binomial_glm"]["checks"]["1e-posterior-mean"]["names"][0] == "intercept"
    assert any("reference implementation" in flag for c in report.checks for flag in c.flags)


def test_glm_students_with_another_seed_pass_and_a_missing_burn_in_costs_exactly_its_points(glm_key, tmp_path):
    """Seed 1, the homework's truncated sampler, float32 and a *negative* PG tilt (PG(b, c) = PG(b, -c):
    not a mistake): full marks. Seed 2 without a burn-in: loses the posterior check's points, nothing else."""
    key, _ = glm_key
    right = notebook(STUDENT_02.replace("SEED", "1").replace("TILT_SIGN", "-1").replace("BURN_IN", "20"))
    no_burn_in = notebook(STUDENT_02.replace("SEED", "2").replace("TILT_SIGN", "1").replace("BURN_IN", "0"))
    for name, nb in (("right", right), ("no_burn_in", no_burn_in)):
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    reports = grading.grade_submissions([tmp_path / "right.ipynb", tmp_path / "no_burn_in.ipynb"], GLM, key=key, jobs=2)
    automatic = {c.id: c.points for c in GLM.checks if c.kind != "manual"}
    for report in reports:
        assert not report.notebook["issues"], report.notebook["issues"]
    right_report, no_burn_in_report = reports
    assert {k: v for k, v in points(right_report).items() if k in automatic} == automatic, right_report.to_markdown()
    posterior = next(c for c in right_report.checks if c.id == "1e-posterior-mean")
    assert "200-term" in posterior.message  # matched the solution's run of the same truncated sampler
    lost = {k: automatic[k] - v for k, v in points(no_burn_in_report).items() if k in automatic and v != automatic[k]}
    assert lost == {"1e-posterior-mean": 3.0}, no_burn_in_report.to_markdown()
    assert "intercept" in next(c for c in no_burn_in_report.checks if c.id == "1e-posterior-mean").message


# ---------------------------------------------------------------------------------------------
# The hierarchical GLM: the solution (reduced), and a synthetic student against its key
# ---------------------------------------------------------------------------------------------

HIERARCHICAL = CONFIG.assignment("03_hierarchical_glm")
REDUCED_03 = {r"num_chains, num_iters = 4, \d+": "num_chains, num_iters = 4, 200"}

STUDENT_03 = STUDENT_PREAMBLE + '''
def gaussian(J, h):
    cov = torch.linalg.inv(J)
    cov = (cov + cov.T) / 2
    return MultivariateNormal(cov @ h, covariance_matrix=cov).sample()

class HierarchicalBinomialGLM:
    def __init__(self, num_states, prior_mean, prior_cov, dispersion):
        self.num_states, self.prior_mean, self.prior_cov, self.dispersion = num_states, prior_mean, prior_cov, dispersion

    def log_prob(self, s, y, N, X, local_betas, global_beta):
        lp = MultivariateNormal(self.prior_mean, self.prior_cov).log_prob(global_beta)
        lp = lp + torch.distributions.Normal(global_beta, self.dispersion).log_prob(local_betas).sum()
        return lp + torch.distributions.Binomial(N, logits=(X * local_betas[s]).sum(-1)).log_prob(y).sum()

    def _gibbs_update_global_beta(self, local_betas):
        p = local_betas.shape[1]
        J = torch.linalg.inv(self.prior_cov) + self.num_states / self.dispersion ** 2 * torch.eye(p)
        h = torch.linalg.solve(self.prior_cov, self.prior_mean) + local_betas.sum(0) / self.dispersion ** 2
        return gaussian(J, h)

    def _gibbs_update_local_betas(self, s, y, N, X, omegas, global_beta):
        p = X.shape[1]
        out = []
        for k in range(self.num_states):
            rows = s == k
            J = torch.eye(p) / self.dispersion ** 2 + X[rows].T @ (omegas[rows, None] * X[rows])
            h = global_beta / self.dispersion ** 2 + X[rows].T @ (y[rows] - N[rows] / 2)
            out.append(gaussian(J, h))
        return torch.stack(out)

    def _gibbs_update_omegas(self, s, N, X, local_betas):
        return sample_pg(N, (X * local_betas[s]).sum(-1))

    def gibbs(self, s, y, N, X, init_beta, num_iters):
        global_beta = init_beta
        local_betas = global_beta[None].repeat(self.num_states, 1)
        samples = [dict(global_beta=global_beta, local_betas=local_betas)]
        for _ in range(num_iters):
            omegas = self._gibbs_update_omegas(s, N, X, local_betas)
            local_betas = self._gibbs_update_local_betas(s, y, N, X, omegas, global_beta)
            global_beta = self._gibbs_update_global_beta(local_betas)
            samples.append(dict(global_beta=global_beta, local_betas=local_betas))
        return {k: torch.stack([x[k] for x in samples]) for k in samples[0]}

torch.manual_seed(3)
s = torch.tensor(responses.s.values).long()
y = torch.tensor(responses.y.values).float()
N = torch.tensor(responses.N.values).float()
X = torch.tensor(covariates.values.astype(float)).float()
p = X.shape[1]
hglm = HierarchicalBinomialGLM(50, torch.zeros(p), torch.eye(p), 0.1)
hglm_samples = hglm.gibbs(s, y, N, X, init_beta=torch.zeros(p), num_iters=100)
local_hat = hglm_samples["local_betas"][20:].mean(0)
p_hglm = torch.sigmoid((X * local_hat[s]).sum(-1))
mu = N * p_hglm
residuals_hglm = torch.sign(y - mu) * torch.sqrt(2 * (torch.xlogy(y, y / mu) + torch.xlogy(N - y, (N - y) / (N - mu))))
'''


def test_the_hierarchical_solution_gets_full_marks_and_a_student_with_another_seed_too():
    assert HIERARCHICAL.notebook.exists(), "03_hierarchical_glm.ipynb is missing"
    solution = grading.substitute_source(nbformat.read(HIERARCHICAL.notebook, as_version=4), REDUCED_03)
    key, (report,) = grading.build_key(CONFIG, ["03_hierarchical_glm"], notebooks={"03_hierarchical_glm": solution})
    assert report.score == HIERARCHICAL.max_points - report.pending
    automatic = {c.id: c.points for c in HIERARCHICAL.checks if c.kind != "manual"}
    student = grading.grade_notebook(notebook(STUDENT_03), HIERARCHICAL, key=key)
    assert not student.notebook["issues"], student.notebook["issues"]
    assert {k: v for k, v in points(student).items() if k in automatic} == automatic, student.to_markdown()


def test_the_grading_chapter_quotes_the_checks_as_they_are():
    """The example check printed in chapters/grading.md is the one in grading.toml."""
    import re
    import tomllib

    text = (ROOT / "chapters" / "grading.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    assert blocks
    real = tomllib.loads((SOLUTIONS / "grading.toml").read_text())["assignments"]
    for block in blocks:
        for name, table in tomllib.loads(block)["assignments"].items():
            for quoted in table["checks"]:
                actual = next(c for c in real[name]["checks"] if c["id"] == quoted["id"])
                assert quoted == actual, quoted["id"]


def test_the_needle_solution_gets_full_marks_and_another_seed_matches_it():
    needle = CONFIG.assignment("04_needle")
    assert needle.notebook.exists(), "04_needle.ipynb is missing"
    reduced = {r"num_chains, num_iters, burn = 4, \d+, \d+": "num_chains, num_iters, burn = 2, 60, 20",
               r"num_iters=\d+, burn=\d+, num_chains=2": "num_iters=60, burn=20, num_chains=2"}
    solution = grading.substitute_source(nbformat.read(needle.notebook, as_version=4), reduced)
    key, (report,) = grading.build_key(CONFIG, ["04_needle"], notebooks={"04_needle": solution})
    assert report.score == needle.max_points - report.pending
    other_seed = grading.substitute_source(solution, {r"setup\(seed=\d+\)": "setup(seed=12345)"})
    report = grading.grade_notebook(other_seed, needle, key=key)
    assert report.score == needle.max_points - report.pending, report.to_markdown()


def test_an_assignment_graded_by_hand_collects_answers_without_running_anything():
    polya_gamma = CONFIG.assignment("01_polya_gamma")
    assert polya_gamma.notebook.exists(), "01_polya_gamma.ipynb is missing"
    student, _ = grading.student_version(nbformat.read(polya_gamma.notebook, as_version=4))
    answers = [c for c in student.cells if grading.ANSWER_TAG in c.metadata.get("tags", [])]
    answers[0].source = "Each binomial factor is the identity with b = N_i and psi_i = x_i' beta."
    report = grading.grade_notebook(student, polya_gamma)
    assert not report.notebook["executed"] and report.notebook["cells_run"] == 0
    by_id = {c.id: c for c in report.checks}
    assert by_id["1a"].status == "pending" and "b = N_i" in by_id["1a"].details["answer"]
    assert by_id["1b"].status == by_id["1c"].status == "fail"
    assert "not run: this assignment has only problems graded by hand" in report.to_markdown()
