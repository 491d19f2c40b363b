"""What residual connections cost in memory, measured rather than guessed.

Three instruments:

- :func:`saved_bytes` counts the bytes autograd keeps for the backward pass, by hooking every tensor it
  saves (``torch.autograd.graph.saved_tensors_hooks``) and counting each storage once;
- :class:`LiveBytes` follows every tensor storage the operations inside it allocate and frees, so it reports
  the peak of live memory of real eager execution (on any device, the CPU included);
- :func:`run_freeing_early` executes a model op by op (via ``torch.fx``) and drops every intermediate value
  right after its last use: the best any executor can do without recomputing.

:func:`checkpoint_blocks` wraps a :class:`skipflow.models.Net` so that its blocks run under activation
checkpointing (``torch.utils.checkpoint``, non-reentrant).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.checkpoint import checkpoint

from skipflow._validate import check_int
from skipflow.probes import default_loss


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    return model


def _state_storages(model: nn.Module) -> set[int]:
    """Data pointers of the storages of the model's parameters and buffers (they exist anyway)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return {t.untyped_storage().data_ptr() for t in tensors}


def saved_bytes(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    include_state: bool = False,
) -> int:
    """Bytes of the tensors autograd saves for backward during one forward pass of ``model`` on ``x``.

    Every tensor that an operation saves goes through a ``saved_tensors_hooks`` pack hook; storages are
    counted once each, however many operations save them (a ReLU saves its output and the next Linear saves
    the same tensor as its input). The model's parameters and buffers are left out unless
    ``include_state=True``: they are in memory whether or not anyone trains. With ``y`` the loss is part of
    the pass too (``loss_fn`` defaults to cross-entropy for class labels, MSE otherwise).
    """
    _check_model(model)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}.")
    skip = set() if include_state else _state_storages(model)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in skip:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        if y is not None:
            (loss_fn or default_loss)(out, y)
    return int(sum(seen.values()))


class LiveBytes(TorchDispatchMode):
    """Track the bytes of tensor storage that operations allocate while this context is active.

    ``current`` is the number of bytes allocated inside the context and still alive; ``peak`` is the
    largest value ``current`` reached. A storage counts as freed when PyTorch frees it (a weak reference
    to the storage fires), so the numbers follow real eager execution, autograd's saved tensors included.
    Tensors that existed before (the input, the parameters) are not counted.

    Example::

        with LiveBytes() as mem:
            model(x)
        print(mem.peak)
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._tracked: dict[int, int] = {}

    def _release(self, ptr: int) -> None:
        self.current -= self._tracked.pop(ptr, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0 or ptr in self._tracked or ptr in inputs:
                continue  # empty, already counted, or a view of an input (no new memory)
            self._tracked[ptr] = storage.nbytes()
            self.current += storage.nbytes()
            weakref.finalize(storage, self._release, ptr)
        self.peak = max(self.peak, self.current)
        return out


def eager_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of activations alive at once during an ordinary eager inference pass (no_grad)."""
    _check_model(model)
    with torch.no_grad(), LiveBytes() as mem:
        model(x)
    return mem.peak


def run_freeing_early(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Run ``model(x)`` op by op, freeing each value right after its last use; return (output, peak bytes).

    The model is traced with ``torch.fx`` into a list of operations. A value whose last consumer has run
    is dropped at once, which is the smallest peak any executor reaches without recomputation. The peak
    counts activations only (the input, parameters and buffers are not counted), under ``no_grad``.
    """
    _check_model(model)
    graph_module = torch.fx.symbolic_trace(model)
    nodes = list(graph_module.graph.nodes)
    last_use: dict[torch.fx.Node, torch.fx.Node] = {}
    for node in nodes:
        for used in node.all_input_nodes:
            last_use[used] = node
    modules = dict(graph_module.named_modules())
    env: dict[torch.fx.Node, Any] = {}

    def execute(node: torch.fx.Node) -> Any:
        # A function of its own, so that its local references to the inputs die when it returns.
        args = torch.fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "placeholder":
            return x
        if node.op == "get_attr":
            value: Any = graph_module
            for part in node.target.split("."):
                value = getattr(value, part)
            return value
        if node.op == "call_module":
            return modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return args[0]  # the output node

    output = None
    with torch.no_grad(), LiveBytes() as mem:
        for node in nodes:
            if node.op == "output":
                output = execute(node)
            else:
                env[node] = execute(node)
            for used in node.all_input_nodes:
                if last_use.get(used) is node:
                    del env[used]
        env.clear()
    return output, mem.peak


class _CheckpointedBlocks(nn.Module):
    def __init__(self, blocks: nn.ModuleList, segments: int) -> None:
        super().__init__()
        self.blocks = blocks
        n = len(blocks)
        bounds = [round(i * n / segments) for i in range(segments + 1)]
        self.segments = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def _run(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for block in self.blocks[start:stop]:
            h = block(h)
        return h

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for start, stop in self.segments:
            h = checkpoint(self._run, h, start, stop, use_reentrant=False)
        return h


class CheckpointedNet(nn.Module):
    """A :class:`skipflow.models.Net` whose blocks run in ``segments`` checkpointed segments.

    It shares the parameters of the wrapped net. In the forward pass each segment keeps only its input;
    the backward pass recomputes the segment's activations from it (one extra forward per segment).
    """

    def __init__(self, net: nn.Module, segments: int) -> None:
        super().__init__()
        if not (hasattr(net, "stem") and hasattr(net, "blocks")):
            raise TypeError("`net` must be a skipflow.models.Net (it needs `.stem`, `.blocks`, `.final`).")
        check_int("segments", segments, minimum=1)
        if segments > len(net.blocks):
            raise ValueError(f"`segments`={segments} but the net has only {len(net.blocks)} blocks.")
        self.net = net
        self.body = _CheckpointedBlocks(net.blocks, segments)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.net.final(self.body(self.net.stem(x))))


def checkpoint_blocks(net: nn.Module, segments: int) -> CheckpointedNet:
    """Wrap ``net`` so its blocks run under activation checkpointing in ``segments`` segments.

    Chen et al. (2016) pick about √L segments for L blocks: memory then grows like √L instead of L.
    """
    return CheckpointedNet(net, segments)


def training_step_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """Memory of one training step: what stays alive after the forward pass, and the peak over the step.

    ``after_forward`` is what the forward pass leaves alive for the backward pass (saved activations, and
    for a checkpointed model the segment inputs); ``peak`` is the largest live total during forward and
    backward together, gradients included. Bytes allocated before the step (input, parameters) are not
    counted.
    """
    _check_model(model)
    model.zero_grad(set_to_none=True)
    with LiveBytes() as mem:
        loss = default_loss(model(x), y)
        after_forward = mem.current
        loss.backward()
        del loss
    model.zero_grad(set_to_none=True)
    return {"after_forward": after_forward, "peak": mem.peak}
