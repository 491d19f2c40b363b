"""Small datasets that ship with the code: sklearn's bundled digits and synthetic tasks.

Nothing here downloads anything. The digits are the 1,797-image file that ships inside the scikit-learn wheel
(``sklearn/datasets/data/digits.csv.gz``, the file ``sklearn.datasets.load_digits`` reads), so every
experiment in the course runs offline in seconds. The file is read directly and split here, without
importing scikit-learn: that import alone costs about 2 s, paid by every chapter's first cell.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from skipflow import runtime
from skipflow._validate import check_float, check_int


@dataclass(frozen=True)
class Split:
    """A train/test split of tensors. ``x_*`` are float32 inputs, ``y_*`` are targets."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int | None = None

    @property
    def in_features(self) -> int:
        """The number of input features of one example (for images: channels × height × width)."""
        return int(math.prod(self.x_train.shape[1:]))

    def to(self, device: torch.device | str) -> Split:
        """Return a copy with every tensor moved to ``device``."""
        return Split(
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.n_classes,
        )

    def subset(self, n_train: int, seed: int = 0) -> Split:
        """Keep ``n_train`` training examples (a seeded random choice); the test set is unchanged."""
        check_int("n_train", n_train, minimum=1)
        if n_train > len(self.x_train):
            raise ValueError(
                f"`n_train` is {n_train} but there are only {len(self.x_train)} training examples."
            )
        idx = torch.randperm(len(self.x_train), generator=runtime.generator(seed))
        idx = idx[:n_train]
        return Split(self.x_train[idx], self.y_train[idx], self.x_test, self.y_test, self.n_classes)


@cache
def _digits_file() -> tuple[np.ndarray, np.ndarray]:
    """The images (1797, 64) and labels (1797,) of the digits file inside the installed scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("The digits ship with scikit-learn: run `pip install scikit-learn`.")
    table = np.loadtxt(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)  # 64 pixel columns, then the label


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test indices with each class split in the same proportion.

    For every class, ``round(test_fraction × its count)`` of its examples, chosen at random, go to the test
    set; both index arrays are then shuffled, so any prefix (``x_train[:512]``) is a random sample.
    ``seed`` is shifted by ``SKIPFLOW_SEED_OFFSET``.
    """
    rng = np.random.default_rng(runtime.shifted(seed))
    test = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: round(test_fraction * len(members))])
    test_idx = np.concatenate(test)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return rng.permutation(train_idx), rng.permutation(test_idx)


def load_digits(test_fraction: float = 0.25, seed: int = 0, images: bool = False) -> Split:
    """sklearn's 8×8 handwritten digits (1,797 images, 10 classes) as standardized tensors.

    The split is stratified and fixed by ``seed``. Each pixel is standardized with the mean and standard
    deviation of the *training* set only (pixels that are constant in training are left at zero), so no
    test information leaks into the inputs.

    Args:
        test_fraction: share of the images held out for testing, in (0, 1).
        seed: fixes the split.
        images: if True, inputs have shape (N, 1, 8, 8) for CNNs; otherwise (N, 64).
    """
    check_float("test_fraction", test_fraction, minimum=0.0, maximum=1.0, strict_min=True)
    if test_fraction >= 1.0:
        raise ValueError("`test_fraction` must be below 1 so that some images are left for training.")
    check_int("seed", seed, minimum=0)
    pixels, labels = _digits_file()
    x, y = pixels.astype(np.float32), labels.copy()
    train_idx, test_idx = stratified_split(y, test_fraction, seed)
    x_tr, x_te, y_tr, y_te = x[train_idx], x[test_idx], y[train_idx], y[test_idx]
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0  # constant border pixels: centre them, do not divide by zero
    x_tr = (x_tr - mean) / std
    x_te = (x_te - mean) / std
    shape = (-1, 1, 8, 8) if images else (-1, 64)
    return Split(
        torch.from_numpy(x_tr).reshape(shape),
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te).reshape(shape),
        torch.from_numpy(y_te),
        n_classes=10,
    )


def make_regression(
    n_train: int = 512,
    n_test: int = 256,
    in_features: int = 10,
    noise: float = 0.1,
    seed: int = 0,
) -> Split:
    """A synthetic nonlinear regression task: y = sin(a·x) + 0.5 (b·x)² / d + noise.

    ``a`` and ``b`` are random directions fixed by ``seed``; inputs are standard normal. Targets have
    shape (N, 1) for use with ``torch.nn.MSELoss``.
    """
    check_int("n_train", n_train, minimum=1)
    check_int("n_test", n_test, minimum=1)
    check_int("in_features", in_features, minimum=1)
    check_float("noise", noise, minimum=0.0)
    check_int("seed", seed, minimum=0)
    gen = runtime.generator(seed)
    a = torch.randn(in_features, generator=gen) / math.sqrt(in_features)
    b = torch.randn(in_features, generator=gen) / math.sqrt(in_features)
    x = torch.randn(n_train + n_test, in_features, generator=gen)
    y = torch.sin(x @ a) + 0.5 * (x @ b) ** 2
    y = y + noise * torch.randn(y.shape, generator=gen)
    y = y.unsqueeze(1)
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes=None)


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield shuffled minibatches forever (an infinite stream of epochs), reproducibly.

    The last, smaller batch of each epoch is dropped so that every step sees ``batch_size`` examples
    (BatchNorm misbehaves on tiny batches).
    """
    check_int("batch_size", batch_size, minimum=1)
    if len(x) != len(y):
        raise ValueError(f"`x` has {len(x)} rows but `y` has {len(y)}; they must match.")
    n = len(x)
    if batch_size > n:
        raise ValueError(f"`batch_size`={batch_size} is larger than the dataset ({n} examples).")
    while True:
        order = torch.randperm(n, generator=generator).to(x.device)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]
