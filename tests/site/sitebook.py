"""What the site tests need to know about the book: its pages, its notebooks, its links.

Everything is read from the book's own `_toc.yml` and `_config.yml`, so the
tests follow the book as it grows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parents[2]
# BOOK_ROOT lets the tests check a book built elsewhere (a scratch copy of the repository).
BOOK_ROOT = Path(os.environ.get("BOOK_ROOT", REPO)).resolve()
HTML = BOOK_ROOT / "_build" / "html"
SCREENSHOTS = BOOK_ROOT / "_build" / "screenshots"
# `make browser-test` sets BOOK_REQUIRED=1: there a missing book is an error, not a skip.
BOOK_REQUIRED = os.environ.get("BOOK_REQUIRED", "0") not in ("", "0")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Page:
    """One page of the table of contents."""

    docname: str  # e.g. "hw2_solutions/00_preprocessing"
    source: Path | None  # the .md or .ipynb it is built from (None: missing, which test_notebooks reports)

    @property
    def html(self) -> str:
        return f"{self.docname}.html"

    @property
    def is_notebook(self) -> bool:
        return self.source is not None and self.source.suffix == ".ipynb"


def _toc_files(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["file"]] if "file" in node else []
        return found + [f for key, value in node.items() if key != "file" for f in _toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in _toc_files(item)]
    return []


def toc_pages(root: Path = BOOK_ROOT) -> list[Page]:
    """The pages of `_toc.yml` in reading order, root first."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    docnames = [toc["root"], *_toc_files(toc)]
    pages = []
    for docname in dict.fromkeys(docnames):
        docname = str(Path(docname).with_suffix("")) if Path(docname).suffix in (".md", ".ipynb") else docname
        sources = [root / f"{docname}{suffix}" for suffix in (".ipynb", ".md")]
        pages.append(Page(docname, next((s for s in sources if s.exists()), None)))
    return pages


def config(root: Path = BOOK_ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def colab_url(page: Page, root: Path = BOOK_ROOT) -> str:
    """The Colab address of a notebook page, from `_config.yml`'s repository and launch settings."""
    cfg = config(root)
    repository = cfg["repository"]
    owner_repo = urlparse(repository["url"]).path.strip("/").removesuffix(".git")
    branch = repository.get("branch", "main")
    book_path = (repository.get("path_to_book") or "").strip("/")
    path = "/".join(p for p in (book_path, page.source.relative_to(root).as_posix()) if p)
    colab = cfg["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{branch}/{path}"


def tracked_by_git(path: Path) -> bool | None:
    """Whether git tracks `path` (None when it is not in a git work tree)."""
    git = shutil.which("git")
    if git is None:
        return None
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"], cwd=path.parent, capture_output=True, text=True
    )
    if inside.returncode != 0:
        return None
    listed = subprocess.run([git, "ls-files", "--error-unmatch", path.name], cwd=path.parent, capture_output=True)
    return listed.returncode == 0


def chromium_executable() -> str | None:
    """Debian's Chromium (or another Chrome on PATH); Playwright's own browsers are never downloaded."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None
