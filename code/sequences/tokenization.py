# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     default_lexer: ipython3
#     notebook_metadata_filter: kernelspec,jupytext,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (tokenization)=
# # Tokenization: byte-pair encoding
#
# Every language model of this part so far read text one character at a time: the
# recurrent models of {doc}`rnn` and {doc}`lstm` learned Shakespeare letter by
# letter. What a model reads, its *tokens*, is a choice made before any training,
# and it decides how long every sequence is, how large the output layer is and
# what the model can possibly write. This chapter builds the tokenizer of GPT-2,
# byte-level byte-pair encoding (BPE), from scratch; trains it on tiny Shakespeare
# step by step; measures what a larger vocabulary buys (shorter sequences, more
# text per step of a model) and what it costs (a larger output layer, rarer
# tokens); and sets it side by side with Hugging Face `tokenizers`, the library
# that does the same in practice. The GPT of the next chapters reads these tokens.

# %% tags=["hide-input"]
import os
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import regex

from scratch import data, plots, utils
from scratch.bpe import ENDOFTEXT, GPT2_PATTERN, merge
from scratch.config import Config, ConfigError, Spec, describe, positive
from scratch.engine import no_grad, optim
from scratch.engine.loop import fit_arrays
from scratch.engine.models import CharLM
from scratch.results import Reference, results_table
from scratch.text import BlockSampler, BPETokenizer, Vocab, chunks


@dataclass
class LMStudy(Spec):
    """The same small recurrent language model trained on each vocabulary's tokens."""

    vocab_sizes: tuple[int, ...] = field(
        default=(256, 512, 1024, 2048),
        metadata=positive("vocabularies compared (256 = bytes alone, no merges)"),
    )
    steps: int = field(
        default=200,
        metadata=positive(
            "Adam steps of every model: an equal budget in tokens, whatever a token "
            "holds"
        ),
    )
    batch_size: int = field(default=16, metadata=positive("blocks per step"))
    block: int = field(
        default=64,
        metadata=positive(
            "tokens per block: backpropagation through time is truncated to this"
        ),
    )
    hidden: int = field(default=128, metadata=positive("units of the GRU's state"))
    embedding_dim: int = field(
        default=64, metadata=positive("size of each token's input vector")
    )
    lr: float = field(default=0.003, metadata=positive("Adam's step size"))
    clip: float = field(
        default=1.0, metadata=positive("gradient norm clipped to before each step")
    )

    def validate(self):
        if self.block < 2 or min(self.vocab_sizes) < 256:
            raise ConfigError(
                "lm: need block >= 2 and vocabularies of at least 256 (the bytes)"
            )


@dataclass
class TokenizationConfig(Config):
    NAME = "tokenization"

    train_chars: int = field(
        default=1_003_854,
        metadata=positive(
            "characters of tiny Shakespeare to train on: its first 90% is the "
            "training text, the last 10% is held out, always whole"
        ),
    )
    vocab_size: int = field(
        default=2048,
        metadata=positive(
            "the main vocabulary: the headline characters per token and the "
            "side-by-side with tokenizers (a megabyte of text supports a few "
            "thousand tokens, GPT-2's 40 GB fifty thousand)"
        ),
    )
    max_vocab: int = field(
        default=8192,
        metadata=positive(
            "the largest vocabulary of the curve: one training run, whose first "
            "merges are every smaller tokenizer"
        ),
    )
    curve_points: int = field(
        default=10,
        metadata=positive("vocabulary sizes on the curve, log-spaced from 256"),
    )
    naive_chars: int = field(
        default=30_000,
        metadata=positive(
            "characters on which the naive trainer is checked against the library's "
            "(it recounts everything after every merge)"
        ),
    )
    naive_merges: int = field(default=40, metadata=positive("merges of that check"))
    shown_merges: tuple[int, ...] = field(
        default=(0, 10, 100, 1000),
        metadata=describe("numbers of merges after which the sentence is shown"),
    )
    sentence: str = field(
        default="To be, or not to be, that is the question: whether 'tis nobler",
        metadata=describe("the sentence whose tokens are shown after each merge"),
    )
    lm: LMStudy = field(default_factory=LMStudy)

    PROFILES = {
        "tiny": dict(
            threads=1,
            train_chars=60_000,
            vocab_size=512,
            max_vocab=1024,
            curve_points=5,
            naive_chars=3_000,
            naive_merges=15,
            shown_merges=(0, 10, 100),
            lm=dict(vocab_sizes=(256, 512), steps=30, hidden=32, embedding_dim=16),
        ),
        "small": dict(threads=1),  # the book build: about a minute on 2 CPU cores
        "full": dict(
            max_vocab=16_384,
            curve_points=20,
            lm=dict(
                vocab_sizes=(256, 512, 1024, 2048, 4096),
                steps=5000,
                batch_size=32,
                hidden=256,
            ),
        ),  # the engine on a CPU: hours, not timed yet
    }

    def validate(self):
        sizes = (self.vocab_size, *self.lm.vocab_sizes)
        if not 256 <= min(sizes) <= max(sizes) <= self.max_vocab:
            raise ConfigError(
                f"vocab_size and lm.vocab_sizes must lie in [256, max_vocab="
                f"{self.max_vocab}], got {sizes}"
            )
        if max(self.shown_merges, default=0) > self.max_vocab - 256:
            raise ConfigError(
                f"shown_merges: at most max_vocab - 256 = {self.max_vocab - 256}"
            )
        if self.curve_points < 2 or not self.sentence:
            raise ConfigError("need curve_points >= 2 and a sentence")


cfg = TokenizationConfig.from_cli()
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()

# %% [markdown]
# ## Motivation: characters are too small, words too many
#
# A character model needs a vocabulary of only the characters the text uses, and
# it can spell any word, seen or not. But its sequences are as long as the text:
# to read one line of verse the recurrent model of {doc}`rnn` takes one step per
# letter, and everything it must remember has to survive all those steps. A word
# model reads the same line in a handful of steps, but it must list every word it
# will ever read. Measured on tiny Shakespeare (training text: the first 90%;
# held out: the last 10%), with a *word* meaning a piece of GPT-2's
# pre-tokenization (a word with the space before it, a run of punctuation, of
# digits or of whitespace; below):

# %%
text = data.tiny_shakespeare()
split = int(0.9 * len(text))
train_text, val_text = text[: min(split, cfg.train_chars)], text[split:]
chunk_re = regex.compile(GPT2_PATTERN)
train_words, val_words = chunk_re.findall(train_text), chunk_re.findall(val_text)
word_counts = Counter(train_words)
top_words = {w for w, _ in word_counts.most_common(cfg.vocab_size)}
char_vocab = Vocab.from_text(train_text)


def unknown_share(known, items):
    """Share of ``items`` (characters or words) not in ``known``."""
    return sum(item not in known for item in items) / len(items)


words_per_char = len(val_words) / len(val_text)
baselines = {
    "characters": (len(char_vocab), unknown_share(char_vocab.stoi, val_text), 1.0),
    "bytes (UTF-8)": (256, 0.0, len(val_text.encode()) / len(val_text)),
    "words, every one in the training text": (
        len(word_counts),
        unknown_share(word_counts, val_words),
        words_per_char,
    ),
    f"words, the {cfg.vocab_size:,} most frequent": (
        cfg.vocab_size,
        unknown_share(top_words, val_words),
        words_per_char,
    ),
}
print(f"training text {len(train_text):,} characters, held out {len(val_text):,}")
print(f"{'vocabulary':<40}{'size':>8}{'unknown (held out)':>20}{'tokens/char':>13}")
for name, (size, unk, per_char) in baselines.items():
    print(f"{name:<40}{size:>8,}{unk:>20.2%}{per_char:>13.3f}")

# %% [markdown]
# The character vocabulary is tiny and the held-out text is spelled (almost)
# entirely in characters it knows, but each character is one step. Words shorten
# the sequence several times over, and yet every word ever seen is a row of the
# embedding and of the output layer, and some of the held-out words (the share
# printed) were never seen at all: a word model cannot read them, let alone write them. Cut the
# list to a vocabulary the size of this chapter's main BPE vocabulary and the
# unknown share grows further. Characters also stop being small outside English:

# %%
assigned = sum(
    unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co") for c in range(0x110000)
)
sample_text = "naïve café, 東京, Привет 🙂"
print(
    f"Unicode {unicodedata.unidata_version} assigns {assigned:,} characters; "
    f"{sample_text!r} is {len(sample_text)} characters, "
    f"{len(sample_text.encode())} UTF-8 bytes"
)

# %% [markdown]
# A character vocabulary for all text would need every one of them. Bytes are the
# way out: UTF-8 writes every character as one to four bytes, so 256 symbols spell
# any text, and a model over bytes never meets an unknown symbol. Byte-pair
# encoding starts from the bytes and *learns* which byte sequences deserve a token
# of their own: frequent words become one token, rare words are spelled in a few
# pieces, and nothing is unknown.
#
# ## Theory
#
# ### Tokens, and loss per character
#
# A tokenizer maps a string $s$ of $|s|$ characters to ids $t_1, \dots, t_n$ and
# back; a language model over the ids predicts $p(t_i \mid t_{<i})$. Two models
# with different tokenizers are compared on the same text, per character:
#
# $$
# \text{nats per character} = \frac{1}{|s|} \sum_{i=1}^{n} -\log p(t_i \mid t_{<i})
# = \frac{n}{|s|} \cdot \text{nats per token}.
# $$ (tok-per-char)
#
# The loss *per token* is not comparable: a token of three characters is harder
# to predict than one of one character. The ratio $n / |s|$, tokens per
# character, is what a tokenizer controls: the fewer tokens, the fewer steps a
# model takes per line, and the more text fits in a context of a given number of
# tokens. (Divide by $\ln 2$ for bits per character. Strictly, the model also
# gives some probability to other id sequences that decode to $s$, so
# eq. {eq}`tok-per-char` slightly overstates the loss of $s$; those sequences
# never occur in training.)
#
# ### Byte-pair encoding
#
# BPE began as a compression scheme {cite:p}`gage1994new`: replace the most
# frequent pair of adjacent symbols by a new symbol, and repeat.
# {cite:t}`sennrich2016neural` used it to learn a vocabulary of *subword units*
# for translation, so that rare words are written as sequences of known pieces.
# Training starts from the text as a sequence of base symbols and, for
# $k = 0, 1, \dots$, counts the adjacent pairs and merges the most frequent one,
#
# $$
# (a_k, b_k) = \operatorname*{arg\,max}_{(a, b)} c_k(a, b), \qquad
# c_k(a, b) = \big|\{i : t_i = a,\ t_{i+1} = b\}\big|,
# $$ (bpe-argmax)
#
# into the new token $z_k = a_k b_k$, id $256 + k$, replacing its occurrences left
# to right. Each merge adds one token to the vocabulary and removes one token from
# the text per occurrence it replaces, so after $K$ merges
#
# $$
# V = 256 + K, \qquad n_K = n_0 - \sum_{k < K} m_k,
# $$ (bpe-length)
#
# where $m_k$ is the number of occurrences replaced ($c_k(a_k, b_k)$, unless the
# pair is a token doubled: in `aaa` the pair `aa` is counted twice and replaced
# once). The vocabulary size is the knob: training stops when $V$ is reached. The
# merges are greedy, so the first merges of a long run are exactly a shorter
# run's: one training run gives the tokenizer of every smaller size.
#
# A new text is encoded by applying the learnt merges *in the order they were
# learnt*: within each piece, merge the adjacent pair that was learnt first (the
# lowest id), until no learnt pair is left. This reproduces exactly the
# segmentation that training produced on its own text.
#
# ### Bytes and pre-tokenization
#
# {cite:t}`radford2019language` made BPE *byte-level* for GPT-2: the base symbols
# are the 256 byte values, so every string has an encoding and no token is
# unknown. On raw bytes, though, BPE spends tokens on variants such as `dog.`,
# `dog!` and `dog?`, and merges across word boundaries. GPT-2 therefore first cuts
# the text with a regular expression into *chunks* (the "words" of the
# measurement above) and counts pairs only inside a chunk:

# %%
print(GPT2_PATTERN)
print(chunk_re.findall("First Citizen:\nWe'll go, 1605!  Speak."))

# %% [markdown]
# English contractions, an optional space and a run of letters (`\p{L}`), of
# digits (`\p{N}`) or of other symbols, and runs of whitespace. A space belongs
# to the word after it, so ` speak` is one token, not two. No token spans two
# chunks, so tokens per character can never fall below chunks per character,
# whatever the vocabulary size.
#
# ### Special tokens
#
# Some ids are not text: `<|endoftext|>` marks where one document ends and the
# next begins in GPT-2's training stream, and other models add padding, a
# beginning of sequence, or chat roles. A special token gets an id after the
# merges and is never produced by a merge. Encoding must recognize it only when
# the caller says so (`tiktoken`'s `allowed_special`): a document that happens to
# contain the characters `<|endoftext|>` must not end the document, just as text
# typed into a form must not run as a database command.
#
# ## Implementation
#
# ### The definition, naively
#
# Eq. {eq}`bpe-argmax` as written: keep every chunk, recount every pair after
# every merge, break ties by the smaller pair of ids. On a string small enough to
# follow by hand, `aaabdaaabac` (a single chunk):


# %%
def naive_bpe(text, n_merges):
    """Up to ``n_merges`` merges of ``text``, recounting all pairs each time:
    (merges, counts, the chunks' final ids)."""
    pieces = [list(c.encode()) for c in regex.findall(GPT2_PATTERN, text)]
    merges, counts = [], []
    for k in range(n_merges):
        pairs = Counter(p for ids in pieces for p in zip(ids, ids[1:]))
        if not pairs:
            break
        pair = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, then smallest
        merges.append(pair)
        counts.append(pairs[pair])
        pieces = [merge(ids, pair, 256 + k) for ids in pieces]
    return merges, counts, pieces


toy = BPETokenizer().train("aaabdaaabac", 259)
for k in range(4):
    step = toy.truncated(256 + k)
    shown = [
        step.decode([i]) if i < 256 else f"<{step.decode([i])}>"
        for i in step.encode("aaabdaaabac")
    ]
    print(f"after {k} merges: {' '.join(shown)}")
print("merges:", toy.merges, "counts:", toy.merge_counts)
assert toy.merges == naive_bpe("aaabdaaabac", 3)[0] == [(97, 97), (97, 98), (256, 257)]

# %% [markdown]
# `aa` occurs four times (twice in each `aaa`) and is merged first; then `aa`
# followed by `a` and `a` followed by `b` both occur twice, and the tie goes to
# the smaller pair of ids, `ab` (ids 97, 98); then `<aa><ab>` twice. The naive
# trainer reads the whole text once per merge, which is fine for a sentence and
# hopeless for a book.
#
# ### The library's trainer
#
# `scratch.bpe.BPETokenizer` learns the same merges faster with two observations.
# The text has far fewer *distinct* chunks than chunks, so each distinct chunk is
# stored once with its count. And a merge changes only the chunks that contain the
# merged pair, so only their pairs are recounted: their old pairs are subtracted,
# their new pairs added, and a heap of `(-count, pair)` finds the next most
# frequent pair (entries made stale by a later count are skipped when they come
# up):
#
# ```{literalinclude} ../../code/scratch/bpe.py
# :pyobject: _learn
# ```
#
# `train` counts the distinct chunks (between special tokens, never across them)
# and calls it:
#
# ```{literalinclude} ../../code/scratch/bpe.py
# :pyobject: BPETokenizer.train
# ```
#
# Encoding merges, inside each chunk, the learnt pair of lowest rank until none is
# left; a chunk is encoded once and its ids cached (a text repeats its words):
#
# ```{literalinclude} ../../code/scratch/bpe.py
# :pyobject: BPETokenizer._encode_chunk
# ```
#
# ```{literalinclude} ../../code/scratch/bpe.py
# :pyobject: BPETokenizer.encode
# ```
#
# Decoding joins the tokens' bytes and reads them as UTF-8. A list of ids can end
# in the middle of a character (a token is bytes, not characters); like GPT-2,
# `decode` then writes U+FFFD (`errors="replace"`), while `decode(encode(s)) == s`
# for every string (`tests/test_bpe.py` checks this on arbitrary Unicode, emoji,
# combining marks and control characters included). `save` and `load` write and
# read JSON: the pattern, the merges and the special tokens.
#
# The two trainers, on the first characters of the training text:

# %%
check_text = train_text[: cfg.naive_chars]
t0 = time.perf_counter()
naive_merges, naive_counts, naive_pieces = naive_bpe(check_text, cfg.naive_merges)
naive_seconds = time.perf_counter() - t0
t0 = time.perf_counter()
fast = BPETokenizer().train(check_text, 256 + cfg.naive_merges)
fast_seconds = time.perf_counter() - t0
naive_equal = (
    fast.merges == naive_merges
    and fast.merge_counts == naive_counts
    and fast.encode(check_text) == [t for ids in naive_pieces for t in ids]
)
print(
    f"{cfg.naive_merges} merges of {len(check_text):,} characters: naive "
    f"{naive_seconds:.2f} s, library {fast_seconds:.3f} s; same merges, counts and "
    f"encoding: {naive_equal}"
)
assert naive_equal

# %% [markdown]
# The same merges, the same counts, and encoding gives exactly the segmentation the
# naive trainer ended with. (`tests/test_bpe.py` repeats the comparison on random
# texts with many ties.)
#
# ## Experiment
#
# The profiles (`tiny` for the tests, `small` for this book, `full` for a longer
# study) differ in these fields:

# %%
print(TokenizationConfig.profile_table())

# %% [markdown]
# ### BPE step by step on tiny Shakespeare
#
# The tokenizer of the main size, trained on the training text, and one trained to
# the largest size of the experiment; by eq. {eq}`bpe-argmax`'s greediness its
# first merges must be the smaller one's:

# %%
t0 = time.perf_counter()
tokenizer = BPETokenizer().train(train_text, cfg.vocab_size)
bpe_train_seconds = time.perf_counter() - t0
big = BPETokenizer().train(train_text, cfg.max_vocab)
print(f"{tokenizer} in {bpe_train_seconds:.2f} s; {big}")
assert big.truncated(cfg.vocab_size) == tokenizer
assert tokenizer.decode(tokenizer.encode(text)) == text


def show_token(tok, i):
    """A token's text with its space and line breaks made visible."""
    return tok.decode([i]).replace(" ", "␣").replace("\n", "↵")


print(f"{'merge':>5}  {'new id':>6}  {'left':>8} + {'right':<8} {'count':>7}  token")
for k, (a, b) in enumerate(tokenizer.merges[:12]):
    left, right = show_token(tokenizer, a), show_token(tokenizer, b)
    print(
        f"{k:>5}  {256 + k:>6}  {left:>8} + {right:<8} "
        f"{tokenizer.merge_counts[k]:>7,}  {show_token(tokenizer, 256 + k)}"
    )

# %% [markdown]
# The first merges are the most frequent pairs of English spelled with a space
# before words: a space and the first letter of a frequent word, `he`, `ou`, `in`;
# within a few dozen merges whole words appear. A line of *Hamlet*, a play that is
# not in tiny Shakespeare (the config's `sentence`), after more and more merges (one box per token, `␣` a space):

# %%
rows = []
for k in cfg.shown_merges:
    tok = big.truncated(256 + k)
    ids = tok.encode(cfg.sentence)
    rows.append((f"{k} merges: {len(ids)} tokens", [show_token(tok, i) for i in ids]))
    print(f"{k:>5} merges, {len(ids):>3} tokens: {'|'.join(rows[-1][1])}")

fig = go.Figure()
for r, (label, tokens) in enumerate(rows):
    widths = [len(t) for t in tokens]
    starts = np.cumsum([0] + widths[:-1])
    fig.add_trace(
        go.Bar(
            y=[label] * len(tokens),
            x=widths,
            base=starts,
            orientation="h",
            text=tokens,
            textposition="inside",
            insidetextanchor="middle",
            textfont=dict(family="monospace"),
            marker=dict(
                color=[plots.COLORS[j % 2 + 5 * (r % 2)] for j in range(len(tokens))],
                line=dict(width=1, color="rgba(128,128,128,0.6)"),
            ),
            hovertext=[repr(t) for t in tokens],
            hoverinfo="text",
            showlegend=False,
        )
    )
fig.update_layout(
    title="One sentence after more and more merges: one box per token",
    height=120 + 60 * len(rows),
    xaxis_title="characters",
)
fig.update_yaxes(autorange="reversed")
plots.show(fig, cfg.run_dir / "merges.html")

# %% [markdown]
# With no merges every character is a token (the text is ASCII, one byte per
# character); after a few merges the frequent pairs fuse; after many, common words
# are single tokens while a rarer word is still spelled in pieces.
#
# ### Vocabulary size against sequence length
#
# Every smaller tokenizer is a prefix of the large one (`truncated`), so the curve
# costs one training run and an encoding of the texts per point. Tokens per
# character of the held-out text and of the training text, and the floor set by
# the chunks:

# %%
sizes = np.unique(np.geomspace(256, cfg.max_vocab, cfg.curve_points).round())
sizes = [int(v) for v in sorted({*sizes, cfg.vocab_size, *cfg.lm.vocab_sizes})]
curve_val, curve_train, streams = {}, {}, {}
for v in sizes:
    tok = big.truncated(v)
    val_ids, train_ids = tok.encode(val_text), tok.encode(train_text)
    curve_val[v] = len(val_ids) / len(val_text)
    curve_train[v] = len(train_ids) / len(train_text)
    if v in cfg.lm.vocab_sizes:  # kept for the language models below
        streams[v] = np.array(train_ids), np.array(val_ids)
fig = go.Figure()
fig.add_trace(go.Scatter(x=sizes, y=list(curve_val.values()), name="held-out text"))
fig.add_trace(
    go.Scatter(
        x=sizes, y=list(curve_train.values()), name="training text", line_dash="dot"
    )
)
fig.add_hline(
    y=words_per_char,
    line_dash="dash",
    annotation_text="chunks per character (held out): the floor",
)
fig.update_xaxes(type="log", title="vocabulary size (256 bytes + merges)")
fig.update_yaxes(title="tokens per character", rangemode="tozero")
fig.update_layout(title="A larger vocabulary, a shorter sequence", height=400)
plots.show(fig, cfg.run_dir / "vocab_curve.html")
chars_per_token = 1 / curve_val[cfg.vocab_size]
for v in sizes:
    print(
        f"V = {v:>6,}: {curve_val[v]:.3f} tokens per character held out "
        f"({1 / curve_val[v]:.2f} characters per token), {curve_train[v]:.3f} "
        "on the training text"
    )
assert all(a > b for a, b in zip(curve_val.values(), list(curve_val.values())[1:]))
assert min(curve_val.values()) > words_per_char

# %% [markdown]
# The first merges shorten the text fastest (eq. {eq}`bpe-length`: they replace
# the most frequent pairs); each doubling of the vocabulary then buys less, and
# the curve approaches the floor of one token per chunk. On the training text the
# curve falls a little lower than on held-out text: the late merges are words
# frequent in the training text only, a mild overfitting of the vocabulary.
#
# ### Vocabulary size against a language model's loss per character
#
# Fewer tokens per character is not yet a better model: each token is a row of the
# embedding and of the output layer, so a larger vocabulary has more parameters
# and each of them is seen less often. The same small recurrent model,
# `scratch.engine.models.CharLM` with a GRU ({doc}`lstm`) in float32, trained on
# each vocabulary's tokens with the same budget (the same steps, blocks of the
# same number of *tokens*), and scored on the whole held-out text in nats per
# character, eq. {eq}`tok-per-char`. The 256-byte model is the character model of
# {doc}`rnn` (the text is ASCII: the 191 byte values that never occur are only
# pushed to a low probability).


# %%
def lm_study(tok, spec, steps=None):
    """Train ``spec``'s model for ``steps`` (default ``spec.steps``) on ``tok``'s
    tokens of the training text; score the held-out text (the state reset at each
    block)."""
    steps = steps or spec.steps
    train_ids, val_ids = streams[tok.vocab_size]
    sampler = BlockSampler(train_ids, spec.block, spec.batch_size, seed=cfg.seed)
    x, y = map(np.concatenate, zip(*(sampler.batch() for _ in range(steps))))
    utils.seed_everything(cfg.seed)
    model = CharLM(
        tok.vocab_size, spec.embedding_dim, spec.hidden, cell="GRU", dtype=np.float32
    )
    t0 = time.perf_counter()
    fit_arrays(
        model,
        optim.Adam(model.parameters(), lr=spec.lr),
        x,
        y,
        epochs=1,
        batch_size=spec.batch_size,
        loss_fn=CharLM.loss,
        seed=cfg.seed,
        clip_grad_norm=spec.clip,
        verbose=False,
    )
    seconds = time.perf_counter() - t0
    x_va, y_va = chunks(val_ids, spec.block)
    model.eval()
    total = 0.0
    with no_grad():
        for i in range(0, len(x_va), 64):
            loss = CharLM.loss(model(x_va[i : i + 64]), y_va[i : i + 64]).item()
            total += loss * y_va[i : i + 64].size
    chars = len(tok.decode(y_va.ravel()))  # the characters the targets spell
    return {
        "nats_per_char": total / chars,
        "nats_per_token": total / y_va.size,
        "parameters": sum(p.size for p in model.parameters()),
        "train_chars_seen": int(x.size / curve_train[tok.vocab_size]),
        "seconds": seconds,
        "steps": steps,
    }


lm = {v: lm_study(big.truncated(v), cfg.lm) for v in cfg.lm.vocab_sizes}
# The byte model again, for as many steps as it takes to read as much text as the
# model of the largest vocabulary read: equal text instead of equal tokens.
lm_main = max(cfg.lm.vocab_sizes)
ratio = lm[lm_main]["train_chars_seen"] / lm[256]["train_chars_seen"]
bytes_long = lm_study(big.truncated(256), cfg.lm, steps=round(cfg.lm.steps * ratio))
print(
    f"{'V':>6} {'steps':>6} {'parameters':>11} {'chars seen':>11} "
    f"{'nats/token':>11} {'nats/char':>10} {'train s':>8}"
)
for v, r in [*lm.items(), (256, bytes_long)]:
    print(
        f"{v:>6,} {r['steps']:>6} {r['parameters']:>11,} {r['train_chars_seen']:>11,} "
        f"{r['nats_per_token']:>11.3f} {r['nats_per_char']:>10.3f} {r['seconds']:>8.1f}"
    )
fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=list(lm),
        y=[r["nats_per_char"] for r in lm.values()],
        mode="lines+markers",
        name=f"{cfg.lm.steps} steps each (equal tokens)",
        hovertext=[
            f"{r['parameters']:,} parameters, {r['train_chars_seen']:,} characters read"
            for r in lm.values()
        ],
    )
)
fig.add_trace(
    go.Scatter(
        x=[256],
        y=[bytes_long["nats_per_char"]],
        mode="markers",
        marker=dict(size=11, symbol="diamond"),
        name=f"bytes, {bytes_long['steps']} steps (the text V = {lm_main:,} read)",
    )
)
fig.update_xaxes(type="log", title="vocabulary size", tickvals=list(lm))
fig.update_layout(
    title="The same GRU on each vocabulary's tokens: held-out loss per character",
    yaxis_title="held-out NLL (nats per character)",
    height=400,
)
plots.show(fig, cfg.run_dir / "lm_loss.html")

# %% [markdown]
# Per token, the loss grows with the vocabulary: a token of a larger vocabulary
# carries more text and is one of more choices. Per character, eq.
# {eq}`tok-per-char`, the order reverses: with the same number of steps over
# blocks of the same number of tokens, the larger vocabularies reach a lower
# held-out loss per character, although their output layers hold most of their
# parameters. Part of the gain is simply more text: a block of a larger
# vocabulary spans more characters, so the same steps read more of the book (the
# column "chars seen"). The diamond separates the two effects: the byte model
# trained for as many steps as it takes to read as much text as the largest
# vocabulary's model read. It improves, yet at this budget it stays above that
# model, which took fewer steps: a token that is a whole word lets one step of
# the GRU cover the distance of several, and a block of 64 tokens is a longer
# context. These are short runs of a small model; the `full` profile trains
# longer, where the gaps can change.
#
# ### Special tokens
#
# The held-out text as documents: each speech (the text between blank lines) is a
# document, joined by `<|endoftext|>`. A special token is an id appended after the
# merges, so the trained tokenizer gets one without retraining:

# %%
documents = val_text.split("\n\n")
stream = ENDOFTEXT.join(documents)
special = BPETokenizer(tokenizer.merges, special_tokens=[ENDOFTEXT])
eot = special.special_tokens[ENDOFTEXT]
allowed = special.encode(stream, allowed_special="all")
plain = special.encode(stream)
pieces = [show_token(special, i) for i in special.encode(ENDOFTEXT)]
print(
    f"{len(documents):,} documents; <|endoftext|> is id {eot}: allowed, it occurs "
    f"{allowed.count(eot):,} times; not allowed, never ({plain.count(eot)}), and "
    f"each separator is {len(pieces)} ordinary tokens {pieces}"
)
assert allowed.count(eot) == len(documents) - 1 and eot not in plain
assert special.decode(allowed) == special.decode(plain) == stream

# %% [markdown]
# Declared at training time, a special token is also a wall: training counts no
# pair across it and never learns its characters. Trained on the training text as
# documents, with and without declaring the separator:

# %%
train_stream = ENDOFTEXT.join(train_text.split("\n\n"))
declared = BPETokenizer().train(train_stream, cfg.vocab_size, [ENDOFTEXT])
undeclared = BPETokenizer().train(train_stream, cfg.vocab_size)


def separator_tokens(tok):
    """Learnt tokens made of the separator's characters."""
    pieces = [tok.decode([256 + k]) for k in range(len(tok.merges))]
    return [p for p in pieces if regex.search(r"<\||\|>|endoftext|doftext", p)]


print("declared special:  ", separator_tokens(declared))
print("undeclared:        ", separator_tokens(undeclared))
assert separator_tokens(declared) == [] and separator_tokens(undeclared)

# %% [markdown]
# Undeclared, the separator is just frequent text, so training spends vocabulary
# entries on pieces of it and the model would have to learn to
# spell it; declared, it is one id that a model learns to predict at the end of a
# document, and that generation can stop at (`scratch.text.sample(...,
# stop=eot)`).
#
# ### Side by side with Hugging Face `tokenizers`
#
# `tokenizers` (Rust) builds the same tokenizer from parts: GPT-2's byte-level
# pre-tokenizer (the same regex, with bytes shown as printable characters), a
# BPE model and its trainer, on the same text with the same vocabulary size. Both
# run on one thread here (`TOKENIZERS_PARALLELISM`), on a shared CPU.

# %%
if cfg.threads == 1:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # before the library starts
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

hf = Tokenizer(models.BPE())
hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
hf.decoder = decoders.ByteLevel()
hf_trainer = trainers.BpeTrainer(
    vocab_size=cfg.vocab_size,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
)
t0 = time.perf_counter()
hf.train_from_iterator([train_text], trainer=hf_trainer)
hf_train_seconds = time.perf_counter() - t0

fresh = BPETokenizer(tokenizer.merges)  # an empty cache: encoding from scratch
t0 = time.perf_counter()
ours_all = fresh.encode(text)
bpe_encode_seconds = time.perf_counter() - t0
t0 = time.perf_counter()
hf_all = hf.encode(text).ids
hf_encode_seconds = time.perf_counter() - t0
hf_chars_per_token = len(val_text) / len(hf.encode(val_text).ids)
assert hf.decode(hf_all) == text == fresh.decode(ours_all)


def printable_bytes():
    """GPT-2's map from the printable characters ``tokenizers`` shows to bytes."""
    shown = [*range(33, 127), *range(161, 173), *range(174, 256)]
    hidden = [b for b in range(256) if b not in shown]
    chars = shown + [256 + i for i in range(len(hidden))]
    return {chr(c): b for c, b in zip(chars, shown + hidden)}


to_byte = printable_bytes()
hf_tokens = {bytes(to_byte[c] for c in t) for t in hf.get_vocab()}
shared_tokens = len(hf_tokens & set(tokenizer.vocab)) / len(hf_tokens)
print(f"{'':<22}{'chars/token held out':>22}{'train (s)':>11}{'encode all (s)':>16}")
for name, cpt, tr, enc in (
    ("scratch.bpe (Python)", chars_per_token, bpe_train_seconds, bpe_encode_seconds),
    ("tokenizers (Rust)", hf_chars_per_token, hf_train_seconds, hf_encode_seconds),
):
    print(f"{name:<22}{cpt:>22.4f}{tr:>11.2f}{enc:>16.2f}")
print(
    f"vocabularies of {len(hf_tokens):,} and {tokenizer.vocab_size:,} tokens; "
    f"the same byte strings: {shared_tokens:.1%}"
)

# %% [markdown]
# The two give the same compression of the held-out text, and their vocabularies
# are (nearly) the same byte strings: they implement one algorithm, GPT-2's, and
# can differ only in details such as which of two equally frequent pairs is
# merged first. The Python trainer is practical thanks to the incremental counts:
# both train on the megabyte in seconds, not minutes. The encoding times measure
# different work: `tokenizers` builds a full `Encoding` (ids, the offsets of each
# token in the text, masks) and is made to encode many texts in parallel
# (`encode_batch`), while `scratch.bpe` returns only the ids of one string, with a
# cache of the chunks it has seen.
#
# ## Results
#
# This run, the recorded `full` run, and GPT-2's vocabulary for scale (50,257
# tokens learnt from 40 GB of web text, {cite:t}`radford2019language`, Sec. 2.2).
# Seconds are wall time on one thread of this run's machine, shared with other
# work.

# %%
metrics = {
    "chars_per_token": chars_per_token,
    "hf_chars_per_token": hf_chars_per_token,
    "bpe_train_seconds": bpe_train_seconds,
    "hf_train_seconds": hf_train_seconds,
    "bpe_encode_seconds": bpe_encode_seconds,
    "hf_encode_seconds": hf_encode_seconds,
    "shared_tokens": shared_tokens,
    "vocab_size": cfg.vocab_size,
    "naive_trainer_agrees": naive_equal,
    "word_unknown_share": baselines["words, every one in the training text"][1],
    "tokens_per_char": {str(v): c for v, c in curve_val.items()},
    "lm_nats_per_char": {str(v): r["nats_per_char"] for v, r in lm.items()},
    "lm_bytes_equal_text_nats_per_char": bytes_long["nats_per_char"],
    "lm_parameters": {str(v): r["parameters"] for v, r in lm.items()},
}
rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="Tiny Shakespeare: BPE against tokenizers, and a GRU's held-out loss",
    columns={
        "vocab_size": ("vocabulary", ",d"),
        "chars_per_token": ("chars/token", ".3f"),
        "hf_chars_per_token": ("HF chars/token", ".3f"),
        "bpe_train_seconds": ("train s", ".2f"),
        "hf_train_seconds": ("HF train s", ".2f"),
        "bpe_encode_seconds": ("encode s", ".2f"),
        "hf_encode_seconds": ("HF encode s", ".2f"),
        "lm_nats_per_char.256": ("GRU nats/char, bytes", ".3f"),
        f"lm_nats_per_char.{lm_main}": (f"… {lm_main:,} tokens", ".3f"),
    },
    references=[
        Reference(
            "GPT-2's vocabulary",
            {"vocab_size": 50_257},
            source="radford2019language",
            setting="Sec. 2.2",
        )
    ],
)
# The claims of the text, checked on this run:
assert naive_equal and chars_per_token > 1.0
assert abs(hf_chars_per_token / chars_per_token - 1) < 0.02  # "the same compression"
assert shared_tokens > 0.9  # "(nearly) the same byte strings"
assert curve_train[cfg.max_vocab] < curve_val[cfg.max_vocab]  # a mild overfitting
per_token = [r["nats_per_token"] for r in lm.values()]
assert all(a < b for a, b in zip(per_token, per_token[1:]))  # per token: it grows
assert lm[lm_main]["nats_per_char"] < lm[256]["nats_per_char"]  # per character: not
if cfg.profile != "tiny":
    assert bytes_long["nats_per_char"] < lm[256]["nats_per_char"]  # "it improves"
    assert lm[lm_main]["nats_per_char"] < bytes_long["nats_per_char"]  # "stays above"
    assert max(bpe_train_seconds, hf_train_seconds) < 30  # "seconds, not minutes"

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - A token is a choice made before training. Characters give long sequences;
#   words give a huge vocabulary and unknown words. Byte-level BPE starts from the
#   256 bytes, so nothing is unknown, and learns which byte strings deserve a token.
# - Training merges the most frequent adjacent pair, eq. {eq}`bpe-argmax`, until
#   the vocabulary has the size asked for; each merge shortens the text by the
#   occurrences it replaces, eq. {eq}`bpe-length`. Encoding applies the merges in
#   the order learnt. GPT-2's regex keeps every token inside one chunk.
# - Counting each distinct chunk once and updating only the pairs a merge touches
#   makes training on a megabyte take seconds in Python; the naive trainer gives
#   the same merges.
# - A larger vocabulary means fewer tokens per character, with diminishing
#   returns towards one token per chunk. Models with different vocabularies are
#   compared per character, eq. {eq}`tok-per-char`, never per token.
# - Special tokens are ids after the merges, recognized only when allowed, and
#   walls that training does not look across.
#
# In practice: Hugging Face `tokenizers` (the same algorithm in Rust, with the
# offsets and batching a production pipeline needs), OpenAI's `tiktoken` (GPT-2's
# and later GPT models' encoders, encode only), and SentencePiece
# {cite:p}`kudo2018sentencepiece`, which treats the text as raw characters with the
# space as an ordinary symbol and offers a unigram language model besides BPE.
#
# ## Exercises
#
# :::{exercise}
# :label: tokenization-ex-1
# Why can tokens per character never fall below chunks per character, however
# large the vocabulary? What would change without the pre-tokenization?
# :::
#
# :::{solution} tokenization-ex-1
# :class: dropdown
# Pairs are counted inside chunks only, so every token lies inside one chunk and
# each chunk is at least one token. With unlimited merges every chunk of the
# training text becomes one token; a held-out chunk never seen stays in pieces,
# so the held-out curve stays strictly above the floor. Without pre-tokenization
# merges could span words and punctuation (` the.`, `,\n`), the floor would go,
# and many tokens would be variants of one word with its neighbours: better
# compression of the training text, a vocabulary that generalizes worse.
# :::
#
# :::{exercise}
# :label: tokenization-ex-2
# Show that encoding by "merge the adjacent pair of lowest rank, repeatedly" gives
# the same ids as applying the merges $0, 1, \dots, K-1$ one after the other, each
# to every occurrence.
# :::
#
# :::{solution} tokenization-ex-2
# :class: dropdown
# By induction on $k$: suppose that after merges $0..k-1$ have been applied in
# order, no pair of rank below $k$ occurs (true for $k = 0$). A new pair can only
# contain the new token, whose rank as a pair is larger than the merge that made
# it; so after applying merge $k$ everywhere, no pair of rank $\le k$ occurs. So
# at each point the lowest-rank pair present is the next merge in training order,
# and the greedy encoder applies exactly that sequence (both replace occurrences
# left to right).
# :::
#
# :::{exercise}
# :label: tokenization-ex-3
# A chat service encodes the user's message with `allowed_special="all"`. What can
# a user do by typing `<|endoftext|>`? What should the service do instead?
# :::
#
# :::{solution} tokenization-ex-3
# :class: dropdown
# The typed characters become the real separator: the model sees the document
# (the system's instructions, the conversation so far) end where the user says,
# and can be made to start a new one, a prompt injection. The service should
# encode user text with no special tokens allowed (the default of
# `BPETokenizer.encode`), so those characters are ordinary tokens, and add the
# special ids itself, between the pieces it assembles.
# :::
#
# :::{exercise}
# :label: tokenization-ex-4
# In the language-model table, the model of the largest vocabulary has the highest
# loss per token and the lowest per character. Write its nats per character in
# terms of its nats per token and the curve of this chapter, and say what a
# perfect tokenizer of fixed length would change.
# :::
#
# :::{solution} tokenization-ex-4
# :class: dropdown
# By eq. {eq}`tok-per-char`, nats per character = nats per token × tokens per
# character, the second factor read from the held-out curve at that vocabulary
# size (the run computes it from the exact characters of the targets). A
# tokenizer that halves the tokens per character lowers the loss per character
# only if the loss per token less than doubles: compression alone is not
# modelling; it helps by letting the model take fewer, more informative steps.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
