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

More page-only touches, the notebooks unchanged:

- A glued number in e-notation ("5.6e-17", from ``{glue:text}`key:.1e```) is printed as a reader writes it,
  "5.6 × 10⁻¹⁷", a negative one with a minus sign ("−0.25", not a hyphen), and no glued number is broken
  across two lines.
- A figure's drawing code is folded under the figure's cell, often a few paragraphs before the figure itself;
  its toggle says which figure it draws ("Show the code of Fig. 4.3") instead of "Show code cell source".
- A glued figure's image gets its caption as alternative text (myst-nb gives it the image's file path).

Enabled for every build in _config.yml (`sphinx: local_extensions: {book_fixes: tools}`); tools/offline.py
and tools/build_chapter.sh rebase that path when they write their own config elsewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from skipflow.display import typeset_number

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
    sort_footnotes_by_label(doctree)


def sort_footnotes_by_label(doctree: Any) -> None:
    """A chapter lists its works in the order of their book-wide numbers ([1], [7], [12]), not of citation."""
    from docutils import nodes

    parents = {id(f.parent): f.parent for f in doctree.findall(nodes.footnote) if f.parent is not None}
    for parent in parents.values():
        slots = [i for i, child in enumerate(parent.children) if isinstance(child, nodes.footnote)]
        notes = [parent.children[i] for i in slots]

        def number(note: Any) -> tuple[int, str]:
            label = next(iter(note.findall(nodes.label)), None)
            text = label.astext() if label is not None else ""
            return (int(text), text) if text.isdigit() else (10**9, text)

        for slot, note in zip(slots, sorted(notes, key=number), strict=True):
            parent.children[slot] = note


def typeset_glued_numbers(app: Any, doctree: Any, docname: str) -> None:
    """Glued numbers as a book prints them (typeset_number); _static/skipflow.css keeps each on one line."""
    from docutils import nodes

    for node in list(doctree.findall(nodes.inline)):
        if "pasted-text" not in node.get("classes", []):
            continue
        text = node.astext()
        shown = typeset_number(text)
        if shown != text:
            node.children = [nodes.Text(shown)]


GLUE_FIGURE_CALL = re.compile(r"glue_figure\(\s*[\"'](\w+)[\"']")
GLUE_FIGURE_NAME = re.compile(r"\{glue:figure\}\s*(\w+)\s*\n:name:\s*([\w-]+)")


def glued_figure_names(notebook: Path) -> dict[str, str]:
    """The label of each ``{glue:figure}`` of a notebook by glue key, e.g. {"ch4_fig_a": "fig-ch4-a"}."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return {}
    text = "\n".join("".join(c.get("source", "")) for c in cells if c.get("cell_type") == "markdown")
    return dict(GLUE_FIGURE_NAME.findall(text))


def label_figure_code(app: Any, doctree: Any, docname: str) -> None:
    """Folded drawing code says which figure it draws: "Show the code of Fig. 4.3" (see the docstring)."""
    from docutils import nodes

    numbers = app.env.toc_fignumbers.get(docname, {}).get("figure", {})
    names = glued_figure_names(Path(app.env.doc2path(docname)))
    if not numbers or not names:
        return
    for node in list(doctree.findall(nodes.Element)):
        if type(node).__name__ != "HideCodeCellNode" or "above-input" not in node.get("classes", []):
            continue
        keys = GLUE_FIGURE_CALL.findall(node.astext())
        figures = [numbers[names[k]] for k in keys if k in names and names[k] in numbers]
        if not figures:
            continue
        shown = " and ".join("Fig. " + ".".join(map(str, number)) for number in figures)
        node["prompt_show"] = f"Show the code of {shown}"
        node["prompt_hide"] = f"Hide the code of {shown}"


def describe_figure_images(app: Any, doctree: Any, docname: str) -> None:
    """An image in a captioned figure whose alt text is a file path takes the caption's text instead."""
    from docutils import nodes

    for figure in doctree.findall(nodes.figure):
        captions = list(figure.findall(nodes.caption))
        if not captions:
            continue
        text = " ".join(captions[0].astext().split())
        for image in figure.findall(nodes.image):
            alt = image.get("alt", "")
            if not alt or alt == image.get("uri") or alt.endswith((".png", ".svg", ".jpg")):
                image["alt"] = text


def setup(app: Any) -> dict[str, Any]:
    app.add_js_file(None, body=DEFAULT_MODE_SCRIPT, priority=100)
    app.add_js_file(None, body=MATHJAX2_SHIM_SCRIPT, priority=100)
    app.connect("html-page-context", dedupe_scripts, priority=900)  # after everyone else added theirs
    app.connect("doctree-resolved", shorten_tracebacks)
    app.connect("doctree-resolved", number_citations_book_wide)
    app.connect("doctree-resolved", typeset_glued_numbers)
    app.connect("doctree-resolved", label_figure_code)
    app.connect("doctree-resolved", describe_figure_images)
    app.connect("env-get-updated", number_per_chapter, priority=900)  # after Sphinx's own numbering
    return {"parallel_read_safe": True, "parallel_write_safe": True}
