#!/usr/bin/env bash
# Build the book with only some chapters, into a private folder, with the strict flags of `make test`.
# Usage: tools/build_chapter.sh OUT_DIR chapters/03_unrolled_paths [chapters/04_pre_activation ...]
# Useful while writing a chapter: it executes only the chapters named (plus the text pages).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
toc=$(mktemp --suffix=.yml)
{
  echo "format: jb-book"; echo "root: intro"; echo "chapters:"
  for page in notation "$@" glossary bibliography; do echo "  - file: ${page%.ipynb}"; done
} > "$toc"
SKIPFLOW_PROGRESS=0 .venv/bin/jupyter-book build . --toc "$toc" --path-output "$out" -W -n --keep-going
echo "open $out/_build/html/index.html"
