"""The performance page shows the numbers of bench/results/*.json, and renders them faithfully."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("render_performance", REPO / "scripts" / "render_performance.py")
render_performance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_performance)


def test_page_is_up_to_date_with_the_benchmark_results():
    """Fails when a benchmark wrote new numbers and nobody re-rendered the page (`make performance`)."""
    assert render_performance.main(["--check"]) == 0


def test_page_links_its_figure_when_there_are_speedups():
    block, ratios = render_performance.render(render_performance.load_reports())
    if ratios:
        assert render_performance.FIGURE_FROM_PAGE in block
        assert render_performance.FIGURE.is_file(), "run `make performance` to draw the figure"


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    (tmp_path / "glm.json").write_text(
        json.dumps(
            {
                "benchmark": "binomial GLM, iterations per second",
                "command": "python bench/bench_glm.py",
                "date": "2026-01-02T03:04:05+00:00",
                "machine": {"cpu_count": 2, "threads": 1, "torch": "2.13.0+cpu"},
                "settings": {"iters": 50},
                "results": {
                    "batched": {"iterations_per_second": 123.456},
                    "naive": {"iterations_per_second": 4.5678},
                    "speedup": 27.03,
                    "grid": [{"b": 1, "c": 0.5, "ratio": 3.25}, {"b": 100, "c": 2.0, "ratio": 40.0}],
                },
            }
        )
    )
    (tmp_path / "polyagamma.json").write_text(json.dumps({"results": {"note": "a|b"}, "speedups": {"PG(1, 0)": 8.0}}))
    return tmp_path


def test_render_shows_every_number_with_machine_and_date(results_dir):
    reports = render_performance.load_reports(results_dir)
    assert list(reports) == ["polyagamma", "glm"], "benchmarks come in the page's order"
    block, ratios = render_performance.render(reports)
    for expected in ("123", "4.57", "27", "3.25", "40", "2026-01-02 03:04 UTC", "2 CPU cores", "torch 2.13.0+cpu",
                     "python bench/bench_glm.py", "iterations = 50", "a\\|b"):
        assert expected in block, expected
    # a list of rows becomes its own table with one column per key
    assert "| b | c | ratio |" in block
    # an explicit `speedups` object wins; otherwise keys naming a speed-up are collected
    assert ratios == [("polyagamma: PG(1, 0)", 8.0), ("glm", 27.03)]
    assert "8 times" in block and "27 times" in block  # the figure's alt text carries the numbers


def test_render_without_results_says_what_to_run():
    block, ratios = render_performance.render({})
    assert ratios == [] and "make bench" in block
    page = "intro\n" + render_performance.BEGIN + "\nold\n" + render_performance.END + "\noutro\n"
    updated = render_performance.updated_page(page, block)
    assert updated.startswith("intro\n") and updated.endswith("\noutro\n") and "old" not in updated


@pytest.mark.parametrize(
    ("key", "expected"),
    [("speedup", True), ("loop_vs_batched_ratio", True), ("times_faster", True), ("speed-up", True),
     ("iterations_per_second", False), ("needle_pg_share", False), ("duration", False)],
)
def test_which_keys_are_speedups(key, expected):
    assert render_performance.is_speedup(key) is expected
