"""A minimal Transformer, written to be read: the residual stream, Pre-LN and Post-LN, and the branch scale α.

A Transformer block is two residual sublayers. With ``norm_position="pre"`` (Pre-LN)::

    x ← x + α · Attn(LN(x))
    x ← x + α · MLP(LN(x))

and with ``norm_position="post"`` (Post-LN, the original Transformer)::

    x ← LN(x + α · Attn(x))
    x ← LN(x + α · MLP(x))

``x`` is the *residual stream*: every sublayer reads it and adds its output to it. ``norm_position="none"``
drops the normalization and ``skip=False`` drops the addition (``x ← α · Attn(x)``), for the rank-collapse
experiments. The module also holds the measurements of chapter 6: the distance of a token matrix from rank
one, the output's sensitivity to a perturbation of every weight, per-sublayer gradient norms, and a tiny
sequence-reversal task with its training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
from torch import nn

from skipflow import optim, runtime
from skipflow._validate import check_choice, check_float, check_int

__all__ = [
    "MLP",
    "NORM_POSITIONS",
    "Block",
    "MultiHeadAttention",
    "ReversalRun",
    "StackedTransformers",
    "TinyTransformer",
    "amplification",
    "amplification_by_depth",
    "attention",
    "block_parts",
    "grad_norms_by_depth",
    "init_weights",
    "lesion_accuracies",
    "post_ln_forward",
    "pre_ln_forward",
    "rank_residual",
    "reversal_accuracy",
    "reversal_batch",
    "sublayer_grad_norms",
    "train_reversal",
    "train_reversals",
]

NORM_POSITIONS = ("pre", "post", "none")


def _check_tokens(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"`{name}` must be a tensor of shape (batch, tokens, d_model), got {type(x).__name__}."
        )
    if x.dim() != 3:
        raise ValueError(f"`{name}` must have shape (batch, tokens, d_model), got shape {tuple(x.shape)}.")
    return x


def init_weights(module: nn.Module) -> nn.Module:
    """Draw every Linear weight from N(0, 1/fan_in) and zero its bias: each matrix keeps its input's scale."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features**-0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention, softmax(q kᵀ / √d) v, over the last two dimensions (no mask)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"`{name}` must be a tensor, got {type(t).__name__}.")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"`q` and `k` must share their last dimension, got {q.shape[-1]} and {k.shape[-1]}.")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v


class MultiHeadAttention(nn.Module):
    """Self-attention with ``n_heads`` heads; every token attends to every token (no causal mask)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        check_int("n_heads", n_heads, minimum=1)
        if d_model % n_heads:
            raise ValueError(f"`d_model` ({d_model}) must be divisible by `n_heads` ({n_heads}).")
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, d_model) → (batch, heads, tokens, d_model / heads)."""
        b, t, d = x.shape
        return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        heads = attention(self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x)))
        return self.out(heads.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """The position-wise feed-forward sublayer: Linear → GELU → Linear."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


class Block(nn.Module):
    """One Transformer block: an attention sublayer and an MLP sublayer, each a residual branch.

    Args:
        d_model: width of the residual stream.
        n_heads: attention heads.
        norm_position: ``"pre"`` (LN on the branch input), ``"post"`` (LN after the addition) or
            ``"none"`` (no LayerNorm at all).
        alpha: the branch multiplier α in x + α·F(x) (ReZero's α = 0 switches every branch off at init).
        d_hidden: the MLP's hidden width (default 4 · d_model).
        skip: False drops the shortcut: x ← α·F(x).
        attn, mlp: False removes that sublayer (pure-attention or pure-MLP stacks).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 4,
        norm_position: str = "pre",
        alpha: float = 1.0,
        d_hidden: int | None = None,
        skip: bool = True,
        attn: bool = True,
        mlp: bool = True,
    ):
        super().__init__()
        check_int("d_model", d_model, minimum=1)
        self.norm_position = check_choice("norm_position", norm_position, NORM_POSITIONS)
        self.alpha = check_float("alpha", alpha)
        for name, flag in (("skip", skip), ("attn", attn), ("mlp", mlp)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{name}` must be True or False, got {flag!r}.")
        if not (attn or mlp):
            raise ValueError("a block needs at least one sublayer: `attn` and `mlp` cannot both be False.")
        d_hidden = 4 * d_model if d_hidden is None else check_int("d_hidden", d_hidden, minimum=1)
        self.skip = skip
        self.sublayers = nn.ModuleList()
        self.norms = nn.ModuleList()
        if attn:
            self.sublayers.append(MultiHeadAttention(d_model, n_heads))
        if mlp:
            self.sublayers.append(MLP(d_model, d_hidden))
        for _ in self.sublayers:
            self.norms.append(nn.LayerNorm(d_model) if norm_position != "none" else nn.Identity())
        init_weights(self)

    def writes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What each sublayer adds to the stream, α·F(LN(x)), for a Pre-LN block with its skip.

        The block's output is ``x + sum(block.writes(x))``: the stream is a running sum.
        """
        if self.norm_position != "pre" or not self.skip:
            raise ValueError("writes() needs a Pre-LN block with its skip: norm_position='pre', skip=True.")
        out = []
        for f, norm in zip(self.sublayers, self.norms, strict=True):
            out.append(self.alpha * f(norm(x)))
            x = x + out[-1]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for f, norm in zip(self.sublayers, self.norms, strict=True):
            if self.norm_position == "pre":
                branch = self.alpha * f(norm(x))
                x = x + branch if self.skip else branch
            else:  # "post" (norm is a LayerNorm) or "none" (norm is the identity)
                branch = self.alpha * f(x)
                x = norm(x + branch if self.skip else branch)
        return x


def block_parts(block: Block) -> SimpleNamespace:
    """A block's four layers by name (``attn``, ``mlp``, ``ln1``, ``ln2``), to write a forward by hand."""
    if not isinstance(block, Block) or len(block.sublayers) != 2:
        raise TypeError("`block` must be a Block with both sublayers (attention and MLP).")
    (attn, mlp), (ln1, ln2) = block.sublayers, block.norms
    return SimpleNamespace(attn=attn, mlp=mlp, ln1=ln1, ln2=ln2)


def post_ln_forward(
    x: torch.Tensor, parts: SimpleNamespace
) -> torch.Tensor:  # (shown in the book: kept narrow)
    """The Post-LN block (the original Transformer's): normalize after each addition."""
    x = parts.ln1(x + parts.attn(x))
    return parts.ln2(x + parts.mlp(x))


def pre_ln_forward(
    x: torch.Tensor, parts: SimpleNamespace
) -> torch.Tensor:  # (shown in the book: kept narrow)
    """The Pre-LN block: normalize each branch's input, leave the stream alone."""
    x = x + parts.attn(parts.ln1(x))
    return x + parts.mlp(parts.ln2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, ``n_layers`` blocks, and a linear head (a final LN for Pre-LN).

    A Pre-LN stack ends with a bare addition, so, as in GPT-2 and as chapter 4's pre-activation ResNet, a
    final LayerNorm sits before the head; a Post-LN stack already ends with one.
    """

    def __init__(
        self,
        vocab: int,
        seq_len: int,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        norm_position: str = "pre",
        alpha: float = 1.0,
    ):
        super().__init__()
        check_int("vocab", vocab, minimum=2)
        check_int("seq_len", seq_len, minimum=1)
        check_int("n_layers", n_layers, minimum=0)
        check_choice("norm_position", norm_position, ("pre", "post"))
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(seq_len, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads, norm_position, alpha) for _ in range(n_layers))
        self.final = nn.LayerNorm(d_model) if norm_position == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab)

    def stream(
        self, tokens: torch.Tensor, skip_layers: tuple[int, ...] = (), depth: int | None = None
    ) -> list[torch.Tensor]:
        """The residual stream before the first block and after each block.

        Layers in ``skip_layers`` are deleted (the stream passes them unchanged); ``depth`` uses only the
        first ``depth`` blocks, so one deep model also serves as its own shallower versions.
        """
        x = self.embed(tokens) + self.pos
        states = [x]
        for i, block in enumerate(self.blocks[:depth]):
            if i not in skip_layers:
                x = block(x)
            states.append(x)
        return states

    def forward(
        self, tokens: torch.Tensor, skip_layers: tuple[int, ...] = (), depth: int | None = None
    ) -> torch.Tensor:
        return self.head(self.final(self.stream(tokens, skip_layers, depth)[-1]))


def rank_residual(x: torch.Tensor) -> torch.Tensor:
    """res(X) = ‖X − 1 x̄ᵀ‖_F / ‖X‖_F for each token matrix X (tokens × features) in a batch.

    x̄ is the mean over tokens, the minimizer of ‖X − 1 xᵀ‖_F, so res(X) is the relative distance of X from
    the nearest matrix whose rows are all equal (rank one, every token the same), a ratio between 0 and 1.
    Returns a tensor of shape ``x.shape[:-2]``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a tensor of shape (..., tokens, features), got {type(x).__name__}.")
    if x.dim() < 2:
        raise ValueError(f"`x` must have shape (..., tokens, features), got shape {tuple(x.shape)}.")
    centred = x - x.mean(dim=-2, keepdim=True)
    return centred.flatten(-2).norm(dim=-1) / x.flatten(-2).norm(dim=-1)


def sublayer_grad_norms(
    model: TinyTransformer, tokens: torch.Tensor, targets: torch.Tensor, depth: int | None = None
) -> dict:
    """‖∂𝓛/∂W‖ of every weight matrix, by layer, for the cross-entropy of one batch.

    ``depth`` uses only the first ``depth`` blocks (see :meth:`TinyTransformer.stream`).

    Returns ``{"attn_qk": [...], "attn_vo": [...], "mlp_in": [...], "mlp_out": [...]}``, one value per
    layer: the norm of the gradient of W_Q and W_K together, of W_V and W_O together, and of the MLP's first
    and second matrix (Xiong et al.'s W^{1,l} and W^{2,l}).
    """
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"`model` must be a TinyTransformer, got {type(model).__name__}.")
    model.zero_grad()
    logits = model(tokens, depth=depth)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()

    def norm(*params: torch.Tensor) -> float:
        return float(torch.sqrt(sum((p.grad**2).sum() for p in params)))

    out = {"attn_qk": [], "attn_vo": [], "mlp_in": [], "mlp_out": []}
    for block in model.blocks[:depth]:
        att, mlp = block.sublayers
        out["attn_qk"].append(norm(att.q.weight, att.k.weight))
        out["attn_vo"].append(norm(att.v.weight, att.out.weight))
        out["mlp_in"].append(norm(mlp.fc1.weight))
        out["mlp_out"].append(norm(mlp.fc2.weight))
    model.zero_grad()
    return out


def grad_norms_by_depth(
    model: TinyTransformer, tokens: torch.Tensor, targets: torch.Tensor, depths: tuple[int, ...]
) -> SimpleNamespace:
    """The gradients of :func:`sublayer_grad_norms` for several truncated depths, from one forward pass.

    The model truncated to its first L blocks ends at the stream ``states[L]`` of the full model, so one
    forward pass serves every depth. For each L in ``depths`` the loss 𝓛_L of the truncated model is
    differentiated only with respect to its last block's matrices, which needs only the head and that block;
    the deepest depth gets a full backward pass.

    Returns a namespace with ``last`` ({L: {key: ‖∂𝓛_L/∂W‖ of block L}}, equal to
    ``sublayer_grad_norms(model, tokens, targets, depth=L)[key][-1]``), ``layers`` (the per-layer dict of
    :func:`sublayer_grad_norms` at the deepest depth) and ``states`` (the stream before the first block and
    after each block, detached).
    """
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"`model` must be a TinyTransformer, got {type(model).__name__}.")
    depths = tuple(check_int("depth", L, minimum=1) for L in depths)
    deepest = max(depths)
    if deepest > len(model.blocks):
        raise ValueError(f"the model has {len(model.blocks)} blocks; `depths` asks for {deepest}.")
    model.zero_grad()
    states = model.stream(tokens, depth=deepest)

    def loss_at(L: int) -> torch.Tensor:
        logits = model.head(model.final(states[L]))
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def matrices(block: Block) -> dict:
        att, mlp = block.sublayers
        return {
            "attn_qk": (att.q.weight, att.k.weight),
            "attn_vo": (att.v.weight, att.out.weight),
            "mlp_in": (mlp.fc1.weight,),
            "mlp_out": (mlp.fc2.weight,),
        }

    def norm(grads) -> float:
        return float(torch.sqrt(sum((g**2).sum() for g in grads)))

    last = {}
    for L in sorted(set(depths) - {deepest}):
        groups = matrices(model.blocks[L - 1])
        flat = [p for group in groups.values() for p in group]
        grads = iter(torch.autograd.grad(loss_at(L), flat, retain_graph=True))
        last[L] = {key: norm([next(grads) for _ in group]) for key, group in groups.items()}
    loss_at(deepest).backward()
    layers = {"attn_qk": [], "attn_vo": [], "mlp_in": [], "mlp_out": []}
    for block in model.blocks[:deepest]:
        for key, group in matrices(block).items():
            layers[key].append(norm([p.grad for p in group]))
    last[deepest] = {key: values[-1] for key, values in layers.items()}
    model.zero_grad()
    return SimpleNamespace(last=last, layers=layers, states=[s.detach() for s in states])


@torch.no_grad()
def amplification(blocks: nn.Module, x: torch.Tensor, eps: float = 0.01, seed: int = 0) -> float:
    """How much a relative perturbation ε of every weight matrix moves the output: (‖Δf‖ / ‖f‖) / ε.

    Each weight matrix W of ``blocks`` (every parameter with two dimensions) gets W + ε‖W‖·N/‖N‖ with N a
    standard normal matrix: a change of relative size ε. The output's relative change divided by ε is the
    amplification; a network that is insensitive to its depth keeps it of order 1.
    """
    if not isinstance(blocks, nn.Module):
        raise TypeError(f"`blocks` must be an nn.Module, got {type(blocks).__name__}.")
    _check_tokens("x", x)
    check_float("eps", eps, minimum=0.0, strict_min=True)
    before = blocks(x)
    gen = runtime.generator(seed)
    saved = []
    for p in blocks.parameters():
        if p.dim() == 2:
            noise = torch.randn(p.shape, generator=gen).to(p.device)
            saved.append((p, p.clone()))
            p.add_(eps * p.norm() * noise / noise.norm())
    after = blocks(x)
    for p, value in saved:
        p.copy_(value)
    return float((after - before).norm() / before.norm() / eps)


@torch.no_grad()
def amplification_by_depth(
    blocks: list[nn.Module], x: torch.Tensor, depths: tuple[int, ...], eps: float = 0.01, seed: int = 0
) -> dict[int, float]:
    """:func:`amplification` of the first L blocks for every L in ``depths``, from two forward passes.

    The perturbation of the first L blocks is the first part of the perturbation of all of them (the noise
    is drawn parameter by parameter, in order, from the same generator), so the stack of the first L blocks,
    before and after the perturbation, is a prefix of the deepest stack: ``result[L]`` equals
    ``amplification(nn.Sequential(*blocks[:L]), x, eps, seed)``.
    """
    if not all(isinstance(b, nn.Module) for b in blocks):
        raise TypeError("`blocks` must be a list of nn.Module.")
    _check_tokens("x", x)
    check_float("eps", eps, minimum=0.0, strict_min=True)
    depths = tuple(check_int("depth", L, minimum=1) for L in depths)
    stack = list(blocks)[: max(depths)]
    if len(stack) < max(depths):
        raise ValueError(f"{len(stack)} blocks given; `depths` asks for {max(depths)}.")

    def states() -> list[torch.Tensor]:
        out, h = [x], x
        for block in stack:
            h = block(h)
            out.append(h)
        return out

    before = states()
    gen = runtime.generator(seed)
    saved = []
    for p in nn.ModuleList(stack).parameters():
        if p.dim() == 2:
            noise = torch.randn(p.shape, generator=gen).to(p.device)
            saved.append((p, p.clone()))
            p.add_(eps * p.norm() * noise / noise.norm())
    after = states()
    for p, value in saved:
        p.copy_(value)
    return {L: float((after[L] - before[L]).norm() / before[L].norm() / eps) for L in depths}


# --- the reversal task -------------------------------------------------------------------------------


def reversal_batch(batch: int, seq_len: int, vocab: int, generator: torch.Generator | None = None):
    """Random token sequences and their reversals: the task is to output the input backwards."""
    check_int("batch", batch, minimum=1)
    check_int("seq_len", seq_len, minimum=1)
    check_int("vocab", vocab, minimum=2)
    tokens = torch.randint(vocab, (batch, seq_len), generator=generator)
    return tokens, tokens.flip(-1)


@dataclass
class ReversalRun:
    """One training run on the reversal task: the model, and loss and token accuracy per step."""

    model: TinyTransformer
    loss: list[float] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    @property
    def final_acc(self) -> float:
        """Token accuracy averaged over the last 10 steps (each step is a fresh batch)."""
        return sum(self.acc[-10:]) / len(self.acc[-10:])


def train_reversal(
    norm_position: str,
    *,
    seed: int = 0,
    steps: int = 200,
    warmup: int = 0,
    lr: float = 5e-3,
    n_layers: int = 6,
    d_model: int = 32,
    n_heads: int = 4,
    seq_len: int = 12,
    vocab: int = 16,
    batch: int = 32,
    on_step=None,
) -> ReversalRun:
    """Train a TinyTransformer to reverse sequences with Adam (β = 0.9, 0.98), a fresh batch every step.

    The learning rate rises linearly from lr/warmup to lr over the first ``warmup`` steps (no warmup: lr
    from the first step), then stays constant. ``on_step(step, model)`` is called after every update.
    """
    check_int("steps", steps, minimum=1)
    check_int("warmup", warmup, minimum=0)
    check_float("lr", lr, minimum=0.0, strict_min=True)
    runtime.manual_seed(seed)
    model = TinyTransformer(vocab, seq_len, d_model, n_heads, n_layers, norm_position)
    # foreach=True: the same update, bit for bit, as the default loop over tensors, in far fewer calls
    opt = optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    gen = runtime.generator(seed + 1000)
    run = ReversalRun(model)
    for step in range(steps):
        rate = lr * min(1.0, (step + 1) / warmup) if warmup else lr
        for group in opt.param_groups:
            group["lr"] = rate
        tokens, targets = reversal_batch(batch, seq_len, vocab, gen)
        logits = model(tokens)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.loss.append(loss.item())
        run.acc.append(float((logits.argmax(-1) == targets).float().mean()))
        run.lr.append(rate)
        if on_step is not None:
            on_step(step, model)
    return run


@torch.no_grad()
def reversal_accuracy(
    model: TinyTransformer, skip_layers: tuple[int, ...] = (), n: int = 512, seed: int = 12345
) -> float:
    """Token accuracy on ``n`` fresh sequences, with the layers in ``skip_layers`` deleted."""
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"`model` must be a TinyTransformer, got {type(model).__name__}.")
    seq_len, vocab = model.pos.shape[0], model.head.out_features
    tokens, targets = reversal_batch(n, seq_len, vocab, runtime.generator(seed))
    return float((model(tokens, skip_layers).argmax(-1) == targets).float().mean())


@torch.no_grad()
def lesion_accuracies(model: TinyTransformer, n: int = 512, seed: int = 12345) -> list[float]:
    """Token accuracy of the intact model, then with block 1, 2, … deleted, one at a time.

    The same numbers as ``reversal_accuracy(model)`` followed by
    ``reversal_accuracy(model, skip_layers=(i,))`` for every block i, with the blocks before a deleted one
    evaluated once: deleting block i leaves the stream before it unchanged.
    """
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"`model` must be a TinyTransformer, got {type(model).__name__}.")
    seq_len, vocab = model.pos.shape[0], model.head.out_features
    tokens, targets = reversal_batch(n, seq_len, vocab, runtime.generator(seed))
    states = model.stream(tokens)

    def accuracy(x: torch.Tensor) -> float:
        return float((model.head(model.final(x)).argmax(-1) == targets).float().mean())

    out = [accuracy(states[-1])]
    for i in range(len(model.blocks)):
        x = states[i]
        for block in model.blocks[i + 1 :]:
            x = block(x)
        out.append(accuracy(x))
    return out


# --- several reversal runs side by side --------------------------------------------------------------


class StackedTransformers:
    """Several TinyTransformers of the same shape, evaluated side by side in one batched pass.

    The parameters of member s are row s of one flat tensor ``flat`` of shape (members, n_params); the
    forward pass splits it into every matrix with a leading member axis and runs all members at once with
    batched matrix products. Members may differ in ``norm_position``: each LayerNorm is applied to the
    members that use it at that place (before the branch for Pre-LN, after the addition for Post-LN).
    The loss to differentiate is the sum of the members' losses, so each member's parameters get exactly
    their own gradient. :meth:`write_back` copies the trained parameters into the original models.
    """

    def __init__(self, models: list[TinyTransformer]):
        if not models or not all(isinstance(m, TinyTransformer) for m in models):
            raise TypeError("`models` must be a non-empty list of TinyTransformer.")
        self.models = list(models)
        first = models[0]
        self.n_layers, self.n_heads = len(first.blocks), first.blocks[0].sublayers[0].n_heads
        self.vocab, self.d_model = first.embed.weight.shape
        for m in models:
            if len(m.blocks) != self.n_layers or m.embed.weight.shape != first.embed.weight.shape:
                raise ValueError("every member must have the same number of blocks, vocabulary and width.")
            if m.pos.shape != first.pos.shape:
                raise ValueError("every member must have the same sequence length.")
            for block in m.blocks:
                if block.alpha != 1.0 or not block.skip or len(block.sublayers) != 2:
                    raise ValueError("members must be standard blocks (alpha = 1, skip, attention and MLP).")
        # runs of consecutive members with the same norm position: (start, stop, is_pre)
        kinds = [m.blocks[0].norm_position == "pre" for m in models]
        starts = [i for i in range(len(kinds)) if i == 0 or kinds[i] != kinds[i - 1]]
        self.segments = [(a, b, kinds[a]) for a, b in zip(starts, [*starts[1:], len(kinds)], strict=True)]
        self.eps = first.blocks[0].norms[0].eps
        self._tensors = [self._member_tensors(m) for m in models]
        self.shapes = [t.shape for t in self._tensors[0]]
        rows = [torch.cat([t.detach().reshape(-1) for t in ts]) for ts in self._tensors]
        self.flat = torch.stack(rows).requires_grad_()

    def _member_tensors(self, m: TinyTransformer) -> list[torch.Tensor]:
        out = [m.embed.weight, m.pos]
        for block in m.blocks:
            att, mlp = block.sublayers
            out += [att.q.weight, att.k.weight, att.v.weight, att.out.weight]
            out += [mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias]
            for norm in block.norms:
                out += [norm.weight, norm.bias]
        if isinstance(m.final, nn.LayerNorm):
            out += [m.final.weight, m.final.bias]
        else:  # Post-LN: no final LayerNorm; these entries are never used (and get no gradient)
            out += [torch.ones(self.d_model), torch.zeros(self.d_model)]
        return [*out, m.head.weight, m.head.bias]

    def _params(self) -> list[torch.Tensor]:
        sizes = [math.prod(s) for s in self.shapes]
        n = self.flat.shape[0]
        return [p.view(n, *s) for p, s in zip(self.flat.split(sizes, dim=1), self.shapes, strict=True)]

    def _norm(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return x * w.unsqueeze(1) + b.unsqueeze(1)

    def _norm_where(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, pre: bool) -> torch.Tensor:
        """LayerNorm for the members whose norm position is ``pre`` (True or False); the others pass."""
        parts = [
            self._norm(x[i:j], w[i:j], b[i:j]) if kind == pre else x[i:j] for i, j, kind in self.segments
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @staticmethod
    def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def stream_last(self, tokens: torch.Tensor, params: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The stream after the last block, shape (members, batch, seq_len, d_model).

        ``tokens`` has shape (members, batch, seq_len): each member reads its own row.
        """
        params = self._params() if params is None else params
        n, batch, t = tokens.shape
        d, h = self.d_model, self.n_heads
        embed, pos, rest = params[0], params[1], iter(params[2:])
        offsets = (torch.arange(n) * self.vocab).view(n, 1, 1)
        x = (embed.reshape(n * self.vocab, d)[tokens + offsets] + pos.unsqueeze(1)).reshape(n, batch * t, d)
        for _ in range(self.n_layers):
            wq, wk, wv, wo, w1, b1, w2, b2 = (next(rest) for _ in range(8))
            norms = [(next(rest), next(rest)) for _ in range(2)]

            def attn(u, wq=wq, wk=wk, wv=wv, wo=wo):
                def split(z):
                    return z.view(n, batch, t, h, d // h).transpose(2, 3)

                heads = attention(
                    split(self._linear(u, wq)), split(self._linear(u, wk)), split(self._linear(u, wv))
                )
                return self._linear(heads.transpose(2, 3).reshape(n, batch * t, d), wo)

            def mlp(u, w1=w1, b1=b1, w2=w2, b2=b2):
                return self._linear(nn.functional.gelu(self._linear(u, w1, b1)), w2, b2)

            for f, (nw, nb) in zip((attn, mlp), norms, strict=True):
                # Pre-LN: x + F(LN(x)); Post-LN: LN(x + F(x)); each member gets its own form
                x = self._norm_where(x + f(self._norm_where(x, nw, nb, pre=True)), nw, nb, pre=False)
        return x.view(n, batch, t, d)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits of every member, shape (members, batch, tokens, vocab)."""
        params = self._params()
        x = self.stream_last(tokens, params)
        n, batch, t, d = x.shape
        x = x.reshape(n, batch * t, d)
        x = self._norm_where(x, params[-4], params[-3], pre=True)  # Pre-LN's final LayerNorm
        return self._linear(x, params[-2], params[-1]).view(n, batch, t, -1)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the stacked parameters into the original models."""
        for s, tensors in enumerate(self._tensors):
            for t, p in zip(tensors, self._params(), strict=True):
                t.copy_(p[s])


def train_reversals(
    settings: list[dict],
    *,
    on_step: Callable[[int, StackedTransformers], None] | None = None,
    on_start: Callable[[StackedTransformers], None] | None = None,
    **common,
) -> list[ReversalRun]:
    """Several :func:`train_reversal` runs side by side, one batched pass per step.

    Each entry of ``settings`` holds the arguments that differ between runs (``norm_position``, ``seed``,
    ``warmup``, ``lr``); ``common`` holds the shared ones (``steps``, ``n_layers``, ``d_model``, ``n_heads``,
    ``seq_len``, ``vocab``, ``batch``). Every run gets the model, the batches and the Adam update it gets from
    :func:`train_reversal` (the same initialization and data; the update is elementwise, so a stacked Adam
    is the separate ones); the results agree up to float32 round-off, which the batched products order
    differently. ``on_step(step, stacked)`` is called after every update with the
    :class:`StackedTransformers`, and ``on_start(stacked)``, if given, once before the first update (the
    initial weights).
    """
    if not isinstance(settings, (list, tuple)) or not settings:
        raise TypeError("`settings` must be a non-empty list of dicts.")
    allowed = {"norm_position", "seed", "warmup", "lr"}
    for kw in settings:
        if not isinstance(kw, dict) or set(kw) - allowed or "norm_position" not in kw:
            raise ValueError(f"each setting must be a dict with norm_position and any of {sorted(allowed)}.")
    cfg = dict(steps=200, n_layers=6, d_model=32, n_heads=4, seq_len=12, vocab=16, batch=32)
    unknown = set(common) - set(cfg)
    if unknown:
        raise TypeError(f"unknown argument(s) {sorted(unknown)}; shared arguments are {sorted(cfg)}.")
    cfg.update(common)
    steps, batch, seq_len, vocab = (
        check_int(k, cfg[k], minimum=1) for k in ("steps", "batch", "seq_len", "vocab")
    )
    runs_kw = [dict(seed=0, warmup=0, lr=5e-3) | kw for kw in settings]
    models, gens = [], []
    for kw in runs_kw:
        check_int("warmup", kw["warmup"], minimum=0)
        check_float("lr", kw["lr"], minimum=0.0, strict_min=True)
        runtime.manual_seed(kw["seed"])  # as train_reversal: the same initial weights
        models.append(
            TinyTransformer(
                vocab, seq_len, cfg["d_model"], cfg["n_heads"], cfg["n_layers"], kw["norm_position"]
            )
        )
        gens.append(runtime.generator(kw["seed"] + 1000))
    stacked = StackedTransformers(models)
    flat = stacked.flat
    # a collapsed Post-LN run produces subnormal floats, which are slow on CPUs; flushing them to zero
    # changes nothing above 1e-38 and is switched back off at the end
    flush = torch.set_flush_denormal(True)
    exp_avg, exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
    beta1, beta2, eps = 0.9, 0.98, 1e-8
    runs = [ReversalRun(m) for m in models]
    if on_start is not None:
        on_start(stacked)
    for step in range(steps):
        rates = [
            kw["lr"] * min(1.0, (step + 1) / kw["warmup"]) if kw["warmup"] else kw["lr"] for kw in runs_kw
        ]
        data = [reversal_batch(batch, seq_len, vocab, g) for g in gens]
        tokens = torch.stack([d[0] for d in data])
        targets = torch.stack([d[1] for d in data])
        logits = stacked.logits(tokens)
        losses = (
            nn.functional.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none")
            .view(len(runs), -1)
            .mean(1)
        )
        flat.grad = None
        losses.sum().backward()
        with torch.no_grad():  # Adam, as torch.optim.Adam computes it, with a learning rate per run
            grad = flat.grad
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            t = step + 1
            denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            step_size = torch.tensor([-r / (1 - beta1**t) for r in rates]).view(-1, 1)
            flat.add_(exp_avg / denom * step_size)
            acc = (logits.argmax(-1) == targets).float().flatten(1).mean(1)
        for run, loss, a, rate in zip(runs, losses.tolist(), acc.tolist(), rates, strict=True):
            run.loss.append(loss)
            run.acc.append(a)
            run.lr.append(rate)
        if on_step is not None:
            on_step(step, stacked)
    if flush:
        torch.set_flush_denormal(False)
    stacked.write_back()
    return runs
