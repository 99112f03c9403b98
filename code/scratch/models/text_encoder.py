r"""An encoder-only Transformer text classifier (BERT's shape, trained from scratch).

Token ids (B, T) in, class logits (B, K) out:

$$h_0 = \sqrt{d}\, E[x] + P, \quad h_L = \mathrm{Encoder}(h_0), \quad
\text{logits} = W\, \mathrm{pool}(h_L) + b,$$

with the sinusoidal positions $P$, the :class:`~scratch.models.transformer.Encoder`
of the Transformer chapter (no causal mask: every token reads every other one,
padding excepted) and one of two poolings:

- ``"cls"``: a classification token ``[CLS]`` is put in front of every text
  (:func:`encode_batch` does it) and its final vector is the text's summary, as
  in BERT (Devlin et al., 2019); attention has to learn to gather into it;
- ``"mean"``: the average of the final vectors of the text's tokens, padding
  left out; no learning needed to gather, but every token counts the same.

Padding (id :data:`PAD`) is masked out of the attention keys and of the mean, so
the logits of a text do not depend on how much padding its batch adds (the tests
check it). :class:`TextEncoderSpec` builds it; :func:`encoder_parameters` is the
hand count the tests compare with.

Chapter: "Transformer text classification" (book/sequences/text_classification.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigError, choice, field, in_range, positive
from .spec import ModelSpec
from .transformer import Encoder, PositionalEncoding, padding_mask

PAD, UNK, CLS = 0, 1, 2  # reserved ids at the start of every vocabulary
SPECIALS = ("[PAD]", "[UNK]", "[CLS]")

# BERT-base (Devlin et al., 2019, Section 3): L = 12 layers, H = 768, A = 12 heads,
# feed-forward 4H, a 30,522-token WordPiece vocabulary; "Total Parameters=110M".
BERT_BASE = dict(d_model=768, nhead=12, num_layers=12, dim_feedforward=3072)
BERT_BASE_VOCAB = 30_522
PAPER_BERT_BASE_PARAMETERS = 110e6


class TextEncoder(nn.Module):
    """Embeddings, sinusoidal positions, ``num_layers`` encoder layers, pooling and
    a linear head. ``forward(tokens)`` takes (B, T) ids, :data:`PAD`-padded on the
    right, and returns (B, num_classes) logits."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 512,
        dropout: float = 0.1,
        norm_first: bool = True,
        pooling: str = "cls",
        max_len: int = 512,
        pad_id: int = PAD,
    ):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.d_model, self.pooling, self.pad_id = d_model, pooling, pad_id
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = PositionalEncoding(d_model, dropout, max_len)
        self.encoder = Encoder(
            num_layers,
            norm_first,
            d_model=d_model,
            nhead=nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, num_classes)
        # As the Transformer chapter: embeddings N(0, 1/d) so that sqrt(d) E[x]
        # has unit variance, like the positions; Glorot matrices; zero biases.
        for name, p in self.named_parameters():
            if name.startswith("embed"):
                nn.init.normal_(p, 0.0, d_model**-0.5)
                with torch.no_grad():
                    p[pad_id] = 0
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> the pooled text vectors (B, d_model)."""
        pad = padding_mask(tokens, self.pad_id)  # (B, T), True = padding
        h = self.pos(self.embed(tokens) * math.sqrt(self.d_model))  # (B, T, d)
        h = self.encoder(h, src_key_padding_mask=pad)  # (B, T, d)
        if self.pooling == "cls":
            return h[:, 0]  # the [CLS] position: (B, d)
        keep = (~pad).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1)  # masked mean: (B, d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(tokens)))  # (B, K)


def encoder_parameters(
    vocab_size: int,
    num_classes: int,
    d_model: int,
    num_layers: int,
    dim_feedforward: int,
    norm_first: bool = True,
) -> int:
    """The parameters of a :class:`TextEncoder`, counted by hand: the embedding
    table, per layer the four attention projections (weights and biases), the two
    feed-forward layers and two layer norms, a final layer norm when pre-norm, the
    head. Heads do not change the count (they split ``d_model``)."""
    d, f = d_model, dim_feedforward
    layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
    final_norm = 2 * d if norm_first else 0
    return (
        vocab_size * d + num_layers * layer + final_norm + d * num_classes + num_classes
    )


@dataclass
class TextEncoderSpec(ModelSpec):
    """The classifier's architecture; the chapter sets the vocabulary and the
    classes from its data. The defaults are the `small` profile's model."""

    vocab_size: int = field(
        default=4000, metadata=positive("token ids (the chapter sets it from its data)")
    )
    num_classes: int = field(
        default=8, metadata=positive("classes (the chapter sets it from its data)")
    )
    d_model: int = field(default=64, metadata=positive("width of every token's vector"))
    nhead: int = field(
        default=4, metadata=positive("attention heads, d_model/nhead wide")
    )
    num_layers: int = field(default=2, metadata=positive("encoder layers"))
    dim_feedforward: int = field(
        default=256, metadata=positive("hidden width of the feed-forward nets (4 d)")
    )
    dropout: float = field(
        default=0.1,
        metadata=in_range(
            0, 1, "dropout on the sums, sublayers and head", high_open=True
        ),
    )
    norm: str = field(
        default="pre",
        metadata=choice(
            "pre", "post", help="pre: x + f(LN(x)), trains without warmup; post: BERT's"
        ),
    )
    pooling: str = field(
        default="cls",
        metadata=choice(
            "cls", "mean", help="the [CLS] token's vector, or the mean over the tokens"
        ),
    )
    max_len: int = field(
        default=512,
        metadata=positive("longest input the positions cover, [CLS] included"),
    )

    def validate(self):
        if self.d_model % self.nhead:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by nhead={self.nhead}"
            )
        if self.d_model % 2:
            raise ConfigError(f"d_model={self.d_model} must be even (sinusoids)")

    def build(self, **stats) -> TextEncoder:
        return TextEncoder(
            self.vocab_size,
            self.num_classes,
            d_model=self.d_model,
            nhead=self.nhead,
            num_layers=self.num_layers,
            dim_feedforward=self.dim_feedforward,
            dropout=self.dropout,
            norm_first=self.norm == "pre",
            pooling=self.pooling,
            max_len=self.max_len,
        )


def encode_batch(
    ids: list[list[int]], max_len: int, cls: bool = True, pad_id: int = PAD
) -> torch.Tensor:
    """Token-id lists -> one (B, T) tensor: ``[CLS]`` in front when ``cls``, cut
    to ``max_len`` positions, padded with ``pad_id`` on the right to the longest.
    An empty text keeps one position (``[CLS]``, or ``[UNK]`` without it), so no
    query ever has only padding to read."""
    rows = [([CLS] if cls else []) + list(r) for r in ids]
    rows = [(r or [UNK])[:max_len] for r in rows]
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


# ---- the data of the chapter: speeches, words, a vocabulary ------------------------
def parse_speeches(text: str) -> list[tuple[str, str]]:
    """``(speaker, speech)`` in the order of the text. A block of lines between
    blank lines is a speech when its first line is a name ending in a colon
    ("ROMEO:", "KING RICHARD III:"); the speech is its other lines, joined by
    spaces. Blocks without such a line, or without a line after it, are skipped."""
    out = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.strip("\n").split("\n")]
        head = lines[0]
        name = head[:-1]
        if (
            len(lines) > 1
            and head.endswith(":")
            and name
            and name[0].isupper()
            and all(c.isalpha() or c in " '-." for c in name)
        ):
            out.append((name, " ".join(line for line in lines[1:] if line)))
    return out


def tail_split(labels, test_fraction: float):
    """Indices ``(train, test, dropped)`` of items in text order, split without
    neighbours in both sets: each class's last ``test_fraction`` of its items is
    held out, together with the stretch of the text from its first held-out item
    to its last one; items of other classes inside such a stretch are dropped,
    neither trained nor tested on (they share scenes with held-out items). Every
    class is in both sets; only the first item of each stretch borders a training
    item."""
    labels = list(labels)
    test, blocked = set(), set()
    for c in sorted(set(labels)):
        where = [i for i, y in enumerate(labels) if y == c]
        n_test = max(1, round(test_fraction * len(where)))
        if n_test >= len(where):
            raise ValueError(f"class {c!r} has {len(where)} items: too few to split")
        start = where[-n_test]
        test.update(where[-n_test:])
        blocked.update(range(start, where[-1] + 1))
    train = [i for i in range(len(labels)) if i not in blocked]
    dropped = [i for i in sorted(blocked) if i not in test]
    return train, sorted(test), dropped


def words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: "Kate, I'll" -> ["kate",
    ",", "i'll"]. The tokens of both the Transformer and the bag of words."""
    out, word = [], []
    for ch in text.lower() + " ":
        if ch.isalnum() or (ch == "'" and word):
            word.append(ch)
            continue
        if word:
            out.append("".join(word).strip("'"))
            word = []
        if not ch.isspace():
            out.append(ch)
    return [w for w in out if w]


class Vocab:
    """Word -> id: :data:`SPECIALS` first, then the training words seen at least
    ``min_count`` times, most frequent first; other words map to ``[UNK]``."""

    def __init__(self, texts, min_count: int = 2):
        counts: dict[str, int] = {}
        for t in texts:
            for w in words(t):
                counts[w] = counts.get(w, 0) + 1
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count),
            key=lambda w: (-counts[w], w),
        )
        self.itos = list(SPECIALS) + kept
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, UNK) for w in words(text)]
