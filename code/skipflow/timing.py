"""Timing small operations fairly on a busy machine: interleaved repeats and a robust summary.

Timing A for a while and then B for a while confounds them with whatever else the machine did meanwhile.
:func:`interleaved` alternates between the candidates in every repeat, so slow spells hit all of them, and
reports every repeat so the noise can be shown next to the median.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from skipflow._validate import check_int


def interleaved(
    fns: Mapping[str, Callable[[], object]], repeats: int = 30, number: int = 20, warmup: int = 3
) -> dict[str, np.ndarray]:
    """Seconds per call of each function, one entry per repeat, with the functions interleaved.

    Each repeat runs every function ``number`` times in a row (in a fixed order) and records the mean time
    per call. ``warmup`` untimed calls of each function come first.
    """
    if not isinstance(fns, Mapping) or not fns or not all(callable(f) for f in fns.values()):
        raise TypeError("`fns` must be a non-empty dict mapping a name to a function of no arguments.")
    check_int("repeats", repeats, minimum=1)
    check_int("number", number, minimum=1)
    check_int("warmup", warmup, minimum=0)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: np.empty(repeats) for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name][r] = (time.perf_counter() - start) / number
    return times


def summarize(values: np.ndarray) -> tuple[float, float, float]:
    """Median and the 25th and 75th percentiles (the interquartile range shows the noise)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError("`values` must be a non-empty 1-D array of measurements.")
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return float(q50), float(q25), float(q75)
