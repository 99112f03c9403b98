import math

import numpy as np
import pytest
import torch

from scratch.config import ConfigError
from scratch.models.gpt import (
    GPT,
    GPT2_124M,
    GPT2_124M_PARAMETERS,
    GPT2_124M_UNTIED_PARAMETERS,
    GPTSpec,
    KVCache,
    NextLogits,
    causal_mask,
    lm_loss,
)
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model, save_model
from scratch.recipes import param_groups
from scratch.text import sample

SMALL = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(autouse=True)
def one_thread():
    """Small models: threads only add overhead, and stall each other on a busy
    CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**kw):
    torch.manual_seed(0)
    return GPT(**{**SMALL, **kw}).eval()


def test_gpt2_small_has_124_439_808_parameters_tied():
    with torch.device("meta"):  # no memory, no time: shapes only
        tied = GPTSpec(**GPT2_124M).build()
        untied = GPTSpec(**GPT2_124M, tie_weights=False).build()
    assert count_parameters(tied) == GPT2_124M_PARAMETERS == 124_439_808
    assert count_parameters(untied) == GPT2_124M_UNTIED_PARAMETERS
    assert count_parameters(untied) - count_parameters(tied) == 50257 * 768
    assert tied.lm_head.weight is tied.wte.weight
    # The spec's defaults are GPT-2 small.
    assert GPTSpec().to_dict() == {**GPT2_124M, "dropout": 0.0, "tie_weights": True}


def test_parameter_count_formula():
    """12 L d^2 + 13 L d + (V + T) d + 2 d, biases included."""
    for n_layer, d in ((1, 8), (3, 32)):
        model = GPT(50, 20, n_layer, 4, d)
        expected = 12 * n_layer * d * d + 13 * n_layer * d + (50 + 20) * d + 2 * d
        assert count_parameters(model) == expected


def test_written_out_attention_equals_sdpa():
    model = small()
    x = torch.randint(0, 11, (3, 16))
    fused = model.set_fused(True)(x)
    written = model.set_fused(False)(x)
    torch.testing.assert_close(fused, written, atol=1e-5, rtol=1e-5)
    # ... and with a cache, where the mask is not a square triangle.
    cache = KVCache(model.n_layer)
    model.set_fused(True)(x[:, :9], cache)
    a = model(x[:, 9:], cache)
    cache = KVCache(model.n_layer)
    model.set_fused(False)(x[:, :9], cache)
    b = model(x[:, 9:], cache)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, fused[:, 9:], atol=1e-5, rtol=1e-5)


def test_causal_mask_offsets_queries_after_the_cache():
    assert causal_mask(3, 3).tolist() == [
        [False, True, True],
        [False, False, True],
        [False, False, False],
    ]
    assert causal_mask(2, 4).tolist() == [
        [False, False, False, True],
        [False, False, False, False],
    ]


@pytest.mark.parametrize("fused", [True, False])
def test_future_tokens_do_not_change_earlier_logits(fused):
    model = small().set_fused(fused)
    x = torch.randint(0, 11, (2, 16))
    y = x.clone()
    y[:, 10] = (y[:, 10] + 1) % 11  # change one token
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=1e-6)
    assert (a[:, 10:] - b[:, 10:]).abs().amax() > 1e-3  # the later ones see it


def test_residual_projections_start_scaled_by_depth():
    torch.manual_seed(0)
    model = GPT(10, 8, n_layer=24, n_head=4, n_embd=256)
    proj = torch.cat([b.attn.c_proj.weight.flatten() for b in model.h])
    proj = torch.cat([proj] + [b.mlp.c_proj.weight.flatten() for b in model.h])
    other = torch.cat([b.mlp.c_fc.weight.flatten() for b in model.h])
    assert abs(proj.std().item() - 0.02 / math.sqrt(2 * 24)) < 2e-4
    assert abs(other.std().item() - 0.02) < 2e-4
    assert abs(model.wte.weight.std().item() - 0.02) < 1e-3
    assert all((b.attn.c_attn.bias == 0).all() for b in model.h)


def test_weight_decay_only_on_matrices():
    model = small()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    # The tied matrix is in once; embeddings and linear weights are decayed.
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "wte.weight" in decayed and "wpe.weight" in decayed
    assert "h.0.ln_1.weight" not in decayed and "h.0.attn.c_attn.bias" not in decayed
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == count_parameters(model)


def test_kv_cache_gives_the_same_logits_and_tokens():
    model = small()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    cached, plain = NextLogits(model, use_cache=True), NextLogits(model, False)
    ids = prompt
    for _ in range(8):
        a, b = cached(ids), plain(ids)
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
        ids = np.concatenate([ids, a.argmax(1)[:, None]], axis=1)
    # After the prompt, the cache ran one position per row and call.
    assert cached.positions == prompt.size + 7 * 2
    # Through sample, past block_size (the window slides: recomputed).
    a = sample(NextLogits(model, True), prompt, 30, temperature=0.9, top_k=5, rng=3)
    b = sample(NextLogits(model, False), prompt, 30, temperature=0.9, top_k=5, rng=3)
    assert all((r == s).all() for r, s in zip(a, b))
    # A new prompt after a generation starts a fresh cache.
    fn = NextLogits(model, True)
    sample(fn, prompt, 3)
    np.testing.assert_allclose(
        fn(prompt[:, :2]), NextLogits(model, False)(prompt[:, :2]), atol=1e-5
    )


def test_too_long_an_input_is_refused():
    with pytest.raises(ValueError, match="positions"):
        small()(torch.zeros(1, 17, dtype=torch.long))


def test_training_reduces_the_loss_and_the_spec_round_trips(tmp_path):
    spec = GPTSpec(**SMALL)
    torch.manual_seed(0)
    model = spec.build()
    x = torch.arange(16).remainder(11).repeat(4, 1)[:, :15]  # a cyclic sequence
    y = torch.arange(1, 17).remainder(11).repeat(4, 1)[:, :15]
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-2)
    first = lm_loss(model(x), y).item()
    for _ in range(40):
        loss = lm_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 2.0 and loss.item() < 0.1
    save_model(tmp_path / "gpt.pt", model, spec)
    restored, again = load_model(tmp_path / "gpt.pt")
    assert again == spec
    torch.testing.assert_close(restored(x), model.eval()(x))
    assert restored.lm_head.weight is restored.wte.weight  # still tied


def test_spec_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ConfigError, match="divisible"):
        GPTSpec(n_embd=10, n_head=3)
