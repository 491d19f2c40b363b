"""A Sphinx extension that removes two console errors the upstream packages put into every page.

tests/test_browser.py fails on any console error from our pages, and these two came from the stack itself:

- sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) to the page twice, so
  the browser reports "Identifier 'THEBE_JS_URL' has already been declared". The page context's script list
  is de-duplicated here.
- On a reader's first visit (empty localStorage) the theme's head script sets the colour mode to "", and
  pydata-sphinx-theme then logs "Got invalid theme mode". A small script sets the theme's own default
  ("auto") when no mode was stored, before the theme reads it.
- ipywidgets' controls typeset their labels with the MathJax 2 call ``MathJax.Hub.Queue``, but the book
  loads MathJax 3, so a page with a labelled widget throws "Cannot read properties of undefined (reading
  'Queue')". A small shim maps that call to MathJax 3's ``typesetPromise``.

It also shortens the traceback of an intentional error (a cell tagged ``raises-exception``) to its last
line, the message that matters, in the HTML only: a reader sees "RuntimeError: one of the variables needed
for gradient computation has been modified by an inplace operation" instead of 40 lines through torch's
internals with the build machine's paths. The notebook keeps the whole traceback.

And it numbers figures, tables and exercises per chapter: "Fig. 4.3" is the third figure of chapter 4
(the chapter number comes from the file name, ``chapters/04_...``), and "Exercise 3.2" the second exercise
of chapter 3. Sphinx would number them across the whole book ("Exercise 28"), because the table of contents
uses parts, and a numbered toctree restarts its count in every part.

Citations carry one number across the book: a chapter cites with ``{footcite}`` and lists its works at its
end, and each footnote takes the number the work has on the References page (``{bibliography}`` with
``:all:``), so "[7]" means the same paper on every page.

Enabled for every build in _config.yml (`sphinx: local_extensions: {book_fixes: tools}`); tools/offline.py
and tools/build_chapter.sh rebase that path when they write their own config elsewhere.
"""

from __future__ import annotations

import re
from typing import Any

CHAPTER_DOC = re.compile(r"^chapters/(\d+)_")

DEFAULT_MODE_SCRIPT = (
    "if (!document.documentElement.dataset.mode) {"
    " document.documentElement.dataset.mode = document.documentElement.dataset.defaultMode || 'auto'; }"
)


# Runs in <head>, before MathJax (deferred) replaces window.MathJax; by DOMContentLoaded MathJax 3 is there.
MATHJAX2_SHIM_SCRIPT = """document.addEventListener("DOMContentLoaded", () => {
  const mj = window.MathJax;
  if (!mj || !mj.version || mj.Hub) return;
  mj.Hub = {Queue: (...jobs) => jobs.forEach((job) => {
    if (Array.isArray(job) && job[0] === "Typeset" && job[2] && mj.startup) {
      mj.startup.promise.then(() => mj.typesetPromise([job[2]]));
    }
  })};
});"""


def _script_key(script: Any) -> tuple[str, str]:
    """Scripts are the same when file, attributes and inline body agree (whatever their priority).

    An inline script registered twice, once as filename None and once as "", is one script.
    """
    attributes = getattr(script, "attributes", {})
    return str(getattr(script, "filename", script) or ""), repr(sorted(attributes.items()))


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep one of each repeated script (the one that loads first) in the page's script list."""
    scripts = context.get("script_files")
    if not scripts:
        return
    first: dict[tuple[str, str], Any] = {}
    for script in sorted(scripts, key=lambda js: getattr(js, "priority", 500)):  # the order Sphinx renders
        first.setdefault(_script_key(script), script)
    keep = {id(script) for script in first.values()}
    context["script_files"] = [script for script in scripts if id(script) in keep]


TRACEBACK_NOTE = "(traceback shortened to its last line; run the notebook to see all of it)"


def last_line_of_traceback(text: str) -> str:
    """The error's own line ("TypeError: ...") from a traceback's text, with a note that it was shortened."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text
    last = len(lines) - 1
    while last > 0 and lines[last].startswith(" "):  # a message continued on indented lines
        last -= 1
    return "\n".join([*lines[last:], TRACEBACK_NOTE])


def shorten_tracebacks(app: Any, doctree: Any, docname: str) -> None:
    """Replace each error output's traceback with its last line (see the module docstring)."""
    from docutils import nodes

    for block in list(doctree.findall(nodes.literal_block)):
        if "traceback" not in block.get("classes", []):
            continue
        short = last_line_of_traceback(block.astext())
        block.children = [nodes.Text(short)]
        block["language"] = "none"


def number_per_chapter(app: Any, env: Any) -> list[str]:
    """Renumber every numbered element of a chapter page as (chapter, k), k = 1, 2, ... in page order.

    Runs after Sphinx assigned its book-wide numbers (``env.toc_fignumbers``, one tuple per element, in
    reading order); returns the pages whose numbers changed, so Sphinx writes them again.
    """
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        match = CHAPTER_DOC.match(docname)
        if not match:
            continue
        chapter = int(match.group(1))
        for figtype, numbers in by_type.items():
            in_order = sorted(numbers, key=numbers.get)
            renumbered = {element: (chapter, k) for k, element in enumerate(in_order, start=1)}
            if renumbered != numbers:
                by_type[figtype] = renumbered
                changed.append(docname)
    return sorted(set(changed))


def book_citation_labels(env: Any) -> dict[str, str]:
    """Each cited work's label on the References page, by BibTeX key (e.g. {"he2016deep": "12"})."""
    citations = env.get_domain("cite").data.get("citations", [])
    return {c.key: c.formatted_entry.label for c in citations}


def number_citations_book_wide(app: Any, doctree: Any, docname: str) -> None:
    """Give every footnote citation of a page its book-wide label, in the list and in the text."""
    from docutils import nodes

    labels = book_citation_labels(app.env)
    relabel: dict[str, str] = {}  # footnote id -> label
    for footnote in list(doctree.findall(nodes.footnote)):
        key = next((i.removeprefix("footcite-") for i in footnote["ids"] if i.startswith("footcite-")), None)
        if key is None or key not in labels:
            continue
        relabel.update(dict.fromkeys(footnote["ids"], labels[key]))
        for label in footnote.findall(nodes.label):
            label.children = [nodes.Text(labels[key])]
    for reference in doctree.findall(nodes.footnote_reference):
        if reference.get("refid") in relabel:
            reference.children = [nodes.Text(relabel[reference["refid"]])]


def setup(app: Any) -> dict[str, Any]:
    app.add_js_file(None, body=DEFAULT_MODE_SCRIPT, priority=100)
    app.add_js_file(None, body=MATHJAX2_SHIM_SCRIPT, priority=100)
    app.connect("html-page-context", dedupe_scripts, priority=900)  # after everyone else added theirs
    app.connect("doctree-resolved", shorten_tracebacks)
    app.connect("doctree-resolved", number_citations_book_wide)
    app.connect("env-get-updated", number_per_chapter, priority=900)  # after Sphinx's own numbering
    return {"parallel_read_safe": True, "parallel_write_safe": True}
