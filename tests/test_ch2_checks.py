"""Chapter 2's checkers accept the reference, reject plausible mistakes with a useful message, report the
placeholder as "not solved yet", and turn a crash into feedback."""

from __future__ import annotations

import skipflow
import torch
from torch import nn

checks = skipflow.checks


def _verdict(capsys, checker, answer) -> tuple[bool, str]:
    ok = checker(answer)
    return ok, capsys.readouterr().out


# ---------------------------------------------------------------- projection_block
class _Block(nn.Module):
    def __init__(self, n_in, n_out, shortcut="auto", after=None):
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU(), nn.Linear(n_out, n_out))
        if shortcut == "auto":
            shortcut = "identity" if n_in == n_out else "linear"
        self.shortcut = nn.Identity() if shortcut == "identity" else nn.Linear(n_in, n_out, bias=False)
        self.after = after

    def forward(self, x):
        out = self.shortcut(x) + self.branch(x)
        return self.after(out) if self.after else out


def test_projection_block_accepts_reference(capsys):
    ok, out = _verdict(capsys, checks.projection_block, lambda i, o: _Block(i, o))
    assert ok and "correct" in out


def test_projection_block_rejects_always_projecting(capsys):
    ok, out = _verdict(capsys, checks.projection_block, lambda i, o: _Block(i, o, shortcut="linear"))
    assert not ok and "should be the identity" in out


def test_projection_block_rejects_relu_after_sum(capsys):
    ok, out = _verdict(capsys, checks.projection_block, lambda i, o: _Block(i, o, after=torch.relu))
    assert not ok and "I + ∂F/∂x" in out


def test_projection_block_rejects_missing_attributes(capsys):
    ok, out = _verdict(capsys, checks.projection_block, lambda i, o: nn.Linear(i, o))
    assert not ok and "`branch`" in out


def test_projection_block_rejects_plain_block(capsys):
    class Plain(_Block):
        def forward(self, x):
            return self.branch(x)

    ok, out = _verdict(capsys, checks.projection_block, lambda i, o: Plain(i, o))
    assert not ok and "I + ∂F/∂x" in out


def test_projection_block_placeholder_and_crash(capsys):
    ok, out = _verdict(capsys, checks.projection_block, lambda i, o: None)
    assert not ok and "not solved yet" in out
    ok, out = _verdict(capsys, checks.projection_block, None)
    assert not ok and "not solved yet" in out

    def crash(i, o):
        raise ZeroDivisionError("oops")

    ok, out = _verdict(capsys, checks.projection_block, crash)
    assert not ok and "ZeroDivisionError" in out and "Traceback" not in out


# ---------------------------------------------------------------- end_to_end_singular_values
def _stack(blocks, h):
    h = h.unsqueeze(0)
    for b in blocks:
        h = b(h)
    return h.squeeze(0)


def _reference_svals(blocks, x):
    return torch.linalg.svdvals(torch.autograd.functional.jacobian(lambda v: _stack(blocks, v), x))


def test_svals_accepts_reference(capsys):
    ok, out = _verdict(capsys, checks.end_to_end_singular_values, _reference_svals)
    assert ok and "correct" in out


def test_svals_rejects_increasing_order(capsys):
    ok, out = _verdict(capsys, checks.end_to_end_singular_values, lambda b, x: _reference_svals(b, x).flip(0))
    assert not ok and "increasing order" in out


def test_svals_rejects_branches_only(capsys):
    def branches_only(blocks, x):
        h, product = x, torch.eye(x.numel(), dtype=x.dtype)
        for b in blocks:
            product = torch.autograd.functional.jacobian(b.branch, h) @ product
            h = b(h.unsqueeze(0)).squeeze(0).detach()
        return torch.linalg.svdvals(product)

    ok, out = _verdict(capsys, checks.end_to_end_singular_values, branches_only)
    assert not ok and "I + J_l" in out


def test_svals_rejects_last_block_only(capsys):
    ok, out = _verdict(capsys, checks.end_to_end_singular_values, lambda b, x: _reference_svals(b[:1], x))
    assert not ok and "largest singular value" in out


def test_svals_placeholder_and_crash(capsys):
    ok, out = _verdict(capsys, checks.end_to_end_singular_values, lambda b, x: None)
    assert not ok and "not solved yet" in out
    ok, out = _verdict(capsys, checks.end_to_end_singular_values, lambda b, x: b[0](x.reshape(2, 3)))
    assert not ok and "raised" in out and "Traceback" not in out
    ok, out = _verdict(capsys, checks.end_to_end_singular_values, lambda b, x: "abc")
    assert not ok and "not quite" in out


# ---------------------------------------------------------------- residual_backward
def _reference_backward(g, x, w1, b1, w2, b2):
    mask = (w1 @ x + b1 > 0).to(g.dtype)
    return g + w1.T @ (mask * (w2.T @ g))


def test_backward_accepts_reference(capsys):
    ok, out = _verdict(capsys, checks.residual_backward, _reference_backward)
    assert ok and "correct" in out


def test_backward_rejects_missing_shortcut(capsys):
    ok, out = _verdict(capsys, checks.residual_backward, lambda g, x, *w: _reference_backward(g, x, *w) - g)
    assert not ok and "add g" in out


def test_backward_rejects_missing_mask(capsys):
    ok, out = _verdict(capsys, checks.residual_backward, lambda g, x, w1, b1, w2, b2: g + w1.T @ (w2.T @ g))
    assert not ok and "mask" in out


def test_backward_rejects_wrong_transposes(capsys):
    def transposed(g, x, w1, b1, w2, b2):
        mask = (w1 @ x + b1 > 0).to(g.dtype)
        return g + w1 @ (mask * (w2 @ g))

    ok, out = _verdict(capsys, checks.residual_backward, transposed)
    assert not ok and "transposes" in out


def test_backward_placeholder_and_crash(capsys):
    ok, out = _verdict(capsys, checks.residual_backward, lambda *a: None)
    assert not ok and "not solved yet" in out
    ok, out = _verdict(capsys, checks.residual_backward, lambda g, x, w1, b1, w2, b2: w1 @ torch.ones(3))
    assert not ok and "RuntimeError" in out and "Traceback" not in out
