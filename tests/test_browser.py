"""The built HTML book as a reader meets it, checked in headless Chromium.

Every page of the table of contents is served over http://127.0.0.1 and opened in Debian's Chromium, driven
by Playwright with ``executable_path`` (no browser is ever downloaded). On each page:

- every ``<img>`` loads (``naturalWidth > 0``) and no request for a local asset fails;
- the console shows no error from our own pages;
- math is typeset: no raw ``$$``, ``\\(`` or ``\\[`` in the prose, neither in the page source (math that
  myst did not parse) nor after MathJax ran; every math element holds MathJax output; MathJax typeset nothing
  outside math elements and met no TeX error or undefined macro;
- each exercise has a solution, hidden at first and shown after a click on its title;
- a chapter's Colab link opens that chapter's ``.ipynb`` in the repository named in ``_config.yml``;
- a widget's area is never empty (the widget manager rendered it from the saved state).

If the build is an offline one (``make book OFFLINE=1``, marked by ``_vendor/versions.json``), every
request that leaves 127.0.0.1 is blocked and reported: the book must not need the network. Full-page
screenshots go to ``_build/screenshots/``. Two more tests: Sphinx's search finds a word of the title (it
is local JavaScript, so it works offline too), and a page with one of each problem injected makes every
check above fire (a check that cannot fail proves nothing).

Environment: SKIPFLOW_HTML_DIR (the HTML root, default _build/html), SKIPFLOW_SCREENSHOT_DIR (default
<HTML root>/../screenshots), SKIPFLOW_CHROMIUM (default /usr/bin/chromium), SKIPFLOW_BROWSER_REQUIRE
(``offline``: fail instead of skipping when there is no build, or when it is not an offline build; the
Makefile sets it) and SKIPFLOW_REQUIRE_CHROMIUM=1 (fail instead of skipping when Chromium is missing; .ci/run
sets it).
"""

from __future__ import annotations

import contextlib
import functools
import html as html_lib
import http.server
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("SKIPFLOW_HTML_DIR") or ROOT / "_build" / "html").resolve()
SCREENSHOTS = Path(os.environ.get("SKIPFLOW_SCREENSHOT_DIR") or HTML.parent / "screenshots")
CHROMIUM = Path(os.environ.get("SKIPFLOW_CHROMIUM") or "/usr/bin/chromium")
REQUIRE = os.environ.get("SKIPFLOW_BROWSER_REQUIRE", "")
OFFLINE = (HTML / "_vendor" / "versions.json").is_file()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone, in CSS pixels
SCREENSHOT_MAX_HEIGHT = 16_000  # Chromium's limit for one capture is about 16k pixels
WIDGET_TIMEOUT_MS = 20_000  # the widget manager renders the saved state within seconds
TIMEOUT_MS = 60_000  # generous: the CI machine has 2 shared cores and MathJax typesets long pages

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    message = (
        f"browser test skipped: no Chromium at {CHROMIUM}; enable it with `sudo apt-get install chromium`"
    )
    if os.environ.get("SKIPFLOW_REQUIRE_CHROMIUM") == "1":
        raise RuntimeError(message)
    pytest.skip(message, allow_module_level=True)
if not (HTML / "index.html").is_file():
    if REQUIRE:
        raise RuntimeError(f"no built book in {HTML}: build it first (make book OFFLINE=1)")
    pytest.skip(
        f"browser test skipped: no built book in {HTML} (run `make book` first)", allow_module_level=True
    )
if REQUIRE == "offline" and not OFFLINE:
    raise RuntimeError(f"{HTML} is not an offline build (no _vendor/versions.json): use make book OFFLINE=1")


def toc_docnames(root: Path = ROOT) -> list[str]:
    """The pages of the book: the root and every `file:` of _toc.yml, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                names.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [n.removesuffix(".md").removesuffix(".ipynb") for n in names]


def colab_url_for(docname: str, root: Path = ROOT) -> str:
    """The Colab launch URL that the chapter `docname` must link to, from _config.yml."""
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    repo = cfg["repository"]
    owner_name = urlsplit(repo["url"]).path.strip("/").removesuffix(".git")
    book_path = str(repo.get("path_to_book") or "").strip("/")
    path = f"{book_path}/{docname}.ipynb" if book_path else f"{docname}.ipynb"
    colab = cfg["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_name}/blob/{repo.get('branch', 'main')}/{path}"


PAGES = toc_docnames()


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 64  # two Chromiums open many connections at once; the default backlog is 5


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the test reports failures itself
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free port of 127.0.0.1 from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    HTML_FILES[url] = directory
    try:
        yield url
    finally:
        HTML_FILES.pop(url, None)
        server.shutdown()
        server.server_close()


HTML_FILES: dict[str, Path] = {}  # base URL -> the folder it serves


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def open_context(browser, base_url: str, block_remote: bool):
    """A browser context; with ``block_remote`` every request that leaves ``base_url`` is blocked and
    recorded in ``context.remote_requests``."""
    context = browser.new_context(viewport=VIEWPORT, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    context.remote_requests = []

    def route(route_) -> None:
        url = route_.request.url
        if url.startswith(base_url) or not block_remote:
            route_.continue_()
        else:  # an offline build must not need the network
            context.remote_requests.append(url)
            route_.abort()

    context.route("**/*", route)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser_context(browser, base_url: str):
    with open_context(browser, base_url, block_remote=OFFLINE) as context:
        yield context


class PageProbe:
    """Records what goes wrong while a page loads: failed local requests and console errors."""

    def __init__(self, page, base_url: str):
        self.base_url = base_url
        self.failed: list[str] = []
        self.console: list[str] = []
        self.in_flight: dict[object, str] = {}  # request -> URL: what the page still waits for
        self.last_activity = time.monotonic()  # when a request last started or ended
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_done)
        page.on("requestfailed", self._on_done)
        page.on("requestfailed", self._on_failed)
        page.on("response", self._on_response)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console.append(f"uncaught exception: {exc}"))

    def _on_request(self, request) -> None:
        self.in_flight[request] = request.url
        self.last_activity = time.monotonic()

    def _on_done(self, request) -> None:
        self.in_flight.pop(request, None)
        self.last_activity = time.monotonic()

    def _local(self, url: str) -> bool:
        return url.startswith(self.base_url)

    def _on_failed(self, request) -> None:
        if self._local(request.url):
            self.failed.append(f"{request.url} ({request.failure})")

    def _on_response(self, response) -> None:
        if self._local(response.url) and response.status >= 400:
            self.failed.append(f"{response.url} (HTTP {response.status})")

    def _on_console(self, message) -> None:
        location = (message.location or {}).get("url", "")
        if message.type == "error" and (self._local(location) or not location):
            self.console.append(f"{message.text} (at {location or 'unknown'})")


# In-page scripts. Each returns data; the assertions stay in Python so failures read well.
WAIT_FOR_IMAGES = """async () => {
  const pending = [...document.images].map((img) => {
    img.loading = "eager";  // lazy images would otherwise never load in a headless, unscrolled page
    if (img.complete) return null;
    return new Promise((done) => {
      img.addEventListener("load", done);
      img.addEventListener("error", done);
    });
  });
  await Promise.race([Promise.all(pending), new Promise((done) => setTimeout(done, 20000))]);
  return [...document.images].filter((img) => !(img.complete && img.naturalWidth > 0))
    .map((img) => img.currentSrc || img.getAttribute("src"));
}"""

WAIT_FOR_MATHJAX = """async () => {
  const hasMath = document.querySelector("span.math, div.math") !== null;
  if (!window.MathJax || !window.MathJax.startup || !window.MathJax.startup.promise) {
    return {hasMath, loaded: false};
  }
  await window.MathJax.startup.promise;
  return {hasMath, loaded: true};
}"""

MATH_REPORT = """() => {
  const skip = "pre, code, script, style, textarea, mjx-container, mjx-assistive-mml, .highlight";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement && node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    for (const token of ["$$", "\\\\(", "\\\\["]) {
      const at = text.indexOf(token);
      if (at >= 0) raw.push(text.slice(Math.max(0, at - 40), at + 60).replace(/\\s+/g, " "));
    }
  }
  const untypeset = [...document.querySelectorAll("span.math, div.math")]
    .filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.slice(0, 80));
  // TeX errors (merror) and undefined macros, which MathJax 3's noundefined extension shows as red text
  // instead of failing, read from MathJax's own list of typeset expressions.
  const errors = [];
  const doc = window.MathJax && window.MathJax.startup && window.MathJax.startup.document;
  for (const item of (doc && doc.math) || []) {
    if (!item.root) continue;
    item.root.walkTree((node) => {
      if (node.isKind("merror")) errors.push(`TeX error in ${item.math.slice(0, 80)}`);
      if (node.isKind("mtext") && node.attributes.get("mathcolor") === "red") {
        const text = node.childNodes.map((c) => (c.getText ? c.getText() : "")).join("");
        if (text.startsWith("\\\\")) errors.push(`undefined macro ${text} in ${item.math.slice(0, 80)}`);
      }
    });
  }
  // MathJax also typesets delimiters it finds in plain text; there they mean myst did not parse the math.
  const stray = [...document.querySelectorAll("mjx-container")]
    .filter((el) => !el.closest(".math, .cell_output, .output")).map((el) => el.textContent.slice(0, 80));
  return {raw, untypeset, errors, stray};
}"""

WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
WIDGETS_RENDERED = f"""() => [...document.querySelectorAll('{WIDGET_VIEW}')].every(
  (s) => [...s.parentElement.children].some((el) => el.tagName !== "SCRIPT" && el.childElementCount > 0))"""
WIDGET_REPORT = f"""() => [...document.querySelectorAll('{WIDGET_VIEW}')].map((script) => {{
  const area = script.parentElement;
  const rendered = [...area.children].filter((el) => el.tagName !== "SCRIPT");
  const box = area.getBoundingClientRect();
  const visible = rendered.some((el) => el.getBoundingClientRect().height > 0 && el.childElementCount > 0);
  return {{id: JSON.parse(script.textContent).model_id, visible, height: box.height}};
}})"""

SOLUTIONS = """() => {
  const exercises = [...document.querySelectorAll("div.exercise")].map((el) => el.id);
  const solutions = [...document.querySelectorAll("div.solution")].map((el) => {
    const link = el.querySelector(".admonition-title a[href^='#']");
    return {id: el.id, exercise: link ? link.getAttribute("href").slice(1) : null};
  });
  return {exercises, solutions};
}"""


def _body_visible(solution) -> bool:
    """Whether any part of a solution besides its title is visible."""
    parts = solution.locator(":scope > :not(.admonition-title)")
    return any(parts.nth(i).is_visible() for i in range(parts.count()))


def check_solutions(page) -> list[str]:
    """Each exercise has a solution; each solution starts hidden and opens with a click on its title."""
    problems = []
    info = page.evaluate(SOLUTIONS)
    answered = {s["exercise"] for s in info["solutions"]}
    for exercise in info["exercises"]:
        if exercise not in answered:
            problems.append(f"exercise {exercise!r} has no solution linked to it")
    for sol in info["solutions"]:
        solution = page.locator(f"div.solution[id='{sol['id']}']")
        if solution.count() != 1:
            problems.append(f"solution {sol['id']!r} is not unique on the page")
            continue
        if _body_visible(solution):
            problems.append(f"solution {sol['id']!r} is visible before any click (it must start hidden)")
            continue
        solution.locator(":scope > .admonition-title").click()
        try:
            page.wait_for_function(
                "(el) => [...el.children].some((c) => !c.classList.contains('admonition-title')"
                " && c.getClientRects().length > 0)",
                arg=solution.element_handle(),
                timeout=5_000,
            )
        except Exception:
            problems.append(f"solution {sol['id']!r} stays hidden after a click on its title")
    return problems


RAW_TEX_TOKENS = ("$$", "\\(", "\\[")
NOT_PROSE = ["script", "style", "pre", "code", "textarea"]


def raw_tex_in_html(path: Path) -> list[str]:
    """TeX delimiters left in the prose of the built page, before any JavaScript runs.

    myst turns the math it parses into elements of class ``math``; delimiters outside those (and outside
    code) mean math it did not parse, such as ``$$`` without blank lines around it, whose TeX the Markdown
    parser then mangles (MathJax would typeset the mangled text without complaint).
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for element in soup.find_all(NOT_PROSE):
        element.decompose()
    for element in soup.select(".math, .highlight"):
        element.decompose()
    problems = []
    for text in soup.find_all(string=True):
        for token in RAW_TEX_TOKENS:
            at = text.find(token)
            if at >= 0:
                snippet = " ".join(text[max(0, at - 40) : at + 60].split())
                problems.append(f"raw TeX in the page source: ...{snippet}...")
    return problems


def check_colab_link(page, docname: str) -> list[str]:
    if not (ROOT / f"{docname}.ipynb").is_file():
        return []
    expected = colab_url_for(docname)
    hrefs = page.eval_on_selector_all("a[href*='colab']", "els => els.map((a) => a.href)")
    if expected not in hrefs:
        return [f"no Colab launch link to {expected} (Colab links on the page: {hrefs or 'none'})"]
    return []


# An intentional error shows the message that matters, not a traceback through library internals
# (tools/book_fixes.py shortens it in the HTML).
MAX_TRACEBACK_LINES = 4
TRACEBACK_LINES = """
() => [...document.querySelectorAll('.traceback pre')]
  .map((pre) => pre.textContent.trim().split('\\n').length)
"""

LEDGER_REPORT = """
() => {
  const ledgers = [...document.querySelectorAll('details.skipflow-ledger')];
  const heading = [...document.querySelectorAll('h1, h2, h3')]
    .some((h) => h.textContent.includes('How this page checks itself'));
  return ledgers.map((d) => ({open: d.open, rows: d.querySelectorAll('tbody tr').length,
                               summary: d.querySelector('summary') !== null})).concat([{heading}]);
}
"""


def check_ledger(page) -> list[str]:
    """A chapter ends with its ledger: one folded table of the claims the page checked, under its heading."""
    *ledgers, heading = page.evaluate(LEDGER_REPORT)
    if len(ledgers) != 1:
        return [f"expected one ledger ('How this page checks itself'), found {len(ledgers)}"]
    (ledger,) = ledgers
    problems = []
    if ledger["open"] or not ledger["summary"]:
        problems.append("the ledger is not folded by default")
    if ledger["rows"] == 0:
        problems.append("the ledger has no rows")
    if not heading["heading"]:
        problems.append("the ledger has no heading 'How this page checks itself'")
    return problems


FIGURE_REPORT = """() => [...document.querySelectorAll('main img')]
  .filter((img) => !img.closest('.bd-header-article'))  // the launch buttons' logos
  .filter((img) => !img.closest('.solution'))  // a worked answer's plot is part of the answer
  .filter((img) => !img.closest('figure')?.querySelector('figcaption .caption-number'))
  .map((img) => (img.getAttribute('src') || '').slice(0, 60))"""


PHONE_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {  // inside a box that scrolls or clips sideways (a code block, a wide table)
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll('main *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || (box.right <= width + 1 && box.left >= -1)) continue;
    if (scrolls(el) || el.closest('.bd-sidebar-primary, .bd-sidebar-secondary')) continue;  // drawers
    const name = el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className
      ? '.' + el.className.trim().split(/\\s+/)[0] : '');
    out.push(`${name} spans ${box.left.toFixed(0)}..${box.right.toFixed(0)} px`);
  }
  const page = document.documentElement.scrollWidth;
  if (page > width + 1) out.unshift(`the page scrolls sideways (${page} px wide)`);
  return [...new Set(out)].slice(0, 8);
}"""


def save_full_page(page, width: int, path: Path) -> None:
    """A screenshot of the whole page at `width` CSS pixels, in one image (up to Chromium's height limit).

    JPEG at quality 85: a chapter is a 20,000-px-high image, which Chromium encodes as JPEG in about half the
    time of a PNG, and the text stays sharp enough to review."""
    # From the top, with nothing focused: otherwise the sticky header and the "Skip to main content" link,
    # shown while focused, are drawn in the middle of the image, where the page was scrolled to.
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": min(height, SCREENSHOT_MAX_HEIGHT)})
    page.wait_for_timeout(200)  # let the layout settle at the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, type="jpeg", quality=85)


# A figure shown narrower on a phone than in the desktop column has smaller text than skipflow.plots allows.
COLUMN_PX = 690  # skipflow.plots.COLUMN_PX: the text column at the desktop width
SHRUNK_FIGURES = """(column) => [...document.querySelectorAll('main figure > img')]
  .filter((img) => img.naturalWidth > 0
    && img.getBoundingClientRect().width < Math.min(img.naturalWidth, column) - 1)
  .map((img) => {
    const shown = img.getBoundingClientRect().width.toFixed(0);
    const name = img.getAttribute('src').split('/').pop().slice(0, 16);
    return `${name}…: ${shown} px wide, ${Math.min(img.naturalWidth, column)} px in the column`;
  })"""


# A folded cell whose output is not shown under it (a figure's drawing code, glued into a figure further
# on) must say what it holds: tools/book_fixes.py labels drawing code "Show the code of Fig. 4.3".
BARE_CODE_TOGGLES = """() => [...document.querySelectorAll('main details.above-input')]
  .filter((d) => !d.closest('.cell')?.querySelector('.cell_output'))
  .map((d) => d.querySelector('summary .collapsed')?.textContent.trim() || '')
  .filter((label) => label.startsWith('Show code cell'))"""


# A figure wider than a phone's screen scrolls sideways; _static/skipflow-figures.js marks it so that its
# caption tells the reader (skipflow.css).
SILENT_SCROLLING_FIGURES = """() => [...document.querySelectorAll('main figure')]
  .filter((f) => f.querySelector(':scope > img')?.offsetWidth > f.clientWidth + 1)
  .filter((f) => {
    const caption = f.querySelector(':scope > figcaption');
    return !caption || !f.classList.contains('skipflow-scrolls')
      || !getComputedStyle(caption, '::before').content.includes('Swipe');
  })
  .map((f) => f.id || f.querySelector('img').getAttribute('src').split('/').pop().slice(0, 16))"""


# A table wider than its column scrolls sideways; skipflow-figures.js marks its box and the style sheet puts
# a "Swipe the table sideways" note above it, so the hidden columns (often the quoted number) are not missed.
SILENT_SCROLLING_TABLES = """() => [...document.querySelectorAll(
    'main div.skipflow-table, main .pst-scrollable-table-container')]
  .filter((box) => box.scrollWidth > box.clientWidth + 1)
  .filter((box) => !getComputedStyle(box, '::before').content.includes('Swipe'))
  .map((box) => (box.querySelector('th, td')?.textContent || '').trim().slice(0, 30))"""


def silent_scrolling_tables(page, width: int) -> list[str]:
    return [
        f"at {width} px a table starting {head!r} scrolls sideways without saying so"
        for head in page.evaluate(SILENT_SCROLLING_TABLES)
    ]


def check_phone(page, screenshot: Path | None = None) -> list[str]:
    """At phone width nothing sticks out of the page, except inside boxes that scroll (code, tables), and
    figures keep the size (so the text size) they have in the desktop column, scrolling sideways."""
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # let the layout settle at the new size
    problems = [f"at {PHONE['width']} px: {text}" for text in page.evaluate(PHONE_OVERFLOW)]
    shrunk = page.evaluate(SHRUNK_FIGURES, COLUMN_PX)
    problems += [f"at {PHONE['width']} px a figure shrinks: {text}" for text in shrunk]
    problems += silent_scrolling_tables(page, PHONE["width"])
    silent = page.evaluate(SILENT_SCROLLING_FIGURES)
    problems += [
        f"at {PHONE['width']} px figure {name} scrolls sideways without saying so" for name in silent
    ]
    if screenshot is not None:
        save_full_page(page, PHONE["width"], screenshot.with_name(screenshot.stem + "__phone.jpg"))
    page.set_viewport_size(VIEWPORT)
    return problems


# Display equations wider than the text column (at the desktop width; on a phone they scroll in their box).
MATH_OVERFLOW = """() => [...document.querySelectorAll('mjx-container[display="true"]')]
  .filter((m) => m.scrollWidth > (m.closest('div.math') || m.parentElement).clientWidth + 1)
  .map((m) => (m.querySelector('mjx-assistive-mml') || m).textContent.slice(0, 50))"""


CAPTION_NUMBERS = """() => [...document.querySelectorAll('main .caption-number')]
  .map((el) => el.textContent.trim())"""


def check_numbering(page, docname: str) -> list[str]:
    """Figures, tables and exercises of chapter N are numbered N.1, N.2, ... ("Fig. 4.3", "Exercise 4.2")."""
    match = re.match(r"chapters/(\d+)_", docname)
    if not match:
        return []
    chapter = int(match.group(1))
    problems = []
    for label in page.evaluate(CAPTION_NUMBERS):
        number = re.search(r"(\d+(?:\.\d+)*)\s*$", label)
        if not number or not number.group(1).startswith(f"{chapter}."):
            problems.append(f"{label!r} is not numbered within chapter {chapter} ({chapter}.1, ...)")
    return problems


# MyST markup that failed to parse shows up as text: a directive's fence, or a role such as {numref}`x`.
RAW_MYST = r"""() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('pre, code, script, style, textarea').forEach((el) => el.remove());
  const text = main.textContent;
  const fence = /(`{3,}|:{3,})\{[\w:-]+\}[^\n]{0,40}/g;
  const role = /\{(numref|ref|glue:text|glue:figure|term|doc|footcite)\}`[^`]{0,40}/g;
  return [...text.matchAll(fence), ...text.matchAll(role)].map((m) => m[0]);
}"""


def check_figures(page) -> list[str]:
    """Every image on a chapter page is a numbered, captioned figure (glue:figure or {figure})."""
    return [f"an image outside a numbered, captioned figure: {src}" for src in page.evaluate(FIGURE_REPORT)]


EXPLORER = ".skipflow-explorer"
EXPLORER_TIMEOUT_MS = 30_000  # Vega loads and compiles the spec within seconds
EXPLORERS_SETTLED = f"""() => [...document.querySelectorAll('{EXPLORER}')]
  .every((el) => el.dataset.state !== 'loading')"""
EXPLORER_STATES = f"""() => [...document.querySelectorAll('{EXPLORER}')]
  .map((el) => ({{id: el.id, name: el.dataset.explorer, state: el.dataset.state}}))"""
# What the figure draws: every dataset the view derives from its source for the current setting (after the
# filter on the controls), not the title, which names the setting and would change even if the data did not.
_SIGNATURE = """(id) => {
  const view = document.getElementById(id).skipflowView;
  if (!view) return "";
  const out = [];
  for (let i = 0; i < 20; i++) {  // Vega-Lite names the datasets it derives data_0, data_1, ...
    let rows;
    try { rows = view.data(`data_${i}`); } catch (e) { continue; }
    out.push(rows.map((row) => Object.keys(row).sort()
      .filter((k) => typeof row[k] !== "object").map((k) => `${k}=${row[k]}`).join(",")).join(";"));
  }
  return out.join(" | ");
}"""

EXPLORER_SIGNATURE = _SIGNATURE
EXPLORER_CHANGED = f"""([id, before]) => ({_SIGNATURE})(id) !== before"""
# Whether each control is inside the viewport and legible, and the figure fits the page's width.
EXPLORER_LAYOUT = """(id) => {
  const root = document.getElementById(id);
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of root.querySelectorAll('.vega-bind, canvas, svg')) {
    const box = el.getBoundingClientRect();
    const what = el.matches('.vega-bind') ? `control "${el.textContent.trim().slice(0, 30)}"` : 'the figure';
    if (box.left < -1 || box.right > width + 1) {
      const span = `${box.left.toFixed(0)}..${box.right.toFixed(0)}`;
      out.push(`${what} overflows the ${width}px-wide page (${span})`);
    }
  }
  for (const el of root.querySelectorAll('.vega-bind-name, .vega-bind select, .vega-bind-radio label')) {
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < 12) out.push(`control text "${el.textContent.trim().slice(0, 20)}" is ${size}px (< 12px)`);
  }
  for (const el of root.querySelectorAll('.vega-bind select, .vega-bind input')) {
    const box = el.getBoundingClientRect();
    if (box.height < 12 || box.width < 12) {
      out.push(`a control input is ${box.width.toFixed(0)}x${box.height.toFixed(0)}px: too small to use`);
    }
  }
  return out;
}"""


def _explorer_moves(page, root: str) -> list[tuple[str, object]]:
    """Every move a reader can make on one explorer: (locator of the input, value or "click")."""
    moves: list[tuple[str, object]] = []
    selects = page.locator(f"{root} .vega-bind select")
    for i in range(selects.count()):
        select = selects.nth(i)
        current = select.input_value()
        values = select.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
        moves += [(select, value) for value in values if value != current]
        moves.append((select, current))  # back to the default
    groups = page.locator(f"{root} .vega-bind-radio")
    for i in range(groups.count()):
        radios = groups.nth(i).locator("input[type=radio]")
        checked = [j for j in range(radios.count()) if radios.nth(j).is_checked()]
        moves += [(radios.nth(j), "click") for j in range(radios.count()) if j not in checked]
        moves += [(radios.nth(j), "click") for j in checked]  # back to the default
    ranges = page.locator(f"{root} .vega-bind input[type=range]")
    for i in range(ranges.count()):
        slider = ranges.nth(i)
        current = slider.input_value()
        low, high = slider.get_attribute("min"), slider.get_attribute("max")
        moves += [(slider, value) for value in (low, high) if value is not None and value != current]
        moves.append((slider, current))
    return moves


def check_explorers(page, timeout_ms: int = EXPLORER_TIMEOUT_MS) -> list[str]:
    """Every explorer (skipflow.explorers) renders, fits the page, and each move of a control redraws it.

    Each select option, radio button and slider end is tried in turn, then the control is set back to its
    default; after every move the data the figure draws (the view's derived datasets) must differ.
    """
    if not page.locator(EXPLORER).count():
        return []
    with contextlib.suppress(Exception):  # an explorer still loading is reported just below
        page.wait_for_function(EXPLORERS_SETTLED, timeout=timeout_ms)
    problems = []
    for explorer in page.evaluate(EXPLORER_STATES):
        name, root = explorer["name"], f"#{explorer['id']}"
        if explorer["state"] != "ready":
            problems.append(f"explorer {name} did not render (state {explorer['state']!r})")
            continue
        problems += [f"explorer {name}: {text}" for text in page.evaluate(EXPLORER_LAYOUT, explorer["id"])]
        moves = _explorer_moves(page, root)
        if not moves:
            problems.append(f"explorer {name} has no control")
        for control, value in moves:
            before = page.evaluate(EXPLORER_SIGNATURE, explorer["id"])
            if not before:
                problems.append(f"explorer {name} shows no data")
                break
            if value == "click":
                control.check()
                what = control.evaluate("(el) => el.name + '=' + el.value")
            elif control.evaluate("(el) => el.tagName") == "SELECT":
                control.select_option(str(value))
                what = f"{control.evaluate('(el) => el.name || el.id')}={value}"
            else:
                control.fill(str(value))
                what = f"slider={value}"
            try:
                page.wait_for_function(EXPLORER_CHANGED, arg=[explorer["id"], before], timeout=5_000)
            except Exception:
                problems.append(f"explorer {name}: setting {what} leaves the figure unchanged")
    return problems


STALL = "the page's requests never settled"


def wait_network_idle(page, probe: PageProbe, timeout_ms: int = TIMEOUT_MS, quiet_ms: int = 500) -> list[str]:
    """Wait until no request of the page is in flight and none started or ended for ``quiet_ms``.

    Counted from the page's own request events rather than Chromium's "networkidle" lifecycle event, which
    once in a few dozen runs never fired although no request was in flight. A stall is returned as a
    problem naming the requests still in flight, so the report says what hung."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        quiet_for = time.monotonic() - probe.last_activity
        if not probe.in_flight and quiet_for * 1000 >= quiet_ms:
            return []
        page.wait_for_timeout(100)  # lets Playwright deliver the page's events meanwhile
    pending = sorted(set(probe.in_flight.values())) or ["none in flight"]
    return [f"{STALL} within {timeout_ms / 1000:.0f} s; pending: {', '.join(pending)}"]


def page_problems(
    context,
    base_url: str,
    docname: str,
    screenshot: Path | None = None,
    widget_timeout_ms: int = WIDGET_TIMEOUT_MS,
) -> list[str]:
    """Open ``docname`` and return every problem a reader would meet there (empty when none)."""
    page = context.new_page()
    probe = PageProbe(page, base_url)
    problems: list[str] = []
    try:
        page.goto(base_url + f"{docname}.html", wait_until="load")
        problems += wait_network_idle(page, probe)

        broken = page.evaluate(WAIT_FOR_IMAGES)
        problems += [f"image does not load: {src}" for src in broken]

        mathjax = page.evaluate(WAIT_FOR_MATHJAX)
        if mathjax["hasMath"] and not mathjax["loaded"]:
            problems.append("the page has math but MathJax did not load")
        math = page.evaluate(MATH_REPORT)
        problems += raw_tex_in_html(HTML_FILES.get(base_url, HTML) / f"{docname}.html")
        problems += [f"raw TeX in the text: ...{snippet}..." for snippet in math["raw"]]
        problems += [f"TeX typeset outside a math element (not parsed by myst): {t}" for t in math["stray"]]
        problems += [f"math left untypeset: {text}" for text in math["untypeset"]]
        problems += [f"MathJax error: {text}" for text in math["errors"]]
        wide = page.evaluate(MATH_OVERFLOW)
        problems += [f"a display equation is wider than the column: {text}" for text in wide]

        if page.locator(WIDGET_VIEW).count():  # the widget manager renders the saved state after loading
            with contextlib.suppress(Exception):  # a widget that never renders is reported just below
                page.wait_for_function(WIDGETS_RENDERED, timeout=widget_timeout_ms)
        for widget in page.evaluate(WIDGET_REPORT):
            if not widget["visible"]:
                problems.append(
                    f"widget {widget['id']} leaves its area empty ({widget['height']:.0f}px high)"
                )

        problems += check_colab_link(page, docname)
        if docname.startswith("chapters/"):
            problems += check_ledger(page)
            problems += check_figures(page)
            problems += check_numbering(page, docname)
        problems += [f"MyST markup left unparsed: {text}" for text in page.evaluate(RAW_MYST)]
        problems += check_explorers(page)
        problems += silent_scrolling_tables(page, VIEWPORT["width"])
        for label in page.evaluate(BARE_CODE_TOGGLES):
            problems.append(f"a folded cell with nothing under it is labelled only {label!r}")
        for lines in page.evaluate(TRACEBACK_LINES):
            if lines > MAX_TRACEBACK_LINES:
                problems.append(f"a traceback of {lines} lines is shown (at most {MAX_TRACEBACK_LINES})")

        if screenshot is not None:  # the page as a reader first sees it, all of it in one image
            save_full_page(page, VIEWPORT["width"], screenshot)

        problems += check_solutions(page)
        problems += check_phone(page, screenshot)
        problems += wait_network_idle(page, probe)
    finally:
        page.close()
    problems += [f"local request failed: {failure}" for failure in probe.failed]
    problems += [f"console error: {error}" for error in probe.console]
    problems += [f"requested the network: {url}" for url in context.remote_requests]
    context.remote_requests.clear()
    return problems


@pytest.mark.parametrize("docname", PAGES)
def test_page(browser_context, base_url: str, docname: str) -> None:
    html_file = HTML / f"{docname}.html"
    assert html_file.is_file(), f"{docname} is in _toc.yml but {html_file} was not built"
    shot = SCREENSHOTS / f"{docname.replace('/', '__')}.jpg"
    problems = page_problems(browser_context, base_url, docname, screenshot=shot)
    if any(p.startswith(STALL) for p in problems):
        # A page that stalls twice in a row fails; one stall (seen twice in ~40 runs with Chromium's own
        # "networkidle" event, before wait_network_idle counted requests itself) is reported, not fatal.
        warnings.warn(f"{docname}: first load stalled, retried: {problems}", stacklevel=1)
        problems = page_problems(browser_context, base_url, docname, screenshot=shot)
    assert not problems, f"{docname}.html:\n  " + "\n  ".join(problems)


SEARCH_FINISHED = "() => /Search finished/.test(document.querySelector('p.search-summary')?.innerText)"


def test_search_works(browser_context, base_url: str) -> None:
    """Sphinx's search is local JavaScript over searchindex.js: it must find a word of the book's title, and
    its snippets must show math as text (_static/skipflow-search.js), not as TeX source."""
    word = yaml.safe_load((ROOT / "_config.yml").read_text())["title"].split()[0].strip("&").lower()
    page = browser_context.new_page()
    probe = PageProbe(page, base_url)
    try:
        page.goto(base_url + f"search.html?q={word}", wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('ul.search li').length > 0")
        hits = page.locator("ul.search li").count()
        # the snippets are filled in one page at a time; then Sphinx reports that the search has finished
        page.wait_for_function(SEARCH_FINISHED)
        snippets = page.locator("ul.search li p.context").all_inner_texts()
    finally:
        page.close()
    assert hits > 0, f"searching for {word!r} found nothing"
    tex = [s for s in snippets if re.search(r"\\[(\[]|\$\$|\\[A-Za-z]{2,}", s)]
    assert not tex, f"search snippets show TeX source instead of text: {tex[:2]}"
    assert not probe.failed, probe.failed
    assert not probe.console, probe.console
    remote = list(browser_context.remote_requests)
    browser_context.remote_requests.clear()
    assert not remote, f"search requested the network: {remote}"


FOOTNOTE = re.compile(
    r'<aside class="footnote brackets" id="footcite-[^"]*"[^>]*>\s*<span class="label">(.*?)</span>\s*</span>'
    r"(?:\s*<span class=\"backrefs\">.*?</span>)?\s*<p>(.*?)</p>",
    re.S,
)
BIB_ENTRY = re.compile(
    r'<div class="citation" id="[^"]*"[^>]*>\s*<span class="label">(.*?)</span>\s*</span>\s*<p>(.*?)</p>',
    re.S,
)


def _label(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip("[] \n")


def citation_numbers(html: str, pattern: re.Pattern) -> dict[str, str]:
    """{reference text: its number} for every reference listed on a page."""

    def plain(text: str) -> str:  # tags dropped; typographic quotes as the References page prints them
        return html_lib.unescape(re.sub(r"<[^>]+>", "", text)).replace("\u2019", "'").strip()

    return {plain(text): _label(label) for label, text in pattern.findall(html)}


def test_citations_share_one_numbering() -> None:
    """A chapter's citation [n] is work n of the References page, on every page."""
    book = citation_numbers(_read(HTML / "bibliography.html"), BIB_ENTRY)
    if not book:
        pytest.skip("no built References page")
    checked = 0
    for docname in PAGES:
        for text, number in citation_numbers(_read(HTML / f"{docname}.html"), FOOTNOTE).items():
            assert text in book, f"{docname}: a cited work is missing from the References page: {text[:80]}"
            assert number == book[text], f"{docname}: [{number}] is [{book[text]}] on the References page"
            checked += 1
    assert checked > 0, "no chapter lists a cited work: the pattern no longer matches the built HTML"


def test_offline_marker_matches_package_json() -> None:
    """The vendored assets are the versions package.json pins."""
    if not OFFLINE:
        pytest.skip("not an offline build")
    vendored = json.loads((HTML / "_vendor" / "versions.json").read_text())
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert vendored == {name: pinned[name] for name in vendored}


INJECTED = """
<p>Left raw: $$ x $$ and a missing figure <img src="missing-figure.png" alt="missing"></p>
<p><span class="math notranslate nohighlight">\\(a^2 + \\undefinedmacro\\)</span>
<span class="math notranslate nohighlight">\\(\\frac{1}{\\)</span></p>
<img src="https://example.invalid/remote.png" alt="remote">
<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">
{"version_major": 2, "version_minor": 0, "model_id": "injected0widget"}</script></div>
<script>console.error("injected console error");</script>
<div class="math notranslate nohighlight">\\[ a_1 + a_2 + a_3 + a_4 + a_5 + a_6 + a_7 + a_8 + a_9
 + a_{10} + a_{11} + a_{12} + a_{13} + a_{14} + a_{15} + a_{16} + a_{17}
 + a_{18} + a_{19} + a_{20} + a_{21} + a_{22} + a_{23}
 + a_{24} + a_{25} + a_{26} + a_{27} + a_{28} + a_{29} + a_{30} + a_{31} + a_{32} + a_{33} + a_{34} \\]</div>
<p><span class="caption-number">Fig. 9 </span>a figure numbered across the book</p>
<p>````{dropdown} a directive whose fence did not parse</p>
<div class="injected-wide" style="width: 2000px">a line far wider than a phone</div>
<div class="cell docutils container"><details class="hide above-input"><summary>
<p class="collapsed admonition-title">Show code cell source</p></summary><pre>draw()</pre></details></div>
<div class="skipflow-table"><table><tr><td>injected wide table</td><td style="min-width: 2000px">x</td></tr>
</table></div>
<figure id="injected-wide-figure"><img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
width='600' height='20'/%3E" alt="wide"><figcaption><p>a figure wider than a phone</p></figcaption></figure>
<div class="output traceback highlight-none notranslate"><div class="highlight"><pre>Traceback
  File "a.py", line 1
  File "b.py", line 2
  File "c.py", line 3
ValueError: injected</pre></div></div>
"""


def test_checks_catch_a_broken_page(browser, tmp_path: Path) -> None:
    """Every check of test_page can fail: a chapter page with one of each problem injected is reported."""
    candidates = [
        n
        for n in PAGES
        if (ROOT / f"{n}.ipynb").is_file()
        and 'class="solution' in _read(HTML / f"{n}.html")
        and 'class="math' in _read(HTML / f"{n}.html")  # so MathJax loads and typesets the injected TeX
    ]
    # the shortest such chapter: every check runs on it, and a shorter page loads faster
    chapter = min(candidates, key=lambda n: (HTML / f"{n}.html").stat().st_size, default=None)
    if chapter is None:
        pytest.skip("no built chapter has math and an exercise with a solution")
    site = tmp_path / "site"
    site.mkdir()
    for entry in HTML.iterdir():  # the real build, but for the one page below
        if entry.name != chapter.split("/")[0]:
            (site / entry.name).symlink_to(entry)
    page_file = site / f"{chapter}.html"
    page_file.parent.mkdir(parents=True, exist_ok=True)
    for sibling in (HTML / chapter).parent.iterdir():
        if sibling.name != page_file.name:
            (page_file.parent / sibling.name).symlink_to(sibling)
    html = _read(HTML / f"{chapter}.html")
    html = html.replace("</main>", INJECTED + "</main>", 1)
    html = html.replace('class="solution dropdown', 'class="solution toggle-shown dropdown', 1)
    html = html.replace("<details class='skipflow-ledger'>", "<details class='skipflow-ledger' open>", 1)
    html = html.replace('<details class="skipflow-ledger">', '<details class="skipflow-ledger" open>', 1)
    html = re.sub(r'(href="https://colab[^"]*/)[^"/]+\.ipynb"', r'\1not-this-chapter.ipynb"', html)
    html = re.sub(r'<script src="[^"]*skipflow-figures\.js[^"]*"></script>', "", html)  # no scroll cue
    page_file.write_text(html, encoding="utf-8")

    with serve(site) as url, open_context(browser, url, block_remote=True) as context:
        # the injected widget has no saved state, so it can never render: no need to wait long for it
        problems = "\n".join(page_problems(context, url, chapter, widget_timeout_ms=2_000))
    expected = {
        "image check": "image does not load: ",
        "local request check": "local request failed: ",
        "raw TeX check": "raw TeX in the page source: ...Left raw: $$ x $$",
        "widget check": "widget injected0widget leaves its area empty",
        "Colab link check": "no Colab launch link to",
        "solution check": "is visible before any click",
        "console check": "console error: injected console error",
        "network check": "requested the network: https://example.invalid/remote.png",
        "ledger check": "the ledger is not folded by default",
        "traceback check": "a traceback of 5 lines is shown",
        "phone check": "at 390 px: div.injected-wide spans",
        "code toggle check": "a folded cell with nothing under it is labelled only 'Show code cell source'",
        "table scroll cue check": "a table starting 'injected wide table' scrolls sideways without saying so",
        "scroll cue check": "figure injected-wide-figure scrolls sideways without saying so",
        "numbering check": "'Fig. 9' is not numbered within chapter",
        "unparsed MyST check": "MyST markup left unparsed: ````{dropdown} a directive",
        "equation width check": "a display equation is wider than the column: ",
        "figure check": "an image outside a numbered, captioned figure: missing-figure.png",
    }
    missed = [name for name, text in expected.items() if text not in problems]
    # The injected bad TeX is left untypeset without MathJax, and is a MathJax error with it.
    math_messages = ("the page has math but MathJax did not load", "math left untypeset: ", "MathJax error: ")
    if not any(message in problems for message in math_messages):
        missed.append("MathJax check")
    assert not missed, f"these checks did not fire: {missed}; reported:\n{problems}"


def test_a_stalled_load_is_reported(browser, tmp_path: Path) -> None:
    """A request that never answers is reported by name, as a stall, instead of a bare timeout."""
    (tmp_path / "index.html").write_text('<!doctype html><img src="held.png">', encoding="utf-8")
    with serve(tmp_path) as url, open_context(browser, url, block_remote=True) as context:
        context.route("**/held.png", lambda route_: None)  # neither continued nor aborted: in flight
        page = context.new_page()
        probe = PageProbe(page, url)
        try:
            page.goto(url + "index.html", wait_until="domcontentloaded")
            problems = wait_network_idle(page, probe, timeout_ms=1_500)
        finally:
            page.close()
    assert len(problems) == 1 and problems[0].startswith(STALL), problems
    assert "held.png" in problems[0], problems


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


SCRATCH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>explorers</title>
<script src="_vendor/explorers-setup.js"></script>
{requirejs}
</head><body><main style="max-width: 690px; margin: 0 auto; padding: 0 12px; font-family: sans-serif">
{body}
</main></body></html>
"""


def _scratch_explorers() -> str:
    """The three explorers of skipflow.explorers on small grids (two values per control where the
    chapters have more); the gradient and ordering runs are fake, so this takes a second."""
    torch = pytest.importorskip("torch")
    from skipflow import explorers
    from skipflow.models import INITS
    from skipflow.orderings import ORDERINGS
    from skipflow.widgets.gradient_flow import FLOW_ACTIVATIONS

    gen = torch.Generator().manual_seed(0)  # fake data for a rendering test: not a claim of the book
    flows = {
        (depth, act, init, norm, res): torch.rand(1, depth, generator=gen) + 1e-3
        for depth in (10, 20)
        for act in FLOW_ACTIVATIONS
        for init in INITS
        for norm in (None, "batch")
        for res in (False, True)
    }
    orders = {(o, n): torch.rand(3, n + 1, generator=gen) + 1e-3 for o in ORDERINGS for n in (10, 50)}
    losses = {(o, n): torch.rand(1, 20, generator=gen) + 1e-3 for o in ORDERINGS for n in (10, 50)}
    parts = [
        explorers.gradient_flow_explorer_html(depths=(10, 20), n_seeds=1, precomputed=flows),
        explorers.ordering_explorer_html(
            n_blocks=(10, 50), n_seeds=3, precomputed=orders, precomputed_losses=losses
        ),
        explorers.branch_scale_explorer_html(n_blocks=(4, 8), n_seeds=1, default_blocks=8),
    ]
    return "\n".join(f"<p>Explorer {e.name}</p>{e.html}" for e in parts)


@pytest.mark.parametrize("amd", [False, True], ids=["plain-page", "page-with-requirejs"])
def test_explorers_respond_on_a_scratch_page(browser, tmp_path: Path, amd: bool) -> None:
    """On a page holding the three explorers (with and without RequireJS, which pages with ipywidgets load),
    at desktop and phone width: every explorer renders from the vendored Vega, every control redraws the
    figure, the controls fit 390 px, and nothing errs or touches the network."""
    vendor = HTML / "_vendor"
    if not (vendor / "vega" / "vega.min.js").is_file():
        pytest.skip("needs an offline build with the vendored Vega (make book OFFLINE=1)")
    site = tmp_path / "site"
    site.mkdir()
    (site / "_vendor").symlink_to(vendor)
    requirejs = '<script src="_vendor/requirejs/require.js"></script>' if amd else ""
    html = SCRATCH_PAGE.format(requirejs=requirejs, body=_scratch_explorers())
    (site / "explorers.html").write_text(html, encoding="utf-8")
    problems = []
    with serve(site) as url, open_context(browser, url, block_remote=True) as context:
        for viewport in (VIEWPORT, {"width": 390, "height": 844}):
            page = context.new_page()
            page.set_viewport_size(viewport)
            probe = PageProbe(page, url)
            try:
                page.goto(url + "explorers.html", wait_until="load")
                found = page.locator(EXPLORER).count()
                if found != 3:
                    problems.append(f"expected 3 explorers on the page, found {found}")
                problems += [f"{viewport['width']}px: {p}" for p in check_explorers(page)]
                shot = SCREENSHOTS / f"explorers-scratch-{'amd' if amd else 'plain'}-{viewport['width']}.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
            finally:
                page.close()
            problems += [f"local request failed: {failure}" for failure in probe.failed]
            problems += [f"console error: {error}" for error in probe.console]
            problems += [f"requested the network: {u}" for u in context.remote_requests]
            context.remote_requests.clear()
    assert not problems, "\n  ".join(problems)


def test_explorer_check_catches_a_dead_control(browser, tmp_path: Path) -> None:
    """check_explorers can fail: a control the figure ignores; an explorer that fell back to its picture."""
    vendor = HTML / "_vendor"
    if not (vendor / "vega" / "vega.min.js").is_file():
        pytest.skip("needs an offline build with the vendored Vega (make book OFFLINE=1)")
    pytest.importorskip("torch")
    from skipflow import explorers

    good = explorers.branch_scale_explorer_html(n_blocks=(4, 8), n_seeds=1, default_blocks=8)
    spec = json.loads(json.dumps(good.spec))
    spec["transform"][0]["filter"] = "datum.alpha == alpha && datum.blocks == 8"  # ignores the depth control
    dead = explorers.explorer_snippet(spec, good.fallback_png, alt="dead control", name="dead")
    stuck = (
        '<div class="skipflow-explorer" id="skipflow-explorer-stuck" data-explorer="stuck"'
        ' data-state="fallback">'
    )
    site = tmp_path / "site"
    site.mkdir()
    (site / "_vendor").symlink_to(vendor)
    (site / "explorers.html").write_text(SCRATCH_PAGE.format(requirejs="", body=dead + stuck + "</div>"))
    with serve(site) as url, open_context(browser, url, block_remote=True) as context:
        page = context.new_page()
        try:
            page.goto(url + "explorers.html", wait_until="load")
            problems = "\n".join(check_explorers(page))
        finally:
            page.close()
    assert "explorer dead: setting blocks=4 leaves the figure unchanged" in problems, problems
    assert "explorer stuck did not render (state 'fallback')" in problems, problems
    assert "alpha=" not in problems, problems  # the live control is not reported
