"""Unit tests of skipflow.runtime and skipflow.data."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skipflow
import torch
from skipflow import data, runtime
from sklearn.datasets import load_digits as sk_digits

ROOT = Path(__file__).resolve().parent.parent


def test_seed_everything_makes_all_generators_repeat():
    runtime.seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_seed_everything_returns_a_seeded_generator():
    a = torch.randperm(10, generator=runtime.seed_everything(1))
    b = torch.randperm(10, generator=runtime.seed_everything(1))
    c = torch.randperm(10, generator=runtime.seed_everything(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "bad, err", [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)]
)
def test_seed_everything_rejects_bad_seeds(bad, err):
    with pytest.raises(err, match="`seed`"):
        runtime.seed_everything(bad)


def test_device_prefers_cuda_then_cpu(monkeypatch):
    monkeypatch.delenv("SKIPFLOW_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    dev = runtime.device()
    if expected:
        assert dev.type == "cuda"
    else:
        assert dev.type in ("cpu", "mps")
    assert runtime.device("cpu") == torch.device("cpu")


def test_device_rejects_unknown_and_unavailable(monkeypatch):
    with pytest.raises(ValueError, match="`prefer` must be one of"):
        runtime.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            runtime.device("cuda")
    monkeypatch.setenv("SKIPFLOW_DEVICE", "cpu")
    assert runtime.device() == torch.device("cpu")


def test_environment_detection(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert runtime.in_ci()
    monkeypatch.setenv("CI", "false")
    assert not runtime.in_ci()
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert not runtime.in_colab()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")
    assert runtime.in_colab()
    monkeypatch.setenv("SKIPFLOW_PROGRESS", "0")
    assert not runtime.show_progress()
    monkeypatch.setenv("SKIPFLOW_PROGRESS", "1")
    assert runtime.show_progress()
    assert "torch" in runtime.describe()


def test_load_digits_matches_sklearn_and_is_standardized():
    split = data.load_digits()
    assert split.x_train.shape[1] == 64 and split.in_features == 64
    assert len(split.x_train) + len(split.x_test) == len(sk_digits().target) == 1797
    assert split.n_classes == 10
    # standardized with training statistics: each non-constant pixel has mean 0 and std 1 on train
    std = split.x_train.std(0, unbiased=False)
    varying = std > 0
    assert torch.allclose(split.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(std[varying], torch.ones(int(varying.sum())), atol=1e-4)
    # stratified: every class appears in the test set in proportion (within one image)
    counts = torch.bincount(split.y_test, minlength=10).float()
    expected = torch.bincount(torch.from_numpy(sk_digits().target), minlength=10).float() * 0.25
    assert (counts - expected).abs().max() <= 1.0


def test_digits_file_is_sklearns_digits():
    pixels, labels = data._digits_file()
    bunch = sk_digits()
    assert np.array_equal(pixels, bunch.data) and np.array_equal(labels, bunch.target)


def test_stratified_split_partitions_every_class_in_proportion_and_shuffles():
    labels = np.repeat(np.arange(3), [40, 60, 100])
    train, test = data.stratified_split(labels, 0.25, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(200))
    assert np.bincount(labels[test]).tolist() == [10, 15, 25]
    assert not np.array_equal(train, np.sort(train))  # a prefix of the training set is a random sample
    again, _ = data.stratified_split(labels, 0.25, seed=0)
    other, _ = data.stratified_split(labels, 0.25, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_importing_skipflow_does_not_import_sklearn():
    # The split is done here, so the setup cell of every chapter skips scikit-learn's ~2 s import.
    code = "import sys, skipflow; skipflow.data.load_digits(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_digits_is_a_fixed_split_and_images_reshape():
    a, b = data.load_digits(seed=0), data.load_digits(seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = data.load_digits(seed=1)
    assert not torch.equal(a.y_train, c.y_train)
    img = data.load_digits(images=True)
    assert img.x_train.shape[1:] == (1, 8, 8) and img.in_features == 64
    assert torch.equal(img.x_train.reshape(-1, 64), a.x_train)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"test_fraction": 0.0}, ValueError, "test_fraction"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
        ({"seed": -3}, ValueError, "seed"),
    ],
)
def test_load_digits_rejects_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        data.load_digits(**kwargs)


def test_make_regression_shapes_and_determinism():
    a = data.make_regression(n_train=50, n_test=20, in_features=3, seed=4)
    b = data.make_regression(n_train=50, n_test=20, in_features=3, seed=4)
    assert a.x_train.shape == (50, 3) and a.y_train.shape == (50, 1) and a.x_test.shape == (20, 3)
    assert torch.equal(a.y_test, b.y_test) and a.n_classes is None
    clean = data.make_regression(n_train=50, n_test=20, in_features=3, seed=4, noise=0.0)
    # noise is additive with the stated scale: the residual's std is close to 0.1
    assert 0.05 < float((a.y_train - clean.y_train).std()) < 0.15
    with pytest.raises(ValueError, match="`noise`"):
        data.make_regression(noise=-1)


def test_subset_and_to():
    split = data.load_digits()
    small = split.subset(100, seed=0)
    assert len(small.x_train) == 100 and torch.equal(small.x_test, split.x_test)
    assert torch.equal(small.x_train, split.subset(100, seed=0).x_train)
    with pytest.raises(ValueError, match="n_train"):
        split.subset(10_000)
    assert split.to("cpu").x_train.device.type == "cpu"


def test_batches_cover_each_epoch_once():
    x = torch.arange(10).float().unsqueeze(1)
    y = torch.arange(10)
    stream = data.batches(x, y, 5, torch.Generator().manual_seed(0))
    seen = torch.cat([next(stream)[1] for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(x, y, 11, torch.Generator()))
    with pytest.raises(ValueError, match="must match"):
        next(data.batches(x, y[:5], 2, torch.Generator()))


def test_glue_falls_back_to_printing(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    assert skipflow.glue("answer", torch.tensor(42.0)) == 42.0
    assert "answer = 42.0" in capsys.readouterr().out
    import numpy as np

    glued = skipflow.glue("ratio", np.float64(0.5))  # a NumPy scalar reaches the text as a plain number
    assert type(glued) is float and "ratio = 0.5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="`name`"):
        skipflow.glue("not an identifier", 1)


def test_cuda_is_made_comparable_with_the_cpu(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
    )
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        runtime.make_cuda_comparable()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.use_deterministic_algorithms(before[2])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: DEVICE=cuda really runs")
def test_make_test_on_cuda_without_a_gpu_says_so():
    """`make test DEVICE=cuda` must stop at once with a clear message, not run everything on the CPU."""
    result = subprocess.run(
        ["make", "--no-print-directory", "check-device", "DEVICE=cuda"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no CUDA device" in result.stdout + result.stderr
    ok = subprocess.run(
        ["make", "--no-print-directory", "check-device"], cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "device: cpu" in ok.stdout
