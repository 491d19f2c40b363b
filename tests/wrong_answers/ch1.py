"""Wrong answers to chapter 1's exercises: gradient norms with hooks, and init standard deviations."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from wrong_answers import Entry, Wrong


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def hooks_reference(model, x, y):
    linears = _linears(model)
    norms = [None] * len(linears)

    def recorder(i):
        def hook(grad):
            norms[i] = grad.norm().item()

        return hook

    handles = [m.weight.register_hook(recorder(i)) for i, m in enumerate(linears)]
    try:
        F.cross_entropy(model(x), y).backward()
    finally:
        for handle in handles:
            handle.remove()
    return norms


def no_hook(model, x, y):
    """The right numbers, read from .grad after backward: the mechanism the exercise asks for is skipped."""
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in _linears(model)]


def hooks_left_registered(model, x, y):
    """Registers the hooks but never removes them."""
    linears = _linears(model)
    norms = [None] * len(linears)
    for i, m in enumerate(linears):
        m.weight.register_hook(lambda grad, i=i: norms.__setitem__(i, grad.norm().item()))
    F.cross_entropy(model(x), y).backward()
    return norms


def module_hooks(model, x, y):
    """Hooks on the modules' outputs: records ‖∂𝓛/∂output‖, not the weight gradient."""
    linears = _linears(model)
    norms = [None] * len(linears)
    handles = [
        m.register_full_backward_hook(lambda mod, gin, gout, i=i: norms.__setitem__(i, gout[0].norm().item()))
        for i, m in enumerate(linears)
    ]
    with warnings.catch_warnings():  # PyTorch warns that the first layer's input needs no gradient: expected
        warnings.simplefilter("ignore", UserWarning)
        F.cross_entropy(model(x), y).backward()
    for handle in handles:
        handle.remove()
    return norms


def appended_in_backward_order(model, x, y):
    """Appends in the order backpropagation visits the layers: last layer first."""
    norms = []
    handles = [m.weight.register_hook(lambda g: norms.append(g.norm().item())) for m in _linears(model)]
    F.cross_entropy(model(x), y).backward()
    for handle in handles:
        handle.remove()
    return norms


_FIRST_CASE: list[float] = []


def hardcoded(model, x, y):
    """Returns the norms of the first case the checker tries, whatever the model."""
    if not _FIRST_CASE:
        from skipflow.checks.ch1 import _grad_cases
        from skipflow.probes import layer_grad_norms

        _, first, fx, fy = _grad_cases()[0]
        _FIRST_CASE.extend(layer_grad_norms(first, fx, fy).tolist())
    return list(_FIRST_CASE)


def hardcoded_by_depth(model, x, y):
    """Looks up hard-coded norms by the number of layers (the first two cases the checker tries)."""
    from skipflow.checks.ch1 import _grad_cases
    from skipflow.probes import layer_grad_norms

    table = {}
    for _, net, cx, cy in _grad_cases()[:2]:
        table[len(_linears(net))] = layer_grad_norms(net, cx, cy).tolist()
    return table[len(_linears(model))]


def skips_first_layer(model, x, y):
    return hooks_reference(model, x, y)[1:]


def with_biases(model, x, y):
    """Hooks every parameter, biases included."""
    params = [p for m in _linears(model) for p in (m.weight, m.bias)]
    norms = [None] * len(params)
    handles = [
        p.register_hook(lambda g, i=i: norms.__setitem__(i, g.norm().item())) for i, p in enumerate(params)
    ]
    F.cross_entropy(model(x), y).backward()
    for handle in handles:
        handle.remove()
    return norms


def dict_of_norms(model, x, y):
    return {f"layer{i}": v for i, v in enumerate(hooks_reference(model, x, y))}


def std_reference(fan_in, fan_out, scheme):
    if scheme == "default":
        return (1 / math.sqrt(fan_in)) / math.sqrt(3)
    if scheme == "xavier":
        return math.sqrt(2 / (fan_in + fan_out))
    if scheme == "kaiming":
        return math.sqrt(2 / fan_in)
    raise ValueError(f"unknown scheme {scheme!r}")


def _except(scheme, wrong):
    return lambda i, o, s: wrong(i, o) if s == scheme else std_reference(i, o, s)


def std_hardcoded(fan_in, fan_out, scheme):
    """The values for a 64 × 64 layer, the first case the checker tries."""
    return std_reference(64, 64, scheme)


CATALOGUE = [
    Entry(
        checker="grad_norms_with_hooks",
        reference=hooks_reference,
        wrong=[
            Wrong("hardcoded", "the first case's norms", hardcoded, "Linear layers"),
            Wrong("hardcoded", "norms looked up by depth", hardcoded_by_depth, "yours differ"),
            Wrong("mechanism", "no hook: reads .grad after backward", no_hook, "no hook was registered"),
            Wrong("mechanism", "hooks left registered", hooks_left_registered, "still registered"),
            Wrong("mechanism", "module hooks: gradient of the output", module_hooks, "yours differ"),
            Wrong("other", "appended in backward order", appended_in_backward_order, "reverse order"),
            Wrong(
                "other", "squared norms", lambda m, x, y: [v**2 for v in hooks_reference(m, x, y)], "squared"
            ),
            Wrong(
                "other",
                "norms of the weights",
                lambda m, x, y: [mod.weight.norm().item() for mod in _linears(m)],
                "norms of the weights themselves",
            ),
            Wrong("off_by_one", "skips the first layer", skips_first_layer, "Linear layers"),
            Wrong("off_by_one", "biases too", with_biases, "biases are not asked for"),
            Wrong("shape", "a dict of norms", dict_of_norms, "should be a tensor or a list of numbers"),
        ],
    ),
    Entry(
        checker="init_std",
        reference=std_reference,
        wrong=[
            Wrong("hardcoded", "the 64 × 64 values for every layer", std_hardcoded, "should be"),
            Wrong(
                "mechanism",
                "Kaiming without ReLU's gain",
                _except("kaiming", lambda i, o: math.sqrt(1 / i)),
                "ReLU's gain",
            ),
            Wrong(
                "mechanism",
                "Kaiming with fan_out",
                _except("kaiming", lambda i, o: math.sqrt(2 / o)),
                "uses fan_in",
            ),
            Wrong(
                "mechanism",
                "Xavier with fan_in only",
                _except("xavier", lambda i, o: math.sqrt(1 / i)),
                "averages",
            ),
            Wrong(
                "mechanism",
                "Xavier's uniform bound",
                _except("xavier", lambda i, o: math.sqrt(6 / (i + o))),
                "uniform init",
            ),
            Wrong(
                "mechanism", "the default's bound", _except("default", lambda i, o: 1 / math.sqrt(i)), "b/√3"
            ),
            Wrong(
                "other", "the variance", lambda i, o, s: std_reference(i, o, s) ** 2, "That is the variance"
            ),
            Wrong(
                "off_by_one",
                "fan_in counts the bias",
                lambda i, o, s: std_reference(i + 1, o, s),
                "counted the bias",
            ),
            Wrong(
                "shape", "a one-element list", lambda i, o, s: [std_reference(i, o, s)], "should be a number"
            ),
            Wrong(
                "shape",
                "a tensor of both bounds",
                lambda i, o, s: torch.tensor([-1.0, 1.0]) * std_reference(i, o, s),
                "single number",
            ),
        ],
    ),
]
