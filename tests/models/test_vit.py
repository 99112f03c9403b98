"""Tests of scratch.models.vit: ViT-B/16's published parameter count (counted, not
imported), the patch embedding as a linear map of flattened patches, the encoder
layer it shares with the Transformer chapter, permutation invariance without
positions, attention maps and rollout, the spec and saving/reloading."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from scratch.config import ConfigError
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model, save_model
from scratch.models.transformer import EncoderLayer
from scratch.models.vit import (
    OMIHUB_VIT_CIFAR,
    TIMM_VIT_B16_PARAMETERS,
    VIT_B16,
    ConvStem,
    PatchEmbedding,
    VisionTransformer,
    ViTBlock,
    ViTSpec,
    attention_maps,
    attention_rollout,
    cls_attention_grid,
)


def small(**kw):
    torch.manual_seed(0)
    args = dict(image_size=16, patch_size=4, num_classes=5, dim=32, depth=2, heads=4)
    return VisionTransformer(**{**args, "mlp_dim": 64, **kw})


def closed_form(image_size, patch_size, dim, depth, mlp_dim, num_classes, **_):
    """Parameters of a ViT with a class token, counted by hand (the paper's Eq. 1-4)."""
    n = (image_size // patch_size) ** 2
    embed = 3 * patch_size**2 * dim + dim  # E and its bias
    tokens = dim + (n + 1) * dim  # class token, positions
    attention = 4 * (dim * dim + dim)  # W_q, W_k, W_v, W_o with biases
    mlp = dim * mlp_dim + mlp_dim + mlp_dim * dim + dim
    layer = attention + mlp + 2 * 2 * dim  # two LayerNorms
    return embed + tokens + depth * layer + 2 * dim + dim * num_classes + num_classes


def test_vit_b16_has_timms_published_parameter_count():
    with torch.device("meta"):  # shapes only: 86M parameters, no memory
        model = VisionTransformer(**VIT_B16)
    assert TIMM_VIT_B16_PARAMETERS == 86_567_656
    assert count_parameters(model) == TIMM_VIT_B16_PARAMETERS
    assert closed_form(**VIT_B16) == TIMM_VIT_B16_PARAMETERS


def test_omihub_cifar_vit_has_its_6_3m_parameters():
    with torch.device("meta"):
        model = VisionTransformer(**OMIHUB_VIT_CIFAR, num_classes=10)
    assert round(count_parameters(model) / 1e6, 1) == 6.3
    assert count_parameters(model) == closed_form(**OMIHUB_VIT_CIFAR, num_classes=10)


def test_patch_embedding_is_a_linear_map_of_flattened_patches():
    torch.manual_seed(0)
    embed = PatchEmbedding(4, 3, 8)
    x = torch.randn(2, 3, 12, 8)
    # (B, C*P*P, N): unfold flattens each patch channel-first, row-major patches
    patches = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, N, 48)
    linear = patches @ embed.proj.weight.flatten(1).T + embed.proj.bias
    assert embed(x).shape == (2, 3 * 2, 8)
    torch.testing.assert_close(embed(x), linear)


def test_block_is_the_transformer_encoder_layer_with_gelu():
    torch.manual_seed(0)
    block = ViTBlock(16, 2, 32).eval()
    layer = EncoderLayer(16, 2, 32, dropout=0.0, norm_first=True).eval()
    assert block.state_dict().keys() == layer.state_dict().keys()
    layer.load_state_dict(block.state_dict())
    x = torch.randn(3, 5, 16)
    # written out: z' = z + MSA(LN(z)), z'' = z' + W2 GELU(W1 LN(z') + b1) + b2
    h = x + block.self_attn(*[block.norm1(x)] * 3)
    want = h + block.linear2(F.gelu(block.linear1(block.norm2(h))))
    torch.testing.assert_close(block(x), want)
    assert not torch.allclose(layer(x), want)  # ReLU: the activation matters


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_shapes_and_tokens(pool):
    model = small(pool=pool)
    assert model(torch.rand(3, 3, 16, 16)).shape == (3, 5)
    assert model.pos_embed.shape[1] == 16 + (pool == "cls")
    assert ViTSpec(image_size=16, patch_size=4, pool=pool).tokens == 16 + (
        pool == "cls"
    )


def _shuffle_patches(x, p, order):
    """Rearrange the (H/p)(W/p) patches of images x in the given order."""
    B, C, H, W = x.shape
    patches = F.unfold(x, p, stride=p)[:, :, order]
    return F.fold(patches, (H, W), p, stride=p)


def test_without_positions_a_vit_cannot_see_where_patches_are():
    model = small().eval()
    x = torch.rand(2, 3, 16, 16)
    shuffled = _shuffle_patches(
        x, 4, torch.randperm(16, generator=torch.Generator().manual_seed(1))
    )
    nn.init.normal_(model.head.weight)  # a zero head would make every output equal
    with torch.no_grad():
        assert not torch.allclose(model(x), model(shuffled), atol=1e-4)
        model.pos_embed.zero_()  # only the positions tell patches apart
        torch.testing.assert_close(model(x), model(shuffled), atol=1e-5, rtol=1e-5)


def test_attention_maps_are_distributions_and_change_nothing():
    model = small()
    nn.init.normal_(model.head.weight)
    x = torch.rand(2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        fused = model(x)
    maps = attention_maps(model, x)
    assert maps.shape == (2, 2, 4, 17, 17)  # (L, B, heads, T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 4, 17))
    with torch.no_grad():
        torch.testing.assert_close(model(x), fused)  # fused core again afterwards


def test_rollout_against_a_written_out_product():
    torch.manual_seed(0)
    maps = torch.rand(3, 2, 4, 5, 5).softmax(-1)  # (L, B, heads, T, T)
    eye = torch.eye(5)
    want = []
    for b in range(2):
        r = eye
        for layer in range(3):
            a = 0.5 * maps[layer, b].mean(0) + 0.5 * eye
            r = (a / a.sum(-1, keepdim=True)) @ r
        want.append(r)
    got = attention_rollout(maps)
    torch.testing.assert_close(got, torch.stack(want))
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 5))  # still distributions
    torch.testing.assert_close(
        attention_rollout(maps, residual=1.0), eye.expand(2, 5, 5)
    )


def test_cls_attention_grid():
    w = torch.zeros(1, 5, 5)
    w[0, 0] = torch.tensor([0.2, 0.1, 0.3, 0.0, 0.4])
    grid = cls_attention_grid(w, 2)
    torch.testing.assert_close(grid, torch.tensor([[[0.25, 0.75], [0.0, 1.0]]]))


def test_spec_rejects_impossible_shapes():
    with pytest.raises(ConfigError):
        ViTSpec(image_size=32, patch_size=5)
    with pytest.raises(ConfigError):
        ViTSpec(dim=100, heads=3)
    with pytest.raises(ConfigError, match="even patch_size"):
        ViTSpec(image_size=30, patch_size=3, stem=16)
    with pytest.raises(ValueError, match="even patch size"):
        ConvStem(3, 3, 8, 4)


def test_spec_builds_normalized_model_and_reloads(tmp_path):
    spec = ViTSpec(dim=32, depth=1, heads=2, mlp_dim=64)
    model = spec.build(mean=[0.4, 0.5, 0.6], std=[0.2, 0.2, 0.3])
    nn.init.normal_(model.head.weight)
    save_model(tmp_path / "vit.pt", model, spec)
    restored, spec2 = load_model(tmp_path / "vit.pt")
    assert spec2 == spec
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x))
    torch.testing.assert_close(
        restored.normalize.mean.flatten(), torch.tensor([0.4, 0.5, 0.6])
    )


def test_zero_head_starts_at_uniform_predictions():
    model = small().eval()
    with torch.no_grad():
        logits = model(torch.rand(4, 3, 16, 16))
    torch.testing.assert_close(logits.softmax(-1), torch.full((4, 5), 0.2))


def test_conv_stem_makes_the_same_tokens_from_local_features():
    args = dict(image_size=16, patch_size=4, dim=32, depth=2, mlp_dim=64, num_classes=5)
    plain, hybrid = small(), small(stem=8)
    assert isinstance(hybrid.patch_embed, ConvStem)
    x = torch.rand(2, 3, 16, 16)
    assert hybrid.patch_embed(x).shape == plain.patch_embed(x).shape == (2, 16, 32)
    assert hybrid(x).shape == (2, 5) and hybrid.grid == plain.grid == 4
    # Parameters: the linear projection of 4x4x3 patches replaced by a 3x3
    # convolution to 8 maps (no bias), batch norm (2 x 8), and a 2x2 projection.
    stem = 3 * 9 * 8 + 2 * 8 + 8 * 2 * 2 * 32 + 32
    assert count_parameters(hybrid) == closed_form(**args) - (3 * 16 * 32 + 32) + stem
    # Locality: a token reads its own 4x4 patch and, through the stride-2 3x3
    # convolution, one more row above and one more column to its left; nothing else.
    embed = hybrid.patch_embed.eval()
    y = x.clone()
    y[:, :, 4:, :] = torch.rand(2, 3, 12, 16)
    y[:, :, :, 4:] = torch.rand(2, 3, 16, 12)
    with torch.no_grad():
        torch.testing.assert_close(embed(y)[:, 0], embed(x)[:, 0])  # patch (0, 0)
        z = x.clone()
        z[:, :, 3, 3] += 1.0  # last pixel of patch (0, 0)
        changed = (embed(z) - embed(x)).abs().amax(dim=(0, 2)) > 1e-6  # (16,)
    # its own token, and the three whose row above / column to the left it is:
    # patches (0, 1), (1, 0) and (1, 1); none further
    assert changed.nonzero().flatten().tolist() == [0, 1, 4, 5]


def test_hybrid_spec_builds_and_reloads(tmp_path):
    spec = ViTSpec(dim=32, depth=1, heads=2, mlp_dim=64, patch_size=8, stem=16)
    model = spec.build()
    assert isinstance(model.patch_embed, ConvStem)
    x = torch.rand(3, 3, 32, 32)
    model.train()(x)  # batch norm statistics move
    save_model(tmp_path / "vit.pt", model, spec)
    restored, spec2 = load_model(tmp_path / "vit.pt")
    assert spec2 == spec
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(x), model.eval()(x))
