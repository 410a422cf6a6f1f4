"""Every notebook is stored executed, in the book's format, and opens in Colab.

nbval re-executes notebooks and compares outputs, but it passes a notebook
stored without outputs; these checks close that gap.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*ROOT.glob("hw2_solutions/*.ipynb"), *ROOT.glob("chapters/*.ipynb")])
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]["url"]


def _toc_files(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["file"]] if "file" in node else []
        return found + [f for value in node.values() for f in _toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in _toc_files(item)]
    return []


TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
TOC_FILES = {TOC["root"], *_toc_files(TOC)}


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_in_the_table_of_contents(path):
    assert str(path.relative_to(ROOT).with_suffix("")) in TOC_FILES


@pytest.mark.parametrize("entry", sorted(TOC_FILES))
def test_table_of_contents_entries_exist(entry):
    assert any((ROOT / f"{entry}{suffix}").exists() for suffix in (".md", ".ipynb")), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_executed(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    assert code, "no code cells"
    counts = [cell.execution_count for cell in code]
    assert None not in counts, "some code cells were never executed: run `make notebooks`"
    assert counts == list(range(1, len(code) + 1)), f"cells executed out of order: {counts}"
    errors = [o for cell in code for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"stored outputs contain an error: {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_format(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "first cell must be a '# Title'"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert "google.colab" in setup.source and REPOSITORY in setup.source, (
        "the first code cell must install bayesglm from the repository when running in Colab"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_outputs_reproduce(path):
    """No output that nbval cannot compare: progress bars, plotly's random ids, raw tensors' addresses."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "nbval-ignore-output" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert "application/vnd.plotly.v1+json" not in data, "store maps as static images"
            assert "progress" not in data.get("text/html", ""), "progress bars change run to run"
            if output.output_type == "stream" and output.name == "stderr":
                pytest.fail(f"stderr output stored (warnings or logs): {output.text[:200]!r}")
