"""Make the HTML book readable with no network: `make book OFFLINE=1`.

By default the book loads MathJax, the Jupyter widget manager (with RequireJS) and the explorers' Vega,
Vega-Lite and vega-embed from CDNs, so a reader offline sees raw TeX, empty widget areas and explorers reduced
to their static picture. This script vendors pinned copies of those assets into the build.

- ``prepare``: copy the assets that ``npm ci`` installed into ``node_modules/`` (exact versions pinned in
  package.json and package-lock.json) into a staging folder ``<stage>/_vendor/``, and write a Jupyter Book
  config: ``_config.yml`` plus ``mathjax_path`` and ``nb_ipywidgets_js`` pointing at ``_vendor/`` and
  ``html_extra_path`` copying the staging folder into the HTML root, and ``html_js_files`` adding
  ``_vendor/explorers-setup.js`` to every page (it tells the explorers of ``skipflow.explorers`` where the
  vendored Vega lives; they load it only on pages that have an explorer). The folder is deliberately not
  called ``_static``: Jupyter Book injects every ``.js`` file it finds there into every page.
- ``finish``: after the build, copy the staged assets into the HTML root again (Sphinx skips
  ``html_extra_path`` when no page is out of date) and run ``check``.
- ``check``: fail if any page still loads a script, stylesheet, image or font from the network, or if a
  vendored file the pages name is missing.

Usage: python tools/offline.py prepare --stage _build/offline
       jupyter-book build . --config _build/offline/_config.yml
       python tools/offline.py finish --stage _build/offline _build/html
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENDOR = "_vendor"  # the folder inside the HTML root; never "_static" (see the module docstring)
# Sphinx takes a relative script path as relative to _static/, hence the "../" (the browser resolves
# "_static/../_vendor/x" to "_vendor/x").
MATHJAX_ENTRY = f"../{VENDOR}/mathjax/tex-mml-chtml.js"
REQUIREJS_ENTRY = f"../{VENDOR}/requirejs/require.js"
WIDGETS_ENTRY = f"../{VENDOR}/html-manager/embed-amd.js"
WIDGETS_SETUP_ENTRY = f"../{VENDOR}/widgets-setup.js"
EXPLORERS_SETUP_ENTRY = f"../{VENDOR}/explorers-setup.js"
# On every page: the explorers' HTML (skipflow.explorers) loads Vega from this folder when the variable is
# set, from a pinned CDN URL otherwise.
EXPLORERS_SETUP_JS = """// Written by tools/offline.py: skipflow.explorers loads the vendored Vega from here.
window.skipflowVendor = new URL(".", document.currentScript.src).href;
"""
# The files the explorers load from _vendor/ (skipflow.explorers.VEGA_FILES names the same ones).
EXPLORER_FILES = ("vega/vega.min.js", "vega-lite/vega-lite.min.js", "vega-embed/vega-embed.min.js")
EXPLORER_MARK = 'class="skipflow-explorer"'
# Runs after require.js, just before embed-amd.js. The widget manager loads its fonts from the folder of
# the AMD module "@jupyter-widgets/html-manager/dist/libembed-amd", which RequireJS places relative to the
# page; mapping that name to the vendored folder puts them where they are.
WIDGETS_SETUP_JS = """// Written by tools/offline.py: tell RequireJS where the vendored widget manager lives.
(function () {
  var here = new URL("html-manager", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = here + "/";
  window.requirejs.config({paths: {"@jupyter-widgets/html-manager/dist": here}});
})();
"""
# Only widgets outside ipywidgets' own set (none in this book) would be fetched from here, and only online;
# the built-in controls are bundled in embed-amd.js.
WIDGETS_CDN = "https://cdn.jsdelivr.net/npm/"
MARKER = f"{VENDOR}/versions.json"  # tests/test_browser.py treats a build holding this file as offline

# npm package -> (destination under _vendor/, [(path in the package, path under the destination)])
ASSETS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    # MathJax's tex-mml-chtml.js loads further components (fonts, a11y, menu, TeX extensions) on demand from
    # its own folder, so those folders come along; the other combined builds are not used and stay out.
    "mathjax": (
        "mathjax",
        [
            ("es5/tex-mml-chtml.js", "tex-mml-chtml.js"),
            ("LICENSE", "LICENSE"),
            ("package.json", "package.json"),
        ]
        + [(f"es5/{part}", part) for part in ("a11y", "adaptors", "input", "output", "sre", "ui")],
    ),
    "requirejs": ("requirejs", [("require.js", "require.js"), ("package.json", "package.json")]),
    # embed-amd.js finds its fonts next to itself; the other builds are left out. Each package.json comes
    # along as the record of the version and license.
    "@jupyter-widgets/html-manager": ("html-manager", [("dist", "."), ("package.json", "package.json")]),
    # The explorers load the three browser builds (UMD) in this order; see skipflow.explorers.
    **{
        name: (
            name,
            [
                (f"build/{name}.min.js", f"{name}.min.js"),
                ("LICENSE", "LICENSE"),
                ("package.json", "package.json"),
            ],
        )
        for name in ("vega", "vega-lite", "vega-embed")
    },
}


# Source maps, and html-manager's builds for bundlers (the page loads embed-amd.js only).
UNUSED = shutil.ignore_patterns("*.map", "embed.js", "libembed-amd.js")


def pinned_versions(root: Path = ROOT) -> dict[str, str]:
    """The exact versions package.json pins (a range there would make the build irreproducible)."""
    deps = json.loads((root / "package.json").read_text())["dependencies"]
    for name, version in deps.items():
        if not re.fullmatch(r"\d+\.\d+\.\d+", version):
            raise ValueError(f"package.json: pin {name} to an exact version, not {version!r}")
    missing = set(ASSETS) - set(deps)
    if missing:
        raise ValueError(f"package.json lacks {sorted(missing)}; tools/offline.py vendors them")
    return deps


def stage_assets(stage: Path, root: Path = ROOT) -> dict[str, str]:
    """Copy the pinned npm assets into ``stage/_vendor``; returns {package: version}.

    The build copies the content of ``stage`` into the HTML root (``html_extra_path``).
    """
    versions = pinned_versions(root)
    target = stage / VENDOR
    if target.exists():
        shutil.rmtree(target)
    for package, (dest, items) in ASSETS.items():
        source = root / "node_modules" / package
        meta = source / "package.json"
        if not meta.is_file():
            raise SystemExit(f"{source} is missing: run `npm ci` in {root} first (the Makefile does).")
        installed = json.loads(meta.read_text())["version"]
        if installed != versions[package]:
            raise SystemExit(
                f"node_modules has {package}@{installed}, package.json pins {versions[package]}: npm ci"
            )
        for src_rel, dst_rel in items:
            src, dst = source / src_rel, target / dest / dst_rel
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=UNUSED)
            elif src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            else:
                raise SystemExit(f"{src} is missing from the npm package {package}@{installed}")
    (target / "widgets-setup.js").write_text(WIDGETS_SETUP_JS)
    (target / "explorers-setup.js").write_text(EXPLORERS_SETUP_JS)
    entries = [MATHJAX_ENTRY, REQUIREJS_ENTRY, WIDGETS_SETUP_ENTRY, WIDGETS_ENTRY, EXPLORERS_SETUP_ENTRY]
    for entry in entries + [f"../{VENDOR}/{file}" for file in EXPLORER_FILES]:
        if not (stage / "_static" / entry).resolve().is_file():
            raise SystemExit(f"staging failed: {entry} is missing from {stage}")
    (stage / MARKER).write_text(json.dumps({p: versions[p] for p in ASSETS}, indent=2) + "\n")
    return {p: versions[p] for p in ASSETS}


def offline_config(stage: Path, root: Path = ROOT, jupyter_cache: Path | None = None) -> dict:
    """_config.yml with the CDN assets replaced by the vendored copies in ``stage``.

    With ``jupyter_cache``, the build takes each chapter's outputs from that cache when it holds a run of the
    chapter's current code (``tools/reuse_runs.py`` fills it with nbval's runs) and executes the others.
    """
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    if jupyter_cache is not None:
        cfg["execute"]["execute_notebooks"] = "cache"
        cfg["execute"]["cache"] = str(jupyter_cache.resolve())
    sphinx_cfg = cfg.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_cfg["mathjax_path"] = MATHJAX_ENTRY
    # The widget manager needs RequireJS loaded before it: the pages get the scripts in this order (the config
    # is written with sort_keys=False, and check_build verifies the order in the built pages).
    sphinx_cfg["nb_ipywidgets_js"] = {
        REQUIREJS_ENTRY: {},
        WIDGETS_SETUP_ENTRY: {},
        WIDGETS_ENTRY: {"data-jupyter-widgets-cdn": WIDGETS_CDN},
    }
    sphinx_cfg["html_extra_path"] = [*sphinx_cfg.get("html_extra_path", []), str(stage.resolve())]
    # A few bytes on every page; Vega itself is loaded only by the pages that show an explorer.
    sphinx_cfg["html_js_files"] = [*sphinx_cfg.get("html_js_files", []), EXPLORERS_SETUP_ENTRY]
    # Jupyter Book resolves local_extensions paths against the config file's folder, which moves: rebase them.
    extensions = cfg["sphinx"].get("local_extensions") or {}
    extensions = {name: str((root / path).resolve()) for name, path in extensions.items()}
    # tools/book_fixes.py removes console errors that the theme stack and the widgets put into the pages.
    extensions.setdefault("book_fixes", str(root / "tools"))
    cfg["sphinx"]["local_extensions"] = extensions
    return cfg


REMOTE = re.compile(
    r"""<(?:script|img|iframe|source|audio|video)\b[^>]*?\bsrc=["'](?:https?:)?//[^"']+["']"""
    r"""|<link\b[^>]*?\brel=["'](?:stylesheet|preload|modulepreload|icon)["'][^>]*?\bhref=["'](?:https?:)?//[^"']+"""
    r"""|<link\b[^>]*?\bhref=["'](?:https?:)?//[^"']+["'][^>]*?\brel=["'](?:stylesheet|preload|modulepreload|icon)""",
    re.IGNORECASE,
)
LOCAL_VENDOR_SRC = re.compile(r"""src=["']([^"':?#]*\b_vendor/[^"'?#]+)""")


def check_build(html_dir: Path) -> list[str]:
    """Problems that would stop the HTML in ``html_dir`` from working offline (empty when none)."""
    problems = []
    if not (html_dir / MARKER).is_file():
        problems.append(f"{html_dir / MARKER} is missing: the build did not vendor the assets")
    pages = sorted(html_dir.rglob("*.html"))
    if not pages:
        problems.append(f"no HTML pages under {html_dir}")
    for page in pages:
        if VENDOR in page.relative_to(html_dir).parts:
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        for match in REMOTE.finditer(text):
            problems.append(f"{page.relative_to(html_dir)} loads a remote asset: {match.group(0)[:160]}")
        for match in LOCAL_VENDOR_SRC.finditer(text):
            if not (page.parent / match.group(1)).resolve().is_file():
                problems.append(f"{page.relative_to(html_dir)} names a missing file {match.group(1)}")
        if EXPLORER_MARK in text:
            if EXPLORERS_SETUP_ENTRY.removeprefix("../") not in text:
                problems.append(
                    f"{page.relative_to(html_dir)} has an explorer but no {EXPLORERS_SETUP_ENTRY}"
                )
            for file in EXPLORER_FILES:
                if not (html_dir / VENDOR / file).is_file():
                    problems.append(
                        f"{page.relative_to(html_dir)} has an explorer but {VENDOR}/{file} is missing"
                    )
        widgets_at = text.find(WIDGETS_ENTRY.removeprefix("../"))
        if widgets_at >= 0 and not 0 <= text.find(REQUIREJS_ENTRY.removeprefix("../")) < widgets_at:
            problems.append(f"{page.relative_to(html_dir)} loads the widget manager before RequireJS")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="stage the pinned assets and write the offline book config")
    prep.add_argument("--stage", type=Path, default=ROOT / "_build" / "offline")
    prep.add_argument("--jupyter-cache", type=Path, help="render the chapter runs stored in this cache")
    finish = sub.add_parser("finish", help="copy the staged assets into the build, then check it")
    finish.add_argument("--stage", type=Path, default=ROOT / "_build" / "offline")
    finish.add_argument("html_dir", type=Path, nargs="?", default=ROOT / "_build" / "html")
    check = sub.add_parser("check", help="fail if a built page still needs the network")
    check.add_argument("html_dir", type=Path, nargs="?", default=ROOT / "_build" / "html")
    args = parser.parse_args(argv)

    if args.command == "prepare":
        # The assets go to <stage>/html (copied as they are into the HTML root), the config next to it.
        versions = stage_assets(args.stage / "html")
        config = args.stage / "_config.yml"
        config.write_text(
            "# Generated by tools/offline.py from _config.yml: do not edit.\n"
            + yaml.safe_dump(
                offline_config(args.stage / "html", jupyter_cache=args.jupyter_cache), sort_keys=False
            )
        )
        pins = ", ".join(f"{p}@{v}" for p, v in versions.items())
        print(f"offline assets staged in {args.stage / 'html' / VENDOR} ({pins}); config: {config}")
        return 0
    if args.command == "finish":
        target = args.html_dir / VENDOR
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(args.stage / "html" / VENDOR, target)
    problems = check_build(args.html_dir)
    for problem in problems:
        print("offline check:", problem, file=sys.stderr)
    if problems:
        return 1
    print(f"offline check: {args.html_dir} loads no asset from the network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
