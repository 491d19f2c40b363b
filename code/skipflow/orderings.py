"""Where normalization, activation and the addition sit: the block orderings and shortcut variants of
He, Zhang, Ren & Sun (2016), "Identity Mappings in Deep Residual Networks".

One configurable block, :class:`OrderedBlock`, covers

- the five orderings of the paper's Fig. 4 (``ORDERINGS``): ``"original"``, ``"bn_after_add"``,
  ``"relu_before_add"``, ``"relu_only_preact"`` and ``"full_preact"``;
- the shortcut variants of the paper's Table 1 (``SHORTCUTS``): the identity, constant scaling
  (``shortcut_scale`` λ and ``branch_scale``), exclusive gating, shortcut-only gating, a 1×1 projection
  (a ``Linear`` layer for MLPs, a 1×1 convolution for CNNs), and dropout on the shortcut.

Every block computes ``after(s(h) + b(h) · F(h))``: ``s`` is the shortcut, ``b`` the branch weight (1,
a constant, or a gate) and ``after`` what follows the addition. :func:`ordered_net` stacks them into a
:class:`skipflow.models.Net`, so the probes in :mod:`skipflow.probes` work unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from skipflow import runtime
from skipflow._validate import check_choice, check_float, check_int
from skipflow.blocks import KINDS, make_activation, make_layer, make_norm
from skipflow.data import Split
from skipflow.models import Net, init_weights
from skipflow.train import History

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ORDERINGS = ("original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact")
SHORTCUTS = ("identity", "scaling", "exclusive_gate", "shortcut_gate", "projection", "dropout")

#: One line per ordering: the branch F, then what happens after the addition (the paper's Fig. 4).
ORDERING_RECIPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "original": (("weight", "BN", "ReLU", "weight", "BN"), ("ReLU",)),
    "bn_after_add": (("weight", "BN", "ReLU", "weight"), ("BN", "ReLU")),
    "relu_before_add": (("weight", "BN", "ReLU", "weight", "BN", "ReLU"), ()),
    "relu_only_preact": (("ReLU", "weight", "BN", "ReLU", "weight", "BN"), ()),
    "full_preact": (("BN", "ReLU", "weight", "BN", "ReLU", "weight"), ()),
}

#: A short human-readable name for each ordering, as in the paper's Fig. 4 (a)-(e).
ORDERING_LABELS = {
    "original": "(a) original",
    "bn_after_add": "(b) BN after addition",
    "relu_before_add": "(c) ReLU before addition",
    "relu_only_preact": "(d) ReLU-only pre-activation",
    "full_preact": "(e) full pre-activation",
}


_SHORT_LABELS = {
    "original": "(a)\noriginal",
    "bn_after_add": "(b)\nBN after\naddition",
    "relu_before_add": "(c)\nReLU before\naddition",
    "relu_only_preact": "(d)\nReLU-only\npre-act.",
    "full_preact": "(e)\nfull\npre-act.",
}


def has_clean_identity_path(ordering: str) -> bool:
    """True if nothing sits after the addition, so ``h_l = h_{l-1} + F(h_{l-1})`` exactly."""
    check_choice("ordering", ordering, ORDERINGS)
    return not ORDERING_RECIPES[ordering][1]


class _Gate(nn.Module):
    """g(h) = sigmoid(W_g h + b_g), one gate value per feature (or channel), b_g initialized to ``bias``."""

    def __init__(self, width: int, kind: str, bias: float) -> None:
        super().__init__()
        self.layer = nn.Linear(width, width) if kind == "linear" else nn.Conv2d(width, width, 1)
        nn.init.constant_(self.layer.bias, bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layer(h))


class ShortcutDropout(nn.Module):
    """Dropout on the shortcut as in the paper: keep each unit with probability 1 − p, *without*
    rescaling, so the shortcut is scaled by 1 − p in expectation (and by exactly 1 − p in eval mode)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = check_float("p", p, minimum=0.0, maximum=1.0)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return h * (1.0 - self.p)
        keep = torch.rand_like(h) >= self.p
        return h * keep


class OrderedBlock(nn.Module):
    """A residual block with two weight layers, one of the five orderings and one shortcut variant.

    Args:
        width: features (``kind="linear"``) or channels (``kind="conv"``) of the residual stream.
        ordering: one of ``ORDERINGS`` (the paper's Fig. 4).
        shortcut: one of ``SHORTCUTS`` (the paper's Table 1):

            - ``"identity"``: ``h + F(h)``;
            - ``"scaling"``: ``shortcut_scale · h + branch_scale · F(h)``;
            - ``"exclusive_gate"``: ``(1 − g(h)) · h + g(h) · F(h)``;
            - ``"shortcut_gate"``: ``(1 − g(h)) · h + F(h)``;
            - ``"projection"``: ``P h + F(h)`` with a learned ``P`` (Linear, or 1×1 conv);
            - ``"dropout"``: ``m ⊙ h + F(h)``, ``m`` a Bernoulli(1 − ``drop_p``) mask (not rescaled).

            The gates are ``g(h) = sigmoid(W_g h + b_g)`` with ``b_g`` initialized to ``gate_bias``.
        kind: ``"linear"`` or ``"conv"``.
        activation: the nonlinearity (ReLU in the paper).
        norm: ``"batch"`` (the paper), ``"layer"``, or ``None`` (no normalization at all).
    """

    def __init__(
        self,
        width: int,
        ordering: str = "full_preact",
        shortcut: str = "identity",
        kind: str = "linear",
        activation: str = "relu",
        norm: str | None = "batch",
        shortcut_scale: float = 0.5,
        branch_scale: float = 0.5,
        gate_bias: float = -6.0,
        drop_p: float = 0.5,
    ) -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        check_choice("ordering", ordering, ORDERINGS)
        check_choice("shortcut", shortcut, SHORTCUTS)
        check_choice("kind", kind, KINDS)
        self.ordering, self.shortcut_kind = ordering, shortcut
        self.shortcut_scale = check_float("shortcut_scale", shortcut_scale)
        self.branch_scale = check_float("branch_scale", branch_scale)
        check_float("gate_bias", gate_bias)
        check_float("drop_p", drop_p, minimum=0.0, maximum=1.0)

        def build(recipe: tuple[str, ...]) -> nn.Sequential:
            parts: list[nn.Module] = []
            for step in recipe:
                if step == "weight":
                    parts.append(make_layer(width, kind))
                elif step == "BN":
                    parts.append(make_norm(norm, width, kind))
                else:
                    parts.append(make_activation(activation))
            return nn.Sequential(*parts)

        branch_recipe, after_recipe = ORDERING_RECIPES[ordering]
        self.branch = build(branch_recipe)
        self.after = build(after_recipe)
        self.gate: nn.Module | None = None
        self.shortcut: nn.Module = nn.Identity()
        if shortcut in ("exclusive_gate", "shortcut_gate"):
            self.gate = _Gate(width, kind, gate_bias)
        elif shortcut == "projection":
            self.shortcut = nn.Linear(width, width) if kind == "linear" else nn.Conv2d(width, width, 1)
        elif shortcut == "dropout":
            self.shortcut = ShortcutDropout(drop_p)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        f = self.branch(h)
        s = self.shortcut(h)
        if self.shortcut_kind == "scaling":
            total = self.shortcut_scale * s + self.branch_scale * f
        elif self.gate is not None:
            g = self.gate(h)
            total = (1 - g) * s + (g * f if self.shortcut_kind == "exclusive_gate" else f)
        else:
            total = s + f
        return self.after(total)


def ordered_net(
    in_features: int,
    out_features: int,
    n_blocks: int,
    width: int = 64,
    ordering: str = "full_preact",
    shortcut: str = "identity",
    kind: str = "linear",
    activation: str = "relu",
    norm: str | None = "batch",
    final_norm: bool | None = None,
    init: str = "default",
    **block_options: float,
) -> Net:
    """A network of ``n_blocks`` :class:`OrderedBlock` s: ``stem → blocks → final → head``.

    - The stem is ``weight → BN → ReLU`` for the orderings whose blocks expect a normalized, activated
      input (``"original"``, ``"bn_after_add"``, ``"relu_before_add"``) and a bare weight layer for the
      pre-activation ones, whose blocks start with their own BN/ReLU.
      He et al. (2016b, appendix) differ here: they apply the first unit's activation right after conv1,
      *before* the split, so that the first unit's shortcut carries an activated signal too. This net
      keeps the first block's BN/ReLU on its branch only.
    - ``final`` sits before the head. For ``"full_preact"`` it is BN → ReLU and for
      ``"relu_only_preact"`` it is ReLU: the last block of a pre-activation net ends with a bare addition,
      and the paper adds "an extra activation right after its element-wise addition".
      ``final_norm=True`` puts a BN there for any ordering (the control experiment of chapter 4);
      ``final_norm=False`` removes it.
    - ``norm=None`` means no normalization anywhere: not in the blocks, the stem or ``final`` (the default
      ``final_norm`` is then False, and ``final_norm=True`` is an error).
    - For ``kind="conv"`` the input is ``(N, in_features, H, W)`` images (``in_features`` channels) and the
      head is global average pooling → Linear.

    ``block_options`` (``shortcut_scale``, ``branch_scale``, ``gate_bias``, ``drop_p``) go to every block.
    """
    check_int("in_features", in_features, minimum=1)
    check_int("out_features", out_features, minimum=1)
    check_int("n_blocks", n_blocks, minimum=1)
    check_int("width", width, minimum=1)
    check_choice("ordering", ordering, ORDERINGS)
    check_choice("kind", kind, KINDS)
    if final_norm is not None and not isinstance(final_norm, bool):
        raise TypeError(f"`final_norm` must be True, False or None (the default), got {final_norm!r}.")
    if final_norm and norm is None:
        raise ValueError(
            "`final_norm=True` needs a normalization, but `norm=None` means no normalization anywhere; "
            "pass norm='batch' (or 'layer'), or leave final_norm unset."
        )
    allowed = {"shortcut_scale", "branch_scale", "gate_bias", "drop_p"}
    unknown = set(block_options) - allowed
    if unknown:
        raise TypeError(f"Unknown block option(s) {sorted(unknown)}; use any of {sorted(allowed)}.")

    first = (
        nn.Linear(in_features, width)
        if kind == "linear"
        else nn.Conv2d(in_features, width, kernel_size=3, padding=1)
    )
    pre = ordering in ("relu_only_preact", "full_preact")
    stem: nn.Module = (
        first if pre else nn.Sequential(first, make_norm(norm, width, kind), make_activation(activation))
    )
    blocks = [
        OrderedBlock(width, ordering, shortcut, kind, activation, norm, **block_options)
        for _ in range(n_blocks)
    ]
    if final_norm is None:
        final_norm = ordering == "full_preact" and norm is not None
    final_parts: list[nn.Module] = []
    if final_norm:
        final_parts.append(make_norm(norm, width, kind))
    if pre or final_norm:
        final_parts.append(make_activation(activation))
    final = nn.Sequential(*final_parts) if final_parts else nn.Identity()
    if kind == "linear":
        head: nn.Module = nn.Linear(width, out_features)
    else:
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, out_features))
    net = Net(stem, blocks, final, head)
    init_weights(net, init, activation)
    for block in blocks:  # keep the gate biases at b_g after a re-initialization
        if block.gate is not None:
            nn.init.constant_(block.gate.layer.bias, block_options.get("gate_bias", -6.0))
    return net


def input_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """‖∂𝓛/∂x‖ over the whole batch ``x`` (cross-entropy for class targets), in the model's current mode."""
    from skipflow.probes import default_loss

    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    x = x.detach().clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    default_loss(model(x), y).backward()
    return float(x.grad.norm())


def _box(ax: Axes, x: float, y: float, height: float, label: str, fill: str, edge: str, lw: float) -> None:
    """One labelled, rounded box of a block diagram, centred on ``x`` with its bottom at ``y``."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch((x - 0.55, y), 1.1, height, boxstyle="round,pad=0.02", fc=fill, ec=edge, lw=lw)
    )
    ax.text(x, y + height / 2, label, ha="center", va="center", fontsize=9)


def draw_orderings(orderings: tuple[str, ...] | list[str] = ORDERINGS, ax=None):
    """Draw each ordering as a vertical chain of boxes, the shortcut as a line around the branch.

    Weight layers are grey, BN green, ReLU orange; the addition is a circle with a plus. Whatever follows
    the addition is drawn below it, on the path that both the shortcut and the branch share.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    orderings = list(orderings)
    for name in orderings:
        check_choice("orderings", name, ORDERINGS)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(orderings) + 0.4, 5.2))
    colors = {"weight": "#d5d8dc", "BN": "#a9dfbf", "ReLU": "#f5cba7"}
    box_h, gap = 0.62, 0.28
    for col, name in enumerate(orderings):
        x0 = col * 2.0
        branch, after = ORDERING_RECIPES[name]
        top = 8.4
        ax.annotate(
            "", xy=(x0, top - 0.05), xytext=(x0, top + 0.5), arrowprops={"arrowstyle": "->", "lw": 1.2}
        )
        ax.text(x0, top + 0.62, "$h_{l-1}$", ha="center", va="bottom", fontsize=10)
        y = top
        for step in branch:
            y -= box_h
            _box(ax, x0, y, box_h - 0.12, step, colors[step], edge="#566573", lw=0.8)
            y -= gap - 0.12
        add_y = y - 0.45
        ax.annotate("", xy=(x0, add_y + 0.22), xytext=(x0, y), arrowprops={"arrowstyle": "->", "lw": 1.0})
        ax.add_patch(Circle((x0, add_y), 0.22, fc="white", ec="black", lw=1.0))
        ax.text(x0, add_y, "+", ha="center", va="center", fontsize=11)
        # The shortcut: from the input, around the branch on the right, into the addition.
        sx = x0 + 0.8
        ax.plot([x0, sx, sx], [top + 0.25, top + 0.25, add_y], color="#2471a3", lw=1.6)
        ax.annotate(
            "",
            xy=(x0 + 0.22, add_y),
            xytext=(sx, add_y),
            arrowprops={"arrowstyle": "->", "color": "#2471a3", "lw": 1.6},
        )
        y = add_y - 0.22
        for step in after:
            y -= gap + box_h - 0.12
            _box(ax, x0, y, box_h - 0.12, step, colors[step], edge="#c0392b", lw=1.6)
        ax.annotate("", xy=(x0, 2.45), xytext=(x0, y), arrowprops={"arrowstyle": "->", "lw": 1.2})
        ax.text(x0, 2.35, "$h_l$", ha="center", va="top", fontsize=10)
        ax.text(x0 + 0.15, 1.75, _SHORT_LABELS[name], ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.8, 2.0 * len(orderings) - 0.9)
    ax.set_ylim(0.3, 9.4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Five orderings of a residual block (He et al., identity mappings, Fig. 4)")
    return ax


__all__ = [
    "ORDERINGS",
    "ORDERING_LABELS",
    "ORDERING_RECIPES",
    "SHORTCUTS",
    "OrderedBlock",
    "ShortcutDropout",
    "draw_orderings",
    "has_clean_identity_path",
    "input_grad_norm",
    "ordered_net",
]


class BlockParts(nn.Module):
    """The four layers of a two-layer residual block, ``lin1``, ``bn1``, ``lin2``, ``bn2``, without any
    forward pass: chapter 4's refactoring exercise wires them in different orders."""

    def __init__(self, width: int) -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        self.lin1, self.bn1 = nn.Linear(width, width), nn.BatchNorm1d(width)
        self.lin2, self.bn2 = nn.Linear(width, width), nn.BatchNorm1d(width)


def post_activation_forward(x: torch.Tensor, parts: BlockParts) -> torch.Tensor:
    """The original ResNet block: ``ReLU(x + BN(W2 · ReLU(BN(W1 · x))))``."""
    out = torch.relu(parts.bn1(parts.lin1(x)))
    out = parts.bn2(parts.lin2(out))
    return torch.relu(x + out)


__all__ += ["BlockParts", "post_activation_forward"]


def train_seeds(
    build: Callable[[], nn.Module],
    data: Split,
    seeds: Sequence[int] = (0, 1),
    on_step: Callable[[int, nn.Module], None] | None = None,
    side_by_side: bool = False,
    **train_kwargs: object,
) -> list[History]:
    """Train one fresh model per seed and return the histories (seed s fixes the init and the batches).

    ``build()`` is called right after ``runtime.manual_seed(s)``; the model goes to the device of
    :func:`skipflow.runtime.device`. ``on_step`` (e.g. a :class:`skipflow.monitor.GradWeightMonitor`) is
    attached to the first seed's run only. Other keyword arguments go to :func:`skipflow.train.train`.

    With ``side_by_side=True`` the seeds train together as one wide network
    (:func:`skipflow.stacked.train_side_by_side`): the same computation up to float round-off, with one
    call per operation for all seeds instead of one per seed. Models it cannot widen (shortcut dropout,
    convolutions, LayerNorm), a ``grad_clip``, or a loss that becomes NaN fall back to one seed at a time.
    """
    if not callable(build):
        raise TypeError(f"`build` must be a function returning a model, got {type(build).__name__}.")
    hooks = None if on_step is None else {"": on_step}
    return train_configs({"": build}, data, seeds, hooks, side_by_side, **train_kwargs)[""]


def train_configs(
    builds: Mapping[str, Callable[[], nn.Module]],
    data: Split,
    seeds: Sequence[int] = (0, 1),
    on_step: Mapping[str, Callable[[int, nn.Module], None]] | None = None,
    side_by_side: bool = False,
    **train_kwargs: object,
) -> dict[str, list[History]]:
    """:func:`train_seeds` for several settings at once: ``{name: histories}``, one history per seed.

    ``on_step[name]``, if given, is attached to the first seed's run of setting ``name``. With
    ``side_by_side=True``, settings whose networks differ only in ``final`` and ``head`` (such as chapter
    4's post-activation net and its control with a BN before the head) train together with all their
    seeds in one wide network; the result is the same, up to float round-off, as training each on its own.
    """
    from skipflow.runtime import device
    from skipflow.train import train

    if not isinstance(builds, Mapping) or not builds:
        raise TypeError("`builds` must be a non-empty mapping {name: function returning a model}.")
    for name, build in builds.items():
        if not callable(build):
            raise TypeError(f"`builds[{name!r}]` must be a function returning a model.")
    hooks = dict(on_step or {})
    unknown = set(hooks) - set(builds)
    if unknown:
        raise ValueError(f"`on_step` names {sorted(unknown)} are not in `builds` ({sorted(builds)}).")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("`seeds` must list at least one seed, e.g. (0, 1).")
    out: dict[str, list[History]] = {}
    if side_by_side and train_kwargs.get("grad_clip") is None:
        from skipflow import stacked

        models = {}
        for name, build in builds.items():
            models[name] = []
            for seed in seeds:
                runtime.manual_seed(seed)
                models[name].append(build().to(device()))
        groups: list[list[str]] = []  # settings whose models widen together
        for name in builds:
            for group in groups:
                if stacked.can_widen([models[group[0]][0], models[name][0]]):
                    group.append(name)
                    break
            else:
                groups.append([name])
        options = {k: v for k, v in train_kwargs.items() if k not in ("grad_clip", "seed")}
        for group in groups:
            nets = [net for name in group for net in models[name]]
            if len(nets) < 2 or not stacked.can_widen(nets):
                continue
            callbacks = {i * len(seeds): hooks[name] for i, name in enumerate(group) if name in hooks}
            result = stacked.train_side_by_side(nets, data, seeds * len(group), on_step=callbacks, **options)
            if result is not None:
                for i, name in enumerate(group):
                    out[name] = result[i * len(seeds) : (i + 1) * len(seeds)]
    for name, build in builds.items():
        if name in out:
            continue
        out[name] = []
        for i, seed in enumerate(seeds):
            runtime.manual_seed(seed)
            model = build().to(device())
            hook = hooks.get(name) if i == 0 else None
            out[name].append(train(model, data, seed=seed, on_step=hook, **train_kwargs))
    return {name: out[name] for name in builds}


__all__ += ["train_configs", "train_seeds"]


def stream_and_branch_rms(model: Net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS of the residual stream h_0 … h_L and of each block's update h_l − h_{l−1}, l = 1 … L.

    One forward pass of ``x`` in the model's current mode (in training mode, BatchNorm uses the batch's
    statistics, as it does during training). For a block with nothing after its addition and an identity
    shortcut, ``h_l − h_{l−1}`` is the branch output ``F_l(h_{l−1})``, so ``branch[l-1] / stream[l-1]`` is
    the branch's size relative to the stream it is added to.
    """
    if not isinstance(model, Net):
        raise TypeError(
            f"`model` must be a skipflow Net (e.g. from ordered_net), got {type(model).__name__}."
        )
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a tensor, got {type(x).__name__}.")
    outs: list[torch.Tensor] = []
    handles = [model.stem.register_forward_hook(lambda _m, _i, o: outs.append(o.detach()))]
    handles += [b.register_forward_hook(lambda _m, _i, o: outs.append(o.detach())) for b in model.blocks]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    stream = torch.stack([h.pow(2).mean().sqrt() for h in outs])
    branch = torch.stack([(b - a).pow(2).mean().sqrt() for a, b in itertools.pairwise(outs)])
    return stream, branch


__all__ += ["stream_and_branch_rms"]
