"""The built website as a reader gets it, checked in headless Chromium.

Run with `make browser-test` after `make book` (it serves `_build/html` on
localhost and opens every page of `_toc.yml`). Without a built book these tests
skip, except under `make browser-test` (BOOK_REQUIRED=1), where that is an error.
Screenshots of every page are saved to `_build/screenshots/`.
"""

from __future__ import annotations

import warnings
from urllib.parse import urlparse

import pytest

from sitebook import BOOK_ROOT, HTML, colab_url, toc_pages, tracked_by_git

PAGES = toc_pages()
NOTEBOOK_PAGES = [p for p in PAGES if p.is_notebook]
IDS = [p.docname for p in PAGES]


def _path(url: str) -> str:
    return urlparse(url).path


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_page_was_built(built_book, page):
    assert page.source is not None, f"_toc.yml names {page.docname}, but there is no {page.docname}.md or .ipynb"
    assert (built_book / page.html).is_file(), f"{page.html} is missing from {HTML}: rebuild with `make book`"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_no_javascript_errors(visit, page):
    seen = visit(page)
    assert not seen.page_errors, f"uncaught JavaScript exceptions: {seen.page_errors}"
    assert not seen.console_errors, f"console errors: {seen.console_errors}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_everything_is_served_locally(visit, page):
    """No CDN and no other outside address: the book reads the same offline."""
    seen = visit(page)
    assert not seen.external_requests, f"requests that left localhost (blocked): {seen.external_requests}"
    assert not seen.failed_local, f"local files that failed to load: {seen.failed_local}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_math_is_typeset(visit, page):
    seen = visit(page).seen
    if seen["math"]:
        assert seen["mathjax"], "the page has math but MathJax never started"
        assert seen["mathjax"].startswith("3."), f"expected the local MathJax 3, got {seen['mathjax']}"
    assert not seen["mathUntypeset"], f"math left as TeX source: {seen['mathUntypeset'][:5]}"
    assert not seen["mathErrors"], f"TeX errors: {seen['mathErrors'][:5]}"
    assert not seen["mathUndefined"], f"{seen['mathUndefined']} undefined TeX macro(s) shown in red"
    assert not seen["rawTex"], f"TeX in the prose that was never typeset (check the $ delimiters): {seen['rawTex'][:5]}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_images_load_and_have_alt_text(visit, page):
    images = visit(page).seen["images"]
    broken = [img["src"] for img in images if not img["complete"] or img["naturalWidth"] == 0]
    assert not broken, f"images that did not load: {broken}"
    no_alt = [img["src"] for img in images if not (img["alt"] or "").strip()]
    assert not no_alt, f"images without alt text: {no_alt}"
    # myst-nb's default alt text of a notebook figure is its file name, which tells a screen
    # reader nothing. A notebook describes a figure with the cell metadata
    # {"mystnb": {"image": {"alt": "..."}}}. Reported as a warning, not a failure.
    undescribed = [img["src"] for img in images if _path(img["src"]).endswith((img["alt"] or "").lstrip("./"))]
    if undescribed:
        warnings.warn(f"{page.docname}: {len(undescribed)} figure(s) whose alt text is only the file name", stacklevel=1)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_sidebar_lists_every_page(visit, page):
    links = {_path(url) for url in visit(page).seen["sidebarLinks"]}
    missing = [p.docname for p in PAGES if f"/{p.html}" not in links]
    assert not missing, f"pages of _toc.yml missing from the sidebar: {missing}"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=[p.docname for p in NOTEBOOK_PAGES])
def test_open_in_colab_link(visit, page):
    expected = colab_url(page)
    links = visit(page).seen["colabLinks"]
    assert expected in links, f"no Colab link to {expected}; the page has {links}"
    assert len(set(links)) == 1, f"Colab links to other notebooks too: {links}"
    assert page.source.is_file()
    tracked = tracked_by_git(page.source)
    assert tracked is not False, f"{page.source.relative_to(BOOK_ROOT)} is not committed: the Colab link would 404"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_no_horizontal_scrolling(visit, page):
    """Neither the page nor its main column scrolls sideways, nor does any code block or display equation."""
    seen = visit(page).seen
    assert seen["page"]["scrollWidth"] <= seen["page"]["clientWidth"], f"the page scrolls sideways: {seen['page']}"
    article = seen["article"]
    assert article["scrollWidth"] <= article["clientWidth"] + 1, f"the main column scrolls sideways: {article}"
    assert not seen["wideCode"], f"code blocks wider than the page: {seen['wideCode'][:3]}"
    assert not seen["wideMath"], f"display equations wider than the page (split them): {seen['wideMath'][:3]}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_page_structure(visit, page):
    """One title per page, a language for screen readers."""
    seen = visit(page).seen
    assert seen["lang"], "<html> has no lang attribute"
    assert len(seen["h1"]) == 1, f"expected one <h1>, found {seen['h1']}"
    assert seen["title"].strip(), "empty <title>"


def test_screenshots_saved(visit):
    for page in PAGES[:3]:
        shot = visit(page).screenshot
        assert shot is not None and shot.stat().st_size > 10_000, f"no screenshot of {page.docname}"
