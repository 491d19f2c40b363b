"""Say where `make test` will compute, or stop with a clear message if the requested device is missing.

`make test DEVICE=cuda` (SKIPFLOW_DEVICE=cuda) on a machine without a GPU must fail here, at once, rather
than run every chapter on the CPU and report a GPU run that never happened.
"""

from __future__ import annotations

import sys

from skipflow import runtime

try:
    line = runtime.describe()
except ValueError as exc:
    sys.exit(f"make test: cannot compute where you asked. {exc}")
print(f"make test computes on: {line}")
