"""Where the code runs: seeding, device choice, and detecting Colab, CI and the book build."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

from skipflow._validate import check_choice, check_int

_TRUE = {"1", "true", "yes", "on"}


SEED_OFFSET_VARIABLE = "SKIPFLOW_SEED_OFFSET"


def seed_offset() -> int:
    """The integer that ``SKIPFLOW_SEED_OFFSET`` adds to every seed the course uses (0 when unset).

    ``make test`` runs the chapters with several offsets, so a claim that holds only for the seeds a
    notebook happens to use fails the test run instead of reaching the reader.
    """
    raw = os.environ.get(SEED_OFFSET_VARIABLE, "").strip()
    if not raw:
        return 0
    try:
        offset = int(raw)
    except ValueError:
        raise ValueError(
            f"`{SEED_OFFSET_VARIABLE}` must be a whole number such as 0, 1 or 2; got {raw!r}."
        ) from None
    if offset < 0:
        raise ValueError(f"`{SEED_OFFSET_VARIABLE}` must be >= 0, got {offset}.")
    return offset


def shifted(seed: int) -> int:
    """``seed`` plus :func:`seed_offset`: the one place where every seed of the course is shifted."""
    return check_int("seed", seed, minimum=0) + seed_offset()


def manual_seed(seed: int) -> None:
    """Seed PyTorch's global generator (CPU and CUDA) with ``seed`` shifted by :func:`seed_offset`.

    Use it wherever ``torch.manual_seed`` would go, typically right before building a model, so the
    model's initial weights follow ``SKIPFLOW_SEED_OFFSET``.
    """
    torch.manual_seed(shifted(seed))  # also seeds CUDA on every device


def generator(seed: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with ``seed`` shifted by :func:`seed_offset`.

    Random draws stay on the CPU even when the models run on a GPU (move the tensor afterwards), so a seed
    means the same data on every device.
    """
    return torch.Generator().manual_seed(shifted(seed))


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's generators and return a fresh seeded ``torch.Generator``.

    Every seed is shifted by :func:`seed_offset`. The returned generator is what the data loaders in
    :mod:`skipflow.train` use for shuffling, so a run is reproducible even if other code draws random
    numbers in between.
    """
    value = shifted(seed)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds CUDA on every device
    return torch.Generator().manual_seed(value)


def device(prefer: str | None = None) -> torch.device:
    """Pick the device to compute on: CUDA if present, else Apple's MPS, else the CPU.

    ``prefer`` (or the environment variable ``SKIPFLOW_DEVICE``) forces one of ``"cuda"``, ``"mps"``,
    ``"cpu"``; asking for a device that is not available raises a ``ValueError`` saying so, rather than
    silently computing on the CPU. On CUDA, :func:`make_cuda_comparable` runs first, so the numbers a chapter
    measures on a GPU can be compared with the CPU's.
    """
    prefer = prefer if prefer is not None else os.environ.get("SKIPFLOW_DEVICE") or None
    if prefer is not None:
        check_choice("prefer", prefer, ["cuda", "mps", "cpu"])
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "`prefer`='cuda' (or SKIPFLOW_DEVICE=cuda) but PyTorch sees no CUDA device: this machine "
                "has no GPU, or torch was installed without CUDA. Unset SKIPFLOW_DEVICE (or use 'cpu') to "
                "run on the CPU."
            )
        if prefer == "mps" and not _mps_available():
            raise ValueError("`prefer`='mps' but MPS is not available; use 'cpu' or None.")
        chosen = torch.device(prefer)
    elif torch.cuda.is_available():
        chosen = torch.device("cuda")
    elif _mps_available():
        chosen = torch.device("mps")
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda":
        make_cuda_comparable()
    return chosen


def make_cuda_comparable() -> None:
    """Make CUDA results comparable with the CPU's: no TF32, deterministic algorithms.

    TF32 rounds matrix-multiply inputs to 10 mantissa bits, which would move the chapters' float32 numbers
    far more than their tolerances allow; deterministic algorithms make a rerun give the same numbers. cuBLAS
    needs ``CUBLAS_WORKSPACE_CONFIG`` for that, set here before its first use.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def in_ci() -> bool:
    """True under continuous integration (most CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def show_progress() -> bool:
    """Whether loops should draw progress bars.

    On by default for readers. ``SKIPFLOW_PROGRESS=0`` turns bars off; the Makefile sets it for the test
    run and the book build, so the HTML shows results rather than stale progress bars.
    """
    value = os.environ.get("SKIPFLOW_PROGRESS")
    if value is not None:
        return value.strip().lower() in _TRUE
    return not in_ci()


def describe() -> str:
    """One line about the environment, printed by the setup cell of every chapter."""
    where = "Colab" if in_colab() else ("CI" if in_ci() else "local")
    line = f"torch {torch.__version__} | device: {device()} | {where}"
    offset = seed_offset()
    return line + (f" | seeds shifted by {offset} ({SEED_OFFSET_VARIABLE})" if offset else "")


def set_threads(n: int) -> None:
    """Limit PyTorch's intra-op threads (used by benchmarks to make timings comparable)."""
    torch.set_num_threads(check_int("n", n, minimum=1))
