"""Tests of scratch.models.text_encoder: sizes, padding, pooling, the speech data."""

import pytest
import torch

from scratch.config import ConfigError
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model, save_model
from scratch.models.text_encoder import (
    BERT_BASE,
    BERT_BASE_VOCAB,
    CLS,
    PAD,
    PAPER_BERT_BASE_PARAMETERS,
    UNK,
    TextEncoder,
    TextEncoderSpec,
    Vocab,
    encode_batch,
    encoder_parameters,
    parse_speeches,
    tail_split,
    words,
)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_parameter_count_matches_the_hand_formula(norm_first, pooling):
    model = TextEncoder(
        500, 7, d_model=48, nhead=3, num_layers=3, dim_feedforward=80,
        norm_first=norm_first, pooling=pooling,
    )
    # V d + L (4 (d^2 + d) + 2 d f + f + d + 4 d) + [2 d] + d K + K, by hand:
    layer = 4 * (48 * 48 + 48) + 2 * 48 * 80 + 80 + 48 + 4 * 48
    expected = 500 * 48 + 3 * layer + (2 * 48 if norm_first else 0) + 48 * 7 + 7
    assert count_parameters(model) == expected == encoder_parameters(
        500, 7, 48, 3, 80, norm_first
    )


def test_the_small_default_and_bert_base_sizes():
    assert count_parameters(TextEncoderSpec().build()) == 4000 * 64 + 2 * (
        4 * (64 * 64 + 64) + 2 * 64 * 256 + 256 + 64 + 4 * 64
    ) + 2 * 64 + 64 * 8 + 8
    with torch.device("meta"):
        bert = TextEncoder(BERT_BASE_VOCAB, 2, norm_first=False, **BERT_BASE)
    n = count_parameters(bert)
    assert n == 108_496_898
    # + learned positions, segments, embedding LN, pooler - our head: within 1%
    # of the paper's "110M"
    bert_like = n + 512 * 768 + 2 * 768 + 2 * 768 + 768 * 768 + 768 - (2 * 768 + 2)
    assert abs(bert_like / PAPER_BERT_BASE_PARAMETERS - 1) < 0.01


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_does_not_change_the_logits(pooling, norm_first):
    torch.manual_seed(0)
    model = TextEncoder(50, 3, 16, 2, 2, 32, norm_first=norm_first, pooling=pooling)
    model.eval()  # no dropout
    x = encode_batch([[5, 6, 7, 8], [9, 10]], max_len=20, cls=pooling == "cls")
    padded = torch.nn.functional.pad(x, (0, 9), value=PAD)  # 9 more columns
    assert padded.shape[1] == x.shape[1] + 9
    torch.testing.assert_close(model(padded), model(x), rtol=1e-5, atol=1e-5)
    # and a text's logits do not depend on the other texts of its batch
    torch.testing.assert_close(model(x[1:, : (x[1] != PAD).sum()]), model(x)[1:],
                               rtol=1e-5, atol=1e-5)


def test_without_the_mask_padding_would_change_the_logits():
    # The check above can fail: padding that is read changes the output.
    torch.manual_seed(0)
    model = TextEncoder(50, 3, 16, 2, 1, 32, pooling="mean").eval()
    x = encode_batch([[5, 6, 7]], max_len=20, cls=False)
    padded = torch.nn.functional.pad(x, (0, 5), value=PAD)
    model.pad_id = -1  # nothing is padding any more
    assert not torch.allclose(model(padded), model(x), atol=1e-4)


def test_cls_and_mean_pooling_shapes_and_values():
    torch.manual_seed(0)
    x = encode_batch([[4, 5, 6], [7]], max_len=10)  # (2, 4) with [CLS] first
    assert x.tolist() == [[CLS, 4, 5, 6], [CLS, 7, PAD, PAD]]
    for pooling in ("cls", "mean"):
        model = TextEncoder(20, 5, 8, 2, 1, 16, pooling=pooling).eval()
        assert model.features(x).shape == (2, 8)
        assert model(x).shape == (2, 5)
    # mean pooling is the mean of the encoder's outputs at the non-padding positions
    model = TextEncoder(20, 5, 8, 2, 1, 16, pooling="mean").eval()
    h = model.encoder(
        model.pos(model.embed(x) * 8**0.5), src_key_padding_mask=x == PAD
    )
    torch.testing.assert_close(model.features(x)[1], h[1, :2].mean(0))
    model.pooling = "cls"
    torch.testing.assert_close(model.features(x), h[:, 0])
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(20, 5, 8, 2, 1, 16, pooling="max")


def test_encode_batch_cuts_pads_and_never_leaves_a_text_empty():
    x = encode_batch([[], list(range(3, 13))], max_len=5, cls=False)
    assert x.tolist() == [[UNK, PAD, PAD, PAD, PAD], [3, 4, 5, 6, 7]]


def test_spec_validates_builds_and_reloads(tmp_path):
    with pytest.raises(ConfigError, match="divisible"):
        TextEncoderSpec(d_model=30, nhead=4)
    spec = TextEncoderSpec(vocab_size=30, num_classes=3, d_model=8, nhead=2,
                           num_layers=1, dim_feedforward=16, pooling="mean")
    model = spec.build().eval()
    save_model(tmp_path / "m.pt", model, spec)
    restored, spec2 = load_model(tmp_path / "m.pt")
    x = encode_batch([[3, 4, 5]], 10, cls=False)
    assert spec2 == spec and torch.equal(restored(x), model(x))


TEXT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

KING RICHARD III:
Stand all apart
Cousin of Buckingham!

Exeunt

ROMEO:
Kate, I'll go.
"""


def test_parse_speeches_on_a_literal_text():
    assert parse_speeches(TEXT) == [
        ("First Citizen", "Before we proceed any further, hear me speak."),
        ("All", "Speak, speak."),
        ("KING RICHARD III", "Stand all apart Cousin of Buckingham!"),
        ("ROMEO", "Kate, I'll go."),
    ]


def test_words_and_vocab():
    assert words("Kate, I'll GO--now.") == ["kate", ",", "i'll", "go", "-", "-", "now", "."]
    vocab = Vocab(["a b b", "b c"], min_count=2)
    assert vocab.itos == ["[PAD]", "[UNK]", "[CLS]", "b"]
    assert vocab.encode("b a B") == [3, UNK, 3]


def test_tail_split_holds_out_each_class_tail_and_drops_its_neighbours():
    labels = list("aabababbab" + "ccc")
    #              0123456789   10-12
    train, test, dropped = tail_split(labels, 0.34)
    # a at 0 1 3 5 8: its last 2 (5, 8) held out, its stretch 5..8;
    # b at 2 4 6 7 9: its last 2 (7, 9), stretch 7..9; c: 12, stretch 12..12.
    # b's speech 6 lies inside a's stretch: dropped, in neither set.
    assert test == [5, 7, 8, 9, 12]
    assert dropped == [6]
    assert train == [0, 1, 2, 3, 4, 10, 11]
    labels = list("aaaaabbbbbaaaa")  # a: 9 items, last 2 (12, 13); b: 9
    train, test, dropped = tail_split(labels, 0.2)
    assert test == [9, 12, 13] and dropped == []
    assert train == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11]
    with pytest.raises(ValueError, match="too few"):
        tail_split(["a", "b", "b"], 0.5)
