"""Fixtures of the browser test: the built book served on localhost, one headless Chromium.

Each page is opened once (`visit`), and what the browser saw is kept for the tests:
console errors, requests that left localhost, images, typeset math, the sidebar,
the Colab link, horizontal overflow. A screenshot of each page, and what was
seen there as JSON, go to `_build/screenshots/`.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from sitebook import BOOK_REQUIRED, CHROMIUM_FLAGS, HTML, SCREENSHOTS, Page, chromium_executable

VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 30_000

# Runs in the page once it has loaded: waits for MathJax's first typeset, then
# reports what a reader would see.
COLLECT_JS = r"""
async () => {
  const maths = [...document.querySelectorAll('.math')];
  let mathjax = null;
  if (maths.length) {
    const start = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - start < 20000) {
      await new Promise(r => setTimeout(r, 50));
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await MathJax.startup.promise;
      mathjax = MathJax.version;
    }
  }
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  // Visible prose, without code, that still looks like TeX: math that was never typeset.
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, mjx-container, mjx-assistive-mml, script, style').forEach(e => e.remove());
  const prose = clone.textContent;
  const rawTex = prose.match(/\$\$[^$]+\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$|\\\(|\\\)|\\\[|\\\]|\\begin\{/g) || [];
  const describe = el => ({
    tag: el.tagName.toLowerCase(),
    cls: el.className && el.className.baseVal === undefined ? String(el.className) : '',
    text: (el.textContent || '').trim().slice(0, 80),
    scrollWidth: el.scrollWidth,
    clientWidth: el.clientWidth,
  });
  const wide = el => el.scrollWidth > el.clientWidth + 1;
  const sidebar = document.querySelector('.bd-sidebar-primary');
  return {
    title: document.title,
    lang: document.documentElement.getAttribute('lang'),
    h1: [...article.querySelectorAll('h1')].map(h => h.textContent.replace('#', '').trim()),
    mathjax,
    math: maths.length,
    mathUntypeset: maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
    mathUndefined: [...document.querySelectorAll('mjx-container [style*="color: red"]')].length,
    rawTex,
    images: [...document.images].map(img => ({
      src: img.currentSrc || img.src,
      alt: img.getAttribute('alt'),
      complete: img.complete,
      naturalWidth: img.naturalWidth,
      inArticle: article.contains(img),
      renderedWidth: img.getBoundingClientRect().width,
    })),
    sidebarLinks: sidebar ? [...sidebar.querySelectorAll('a[href]')].map(a => a.href) : [],
    colabLinks: [...document.querySelectorAll('a[href*="colab.research.google.com"]')].map(a => a.href),
    page: {scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth},
    article: describe(article),
    wideCode: [...article.querySelectorAll('pre')].filter(wide).map(describe),
    wideMath: [...article.querySelectorAll('mjx-container[display="true"]')].filter(wide).map(describe),
    // Wide tables (a data frame of 23 covariates) may scroll inside their own box: reported, not failed.
    wideOther: [...article.querySelectorAll('table, .cell_output, .output')].filter(wide).map(describe),
  };
}
"""


@dataclass
class Visit:
    """What the browser saw on one page."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    seen: dict = field(default_factory=dict)
    screenshot: Path | None = None


@pytest.fixture(scope="session")
def built_book() -> Path:
    """The built website; skips (or fails under `make browser-test`) when there is none."""
    if not (HTML / "index.html").is_file():
        message = f"no built book at {HTML}: run `make book` first"
        if BOOK_REQUIRED:
            pytest.fail(message + " (make browser-test needs one)")
        pytest.skip(message)
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def base_url(built_book: Path):
    """`_build/html` served on a free localhost port for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(built_book: Path):
    executable = chromium_executable()
    if executable is None:
        pytest.fail("no Chromium found: install Debian's (apt-get install chromium); Playwright's own is never used")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def visit(browser, base_url: str):
    """`visit(page)` opens a page once per session and returns what the browser saw."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cache: dict[str, Visit] = {}
    local = urlparse(base_url).netloc

    def open_page(page: Page) -> Visit:
        if page.docname in cache:
            return cache[page.docname]
        result = Visit(url=base_url + page.html)
        context = browser.new_context(viewport=VIEWPORT, service_workers="block")

        def route(request_route):
            url = request_route.request.url
            if urlparse(url).netloc == local:
                request_route.continue_()
            else:  # the book must not need anything from outside: block it and report it
                result.external_requests.append(url)
                request_route.abort()

        context.route("**/*", route)
        tab = context.new_page()
        tab.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: result.page_errors.append(str(e)))
        tab.on(
            "response",
            lambda r: result.failed_local.append(f"{r.status} {r.url}")
            if r.status >= 400 and urlparse(r.url).netloc == local
            else None,
        )
        tab.on(
            "requestfailed",
            lambda r: result.failed_local.append(f"{r.failure} {r.url}") if urlparse(r.url).netloc == local else None,
        )
        tab.goto(result.url, wait_until="load", timeout=TIMEOUT_MS)
        tab.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        result.seen = tab.evaluate(COLLECT_JS)
        result.screenshot = SCREENSHOTS / f"{page.docname.replace('/', '__')}.png"
        tab.screenshot(path=str(result.screenshot))
        context.close()
        report = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
        result.screenshot.with_suffix(".json").write_text(json.dumps(report, indent=1))
        cache[page.docname] = result
        return result

    return open_page
