"""Shared fixtures for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# One PyTorch thread per test process, as in the chapters (skipflow.setup_notebook). `make test` runs two
# test processes on two cores; with PyTorch's default of one thread per core each, the OpenMP threads of
# one process spin while the other computes, and a 7-second test took 130 seconds.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits():
    import skipflow

    return skipflow.data.load_digits()
