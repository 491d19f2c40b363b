"""Unit tests of skipflow.transformer and skipflow.hyper (chapter 6)."""

from __future__ import annotations

import math

import pytest
import torch
from skipflow import hyper, runtime
from skipflow import transformer as T
from torch import nn


def test_attention_matches_pytorch():
    gen = runtime.generator(0)
    q, k, v = (torch.randn(2, 4, 7, 8, generator=gen) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(T.attention(q, k, v), ref, atol=1e-6)


def test_multihead_attention_matches_a_hand_written_reference():
    runtime.manual_seed(0)
    mha = T.MultiHeadAttention(16, 4)
    x = torch.randn(3, 5, 16)
    q, k, v = mha.q(x), mha.k(x), mha.v(x)
    heads = []
    for h in range(4):
        s = slice(4 * h, 4 * h + 4)
        heads.append(torch.nn.functional.scaled_dot_product_attention(q[..., s], k[..., s], v[..., s]))
    ref = mha.out(torch.cat(heads, dim=-1))
    assert torch.allclose(mha(x), ref, atol=1e-6)


def test_multihead_attention_matches_torch_module():
    # nn.MultiheadAttention with the same four matrices computes the same thing
    runtime.manual_seed(1)
    mha = T.MultiHeadAttention(16, 4)
    ref = nn.MultiheadAttention(16, 4, bias=False, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q.weight, mha.k.weight, mha.v.weight]))
        ref.out_proj.weight.copy_(mha.out.weight)
    x = torch.randn(2, 6, 16)
    assert torch.allclose(mha(x), ref(x, x, x, need_weights=False)[0], atol=1e-5)


def _block_parts(block):
    attn, mlp = block.sublayers
    ln1, ln2 = block.norms
    return attn, mlp, ln1, ln2


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_pre_ln_block_is_x_plus_alpha_branch_of_normalized_input(alpha):
    runtime.manual_seed(0)
    block = T.Block(16, 4, "pre", alpha=alpha)
    attn, mlp, ln1, ln2 = _block_parts(block)
    x = torch.randn(2, 5, 16)
    h = x + alpha * attn(ln1(x))
    expected = h + alpha * mlp(ln2(h))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_post_ln_block_normalizes_after_each_addition():
    runtime.manual_seed(0)
    block = T.Block(16, 4, "post", alpha=0.5)
    attn, mlp, ln1, ln2 = _block_parts(block)
    x = torch.randn(2, 5, 16)
    h = ln1(x + 0.5 * attn(x))
    expected = ln2(h + 0.5 * mlp(h))
    out = block(x)
    assert torch.allclose(out, expected, atol=1e-6)
    # every token of a Post-LN output has zero mean and unit variance; a Pre-LN output does not
    assert torch.allclose(out.mean(-1), torch.zeros(2, 5), atol=1e-5)
    pre = T.Block(16, 4, "pre")(x)
    assert not torch.allclose(pre.mean(-1), torch.zeros(2, 5), atol=1e-3)


def test_pre_ln_keeps_an_identity_path_and_post_ln_does_not():
    # with every branch switched off (alpha = 0), Pre-LN is exactly the identity; Post-LN is LN(LN(x))
    x = torch.randn(2, 5, 16) * 3 + 1
    assert torch.equal(T.Block(16, 4, "pre", alpha=0.0)(x), x)
    post = T.Block(16, 4, "post", alpha=0.0)(x)
    assert not torch.allclose(post, x, atol=1e-2)


def test_skip_false_and_sublayer_switches():
    runtime.manual_seed(0)
    block = T.Block(16, 4, "none", skip=False, mlp=False)
    assert len(block.sublayers) == 1 and isinstance(block.norms[0], nn.Identity)
    x = torch.randn(2, 5, 16)
    assert torch.allclose(block(x), block.sublayers[0](x), atol=1e-6)
    assert len(T.Block(16, 4, attn=False).sublayers) == 1


def test_init_keeps_the_scale_of_each_matrix():
    runtime.manual_seed(0)
    block = T.Block(64, 4)
    w = block.sublayers[1].fc1.weight
    assert abs(w.std().item() * math.sqrt(64) - 1) < 0.05
    assert torch.all(block.sublayers[1].fc1.bias == 0)


def test_block_validates_its_arguments():
    with pytest.raises(ValueError, match="norm_position"):
        T.Block(16, 4, "middle")
    with pytest.raises(TypeError, match="alpha"):
        T.Block(16, 4, alpha="1")
    with pytest.raises(ValueError, match="n_heads"):
        T.Block(16, 5)
    with pytest.raises(TypeError, match="skip"):
        T.Block(16, 4, skip=1)
    with pytest.raises(ValueError, match="attn"):
        T.Block(16, 4, attn=False, mlp=False)
    with pytest.raises(TypeError, match="d_model"):
        T.Block(16.0, 4)


def test_tiny_transformer_shapes_and_deleting_layers():
    runtime.manual_seed(0)
    model = T.TinyTransformer(vocab=10, seq_len=6, d_model=16, n_heads=4, n_layers=3)
    tokens = torch.randint(10, (4, 6))
    assert model(tokens).shape == (4, 6, 10)
    states = model.stream(tokens, skip_layers=(1,))
    assert len(states) == 4 and torch.equal(states[2], states[1])
    with torch.no_grad():
        full, short = model.stream(tokens), model.stream(tokens, depth=2)
    assert len(short) == 3 and all(torch.equal(a, b) for a, b in zip(short, full[:3], strict=True))
    with pytest.raises(ValueError, match="norm_position"):
        T.TinyTransformer(10, 6, norm_position="none")


def test_rank_residual_on_constructed_inputs():
    gen = runtime.generator(0)
    row = torch.randn(1, 8, generator=gen)
    assert T.rank_residual(row.expand(5, 8)).item() < 1e-6  # every token the same: rank one
    # centred rows (mean zero over tokens) are entirely residual
    x = torch.randn(5, 8, generator=gen)
    assert abs(T.rank_residual(x - x.mean(0)).item() - 1) < 1e-6
    # a known mixture: X = 1 rᵀ + E with E centred and orthogonal to it in Frobenius inner product
    e = torch.zeros(4, 3)
    e[0, 0], e[1, 0] = 1.0, -1.0
    r = torch.tensor([[0.0, 2.0, 0.0]])
    value = T.rank_residual(r.expand(4, 3) + e).item()
    assert abs(value - math.sqrt(2) / math.sqrt(2 + 16)) < 1e-6
    # batched and scale invariant
    batch = torch.randn(3, 5, 8, generator=gen)
    assert T.rank_residual(batch).shape == (3,)
    assert torch.allclose(T.rank_residual(7 * batch), T.rank_residual(batch))
    with pytest.raises(ValueError, match="x"):
        T.rank_residual(torch.ones(3))
    with pytest.raises(TypeError, match="x"):
        T.rank_residual([[1.0]])


def test_amplification_is_zero_for_rezero_and_restores_weights():
    runtime.manual_seed(0)
    x = torch.randn(2, 5, 16)
    zero = nn.Sequential(*[T.Block(16, 4, "pre", alpha=0.0) for _ in range(3)])
    assert T.amplification(zero, x) == 0.0
    blocks = nn.Sequential(*[T.Block(16, 4, "pre") for _ in range(3)])
    before = [p.clone() for p in blocks.parameters()]
    value = T.amplification(blocks, x, eps=0.01)
    assert value > 0
    assert all(torch.equal(a, b) for a, b in zip(before, blocks.parameters(), strict=True))
    with pytest.raises(ValueError, match="eps"):
        T.amplification(blocks, x, eps=0.0)


def test_sublayer_grad_norms_has_one_value_per_layer():
    runtime.manual_seed(0)
    model = T.TinyTransformer(8, 5, 16, 4, 3)
    tokens, targets = T.reversal_batch(4, 5, 8, runtime.generator(0))
    g = T.sublayer_grad_norms(model, tokens, targets)
    assert set(g) == {"attn_qk", "attn_vo", "mlp_in", "mlp_out"}
    assert all(len(v) == 3 and all(x > 0 for x in v) for v in g.values())
    assert all(p.grad is None or torch.all(p.grad == 0) for p in model.parameters())


def test_reversal_batch_reverses():
    tokens, targets = T.reversal_batch(3, 6, 5, runtime.generator(0))
    assert torch.equal(targets, tokens.flip(-1))
    with pytest.raises(ValueError, match="vocab"):
        T.reversal_batch(3, 6, 1)


def test_warmup_schedule():
    run = T.train_reversal("pre", steps=4, warmup=4, lr=1e-3, n_layers=1, d_model=8, batch=4, seq_len=4)
    assert run.lr == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert len(run.loss) == 4 and 0 <= run.final_acc <= 1
    assert 0 <= T.reversal_accuracy(run.model, skip_layers=(0,), n=16) <= 1


# --- hyper-connections -----------------------------------------------------------------------------


def test_sinkhorn_returns_doubly_stochastic_matrices():
    gen = runtime.generator(0)
    logits = torch.randn(10, 4, 4, generator=gen, dtype=torch.float64)
    m = hyper.sinkhorn(logits, n_iters=50)
    assert torch.all(m > 0)
    assert torch.allclose(m.sum(-1), torch.ones(10, 4, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(m.sum(-2), torch.ones(10, 4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(hyper.gain(m), torch.ones(10, dtype=torch.float64), atol=1e-8)


def test_sinkhorn_step_by_hand():
    m = torch.tensor([[1.0, 3.0], [1.0, 1.0]])
    rows = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    expected = rows / rows.sum(0, keepdim=True)
    assert torch.allclose(hyper.sinkhorn_step(m), expected)


def test_sinkhorn_temperature_and_validation():
    logits = torch.eye(4, dtype=torch.float64)
    cold = hyper.sinkhorn(logits, temperature=0.1)
    hot = hyper.sinkhorn(logits, temperature=10.0)
    assert cold.diagonal().min() > 0.99 and hot.diagonal().max() < 0.3
    with pytest.raises(ValueError, match="temperature"):
        hyper.sinkhorn(logits, temperature=0)
    with pytest.raises(ValueError, match="logits"):
        hyper.sinkhorn(torch.ones(3, 4))


def test_product_of_projected_mixers_keeps_gain_one():
    free = hyper.mixer_product(4, 16, seed=0, n_samples=8)
    proj = hyper.mixer_product(4, 16, seed=0, n_samples=8, project=True, n_iters=60)
    assert len(free) == 16 and free[-1].shape == (8, 4, 4)
    assert torch.allclose(hyper.gain(proj[-1]), torch.ones(8, dtype=torch.float64), atol=1e-6)
    assert hyper.gain(free[-1]).max() > 1.05
    assert abs(hyper.stream_spread(torch.eye(4)).item() - math.sqrt(3 / 4)) < 1e-6
    assert hyper.stream_spread(torch.full((4, 4), 0.25)).item() < 1e-6


def test_grad_norms_by_depth_equals_one_call_per_depth():
    # the one-forward-pass version gives the same numbers as sublayer_grad_norms at each truncated depth
    for norm in ("pre", "post"):
        runtime.manual_seed(0)
        model = T.TinyTransformer(8, 5, 16, 4, 4, norm)
        tokens, targets = T.reversal_batch(6, 5, 8, runtime.generator(1))
        out = T.grad_norms_by_depth(model, tokens, targets, (1, 2, 4))
        for L in (1, 2, 4):
            ref = T.sublayer_grad_norms(model, tokens, targets, depth=L)
            for key, values in ref.items():
                assert math.isclose(out.last[L][key], values[-1], rel_tol=1e-6), (norm, L, key)
        assert out.layers.keys() == ref.keys()
        for key, values in ref.items():
            assert torch.allclose(torch.tensor(out.layers[key]), torch.tensor(values), rtol=1e-6)
        with torch.no_grad():
            states = model.stream(tokens)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out.states, states, strict=True))
        assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    with pytest.raises(ValueError, match="blocks"):
        T.grad_norms_by_depth(model, tokens, targets, (8,))


def test_stacked_transformers_match_the_separate_models():
    models = []
    for seed, norm in enumerate(("post", "pre", "post")):
        runtime.manual_seed(seed)
        models.append(T.TinyTransformer(8, 5, 16, 4, 3, norm))
    stacked = T.StackedTransformers(models)
    tokens = torch.randint(8, (3, 4, 5), generator=runtime.generator(0))
    with torch.no_grad():
        logits = stacked.logits(tokens)
        last = stacked.stream_last(tokens)
        for s, m in enumerate(models):
            assert torch.allclose(logits[s], m(tokens[s]), atol=1e-5)
            assert torch.allclose(last[s], m.stream(tokens[s])[-1], atol=1e-5)


def test_train_reversals_match_separate_runs():
    # float32 round-off of the batched products is the only difference: a few steps agree to 1e-4
    settings = [
        dict(norm_position="post"),
        dict(norm_position="post", warmup=3),
        dict(norm_position="pre", seed=2),
    ]
    common = dict(steps=5, n_layers=2, d_model=8, n_heads=2, seq_len=4, vocab=6, batch=4)
    seen, initial = [], []

    def start(stacked):
        initial.append(stacked.stream_last(torch.zeros(3, 1, 4, dtype=torch.long)).clone())
        seen.append("start")

    runs = T.train_reversals(
        settings, on_step=lambda step, stacked: seen.append(step), on_start=start, **common
    )
    assert seen == ["start", *range(5)]  # on_start sees the initial weights, before any update
    for kw, first in zip(settings, initial[0], strict=True):
        runtime.manual_seed(kw.get("seed", 0))
        model = T.TinyTransformer(6, 4, 8, 2, 2, kw["norm_position"])
        assert torch.allclose(first[0], model.stream(torch.zeros(1, 4, dtype=torch.long))[-1][0], atol=1e-5)
    for kw, run in zip(settings, runs, strict=True):
        ref = T.train_reversal(**kw, **common)
        assert run.lr == ref.lr
        assert run.acc == pytest.approx(ref.acc, abs=1e-6)
        assert run.loss == pytest.approx(ref.loss, rel=1e-4)
        for p, q in zip(run.model.parameters(), ref.model.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-4)
    with pytest.raises(ValueError, match="norm_position"):
        T.train_reversals([dict(seed=0)])
    with pytest.raises(TypeError, match="unknown"):
        T.train_reversals(settings, depth=3)


def test_lesion_accuracies_equal_one_call_per_deleted_block():
    run = T.train_reversal("pre", steps=3, n_layers=3, d_model=8, n_heads=2, seq_len=4, vocab=6, batch=4)
    expected = [T.reversal_accuracy(run.model, n=64)]
    expected += [T.reversal_accuracy(run.model, skip_layers=(i,), n=64) for i in range(3)]
    assert T.lesion_accuracies(run.model, n=64) == expected


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_amplification_by_depth_equals_one_call_per_depth(norm):
    runtime.manual_seed(0)
    blocks = [T.Block(16, 4, norm) for _ in range(5)]
    x = torch.randn(2, 5, 16, generator=runtime.generator(1))
    weights = [p.clone() for b in blocks for p in b.parameters()]
    got = T.amplification_by_depth(blocks, x, (1, 3, 5), eps=0.01, seed=3)
    params = [p for b in blocks for p in b.parameters()]
    assert all(torch.equal(p, w) for p, w in zip(params, weights, strict=True))
    for L in (1, 3, 5):
        assert got[L] == T.amplification(nn.Sequential(*blocks[:L]), x, eps=0.01, seed=3)
