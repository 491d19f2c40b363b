#!/usr/bin/env bash
# Build the whole book into a private folder, executing only the chapters named, and fail on any warning
# about them. Handy while writing a chapter: other chapters are rendered without being run.
# Usage: tools/build_chapter.sh OUT_DIR 03_unrolled_paths [04_pre_activation ...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
cfg=$(mktemp --suffix=.yml)
.venv/bin/python - "$cfg" "$@" <<'PY'
import pathlib, sys, yaml
cfg = yaml.safe_load(pathlib.Path("_config.yml").read_text())
keep = set(sys.argv[2:])
skip = [f"chapters/{p.stem}.ipynb" for p in pathlib.Path("chapters").glob("*.ipynb") if p.stem not in keep]
cfg.setdefault("execute", {})["exclude_patterns"] = skip
cfg["sphinx"]["config"]["nb_execution_raise_on_error"] = True
# local_extensions paths are relative to the config file, which now lives elsewhere: make them absolute
cfg["sphinx"]["local_extensions"] = {
    name: str(pathlib.Path(path).resolve()) for name, path in cfg["sphinx"].get("local_extensions", {}).items()
}
pathlib.Path(sys.argv[1]).write_text(yaml.safe_dump(cfg))
PY
log="$out/build.log"
mkdir -p "$out"
rc=0
SKIPFLOW_PROGRESS=0 .venv/bin/jupyter-book build . --config "$cfg" --path-output "$out" -n --keep-going \
  > "$log" 2>&1 || rc=$?
grep -E "WARNING|ERROR|build succeeded|Traceback" "$log" || true
status=0
if [ "$rc" -ne 0 ]; then
  echo "FAILED: jupyter-book exited with status $rc (a cell failed, or the build crashed; see $log)"; status=1
fi
for name in "$@"; do
  # count, not grep -q: under pipefail an early-exiting grep -q makes the pipeline "fail" and hides the match
  count=$(grep -E "(WARNING|ERROR)" "$log" | grep -c "$name" || true)
  if [ "$count" -gt 0 ]; then
    echo "FAILED: warnings or errors in $name (see $log)"; status=1
  fi
done
echo "HTML: $out/_build/html/chapters/ ; log: $log"
exit $status
