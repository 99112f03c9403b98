r"""Text for the language-model chapters: vocabularies, training windows, sampling.

- :class:`Vocab`: characters (or any tokens) to integer ids and back, built from
  a corpus, with an optional boundary token (``"."`` for names: the start and end
  of a word);
- :func:`context_windows`: every (context of ``n`` tokens, next token) pair of a
  list of words, padded with the boundary token: the data of the bigram and
  fixed-window models;
- :func:`train_val_test` splits words (not windows), so no word is seen in two
  splits;
- :func:`chunks`: a long token stream cut into consecutive (x, y) chunks, the
  training data of truncated backpropagation through time;
- :class:`BlockSampler`: random contiguous blocks of a long token stream, the
  data of the recurrent and Transformer models, drawn from a seeded generator
  whose state a checkpoint can save;
- :func:`ngram_nll`: the held-out NLL of a smoothed count model with a context
  of ``n`` tokens, the baseline every neural model of names is measured against;
- :func:`delayed_key`: the synthetic task of one long dependency (a key, a delay of
  filler, the key again) on which the fixed window, the RNN, the LSTM and the GRU
  are compared;
- :func:`numbers_task`: the toy translation task of the attention and Transformer
  chapters, numbers in digits to the same numbers in words, with
  :class:`Seq2SeqData` (vocabularies, splits, padded teacher-forcing arrays);
- :func:`sample`: text from any language model, one token at a time, with a
  temperature, top-k and top-p; the one sampling function of every chapter from the
  bigram to GPT;
- :class:`BPETokenizer` (from :mod:`scratch.bpe`): byte-level byte-pair encoding
  with GPT-2's pre-tokenization and special tokens, the tokenizer of the
  Transformer language models, saved and loaded as JSON.

All of it is NumPy (the tokenizer plain Python), so both the engine and PyTorch
models use it. In practice the Hugging Face ``tokenizers`` and ``datasets``
libraries do the first three and the tokenizer at scale, and ``transformers``'
``generate`` the sampling.

Chapter: "Bigram language models" (book/sequences/bigram.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np


class Vocab:
    """Tokens to ids and back. ``Vocab.from_text(words, boundary=".")``.

    Ids are given in sorted order of the tokens, with the boundary token (if any)
    first, at id 0, as in the makemore lectures: so a count table's first row and
    column are "start" and "end".
    """

    def __init__(self, tokens: Sequence[str], boundary: str | None = None):
        tokens = list(tokens)
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary's tokens must be distinct")
        if boundary is not None:
            if boundary in tokens:
                tokens.remove(boundary)
            tokens = [boundary] + tokens
        self.boundary = boundary
        self.itos = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def from_text(cls, text: str | Iterable[str], boundary: str | None = None):
        """Every distinct character of ``text`` (a string or a list of strings)."""
        chars = set(text) if isinstance(text, str) else set("".join(text))
        if boundary is not None and boundary in chars:
            raise ValueError(f"the boundary token {boundary!r} occurs in the text")
        return cls(sorted(chars), boundary=boundary)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text``, int64; an unknown one is an error."""
        try:
            return np.array([self.stoi[ch] for ch in text], dtype=np.int64)
        except KeyError as error:
            raise ValueError(f"{error.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def __repr__(self) -> str:
        shown = "".join(self.itos[:40])
        return f"Vocab({len(self)} tokens: {shown!r}{'...' if len(self) > 40 else ''})"


def context_windows(
    words: Sequence[str], vocab: Vocab, context: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (context, next token) pair of every word, as arrays ``X`` (N, context)
    and ``Y`` (N,).

    Each word is read as ``boundary * context + word + boundary``: the first
    targets are predicted from boundary tokens only, and the last target is the
    boundary, "the word ends here". A word of length L gives L + 1 pairs.
    """
    if vocab.boundary is None:
        raise ValueError("context_windows needs a vocabulary with a boundary token")
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    end = vocab.stoi[vocab.boundary]
    xs, ys = [], []
    for word in words:
        ids = [end] * context + list(vocab.encode(word)) + [end]
        for i in range(context, len(ids)):
            xs.append(ids[i - context : i])
            ys.append(ids[i])
    X = np.array(xs, dtype=np.int64).reshape(-1, context)
    return X, np.array(ys, dtype=np.int64)


def train_val_test(
    items: Sequence, fractions=(0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list, list, list]:
    """A seeded shuffle of ``items`` cut into three parts (80/10/10 by default)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) > 1:
        raise ValueError(f"fractions must be three shares summing to <= 1: {fractions}")
    order = np.random.default_rng(seed).permutation(len(items))
    n1 = int(fractions[0] * len(items))
    n2 = n1 + int(fractions[1] * len(items))
    n3 = n2 + int(fractions[2] * len(items)) if sum(fractions) < 1 else len(items)
    parts = order[:n1], order[n1:n2], order[n2:n3]
    return tuple([items[i] for i in part] for part in parts)


def ngram_nll(
    train_words: Sequence[str],
    eval_words: Sequence[str],
    vocab: Vocab,
    context: int,
    alpha: float,
) -> tuple[float, float, int]:
    """Add-``alpha`` count model with ``context`` tokens, fitted on ``train_words``:
    (NLL of ``eval_words`` in nats per token, share of their contexts never seen in
    training, number of distinct training contexts).

    Only the contexts that occur are stored (a dict of rows, not a $V^n$ table); a
    context never seen gets the smoothing alone, the uniform distribution.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 for held-out data, got {alpha}")
    x, y = context_windows(train_words, vocab, context)
    xe, ye = context_windows(eval_words, vocab, context)
    base = len(vocab) ** np.arange(context, dtype=np.int64)[::-1]  # context -> int
    keys, inverse = np.unique(x @ base, return_inverse=True)
    table = np.zeros((len(keys), len(vocab)))
    np.add.at(table, (inverse, y), 1)
    codes = xe @ base
    pos = np.searchsorted(keys, codes).clip(max=len(keys) - 1)
    seen = keys[pos] == codes
    rows = np.where(seen[:, None], table[pos], 0.0) + alpha  # (n, V)
    p = rows[np.arange(len(ye)), ye] / rows.sum(axis=1)
    return float(-np.log(p).mean()), float(1 - seen.mean()), len(keys)


def delayed_key(
    n: int, delay: int, rng: np.random.Generator, keys: int = 8, fillers: int = 8
) -> np.ndarray:
    """``n`` sequences ``key, filler * delay, key``, shape (n, delay + 2), int64.

    Keys are ids ``0 .. keys - 1``, fillers the next ``fillers`` ids, each drawn
    uniformly and independently. The last token is predictable from the first
    alone, ``delay + 1`` steps back; nothing in between carries information about
    it, so a model that cannot reach back is at chance, ``1 / keys``.
    """
    if delay < 0 or n < 1:
        raise ValueError(f"need n >= 1 and delay >= 0, got n={n}, delay={delay}")
    first = rng.integers(0, keys, n)
    middle = rng.integers(keys, keys + fillers, (n, delay))
    return np.column_stack([first, middle, first]).astype(np.int64)


def chunks(ids: np.ndarray, block: int, limit: int | None = None):
    """Consecutive, non-overlapping chunks ``x`` (n, block) of a token stream and
    ``y``, the same chunks shifted by one token; at most ``limit`` chunks."""
    ids = np.asarray(ids, dtype=np.int64)
    if not 1 <= block < len(ids):
        raise ValueError(f"block must be in [1, {len(ids) - 1}], got {block}")
    n = (len(ids) - 1) // block
    n = n if limit is None else min(n, limit)
    return ids[: n * block].reshape(n, block), ids[1 : n * block + 1].reshape(n, block)


class BlockSampler:
    """Random contiguous blocks of a token stream: ``x`` (B, T) and ``y``, the same
    block shifted by one token.

    ``sampler.batch()`` draws ``batch_size`` start positions uniformly; the
    generator's state is in :meth:`state_dict`, so a resumed run draws the same
    blocks it would have drawn.
    """

    def __init__(self, ids: np.ndarray, block_size: int, batch_size: int, seed=0):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"expected a 1-D token stream, got shape {ids.shape}")
        if not 1 <= block_size < len(ids):
            raise ValueError(
                f"block_size must be in [1, {len(ids) - 1}] for {len(ids)} tokens, "
                f"got {block_size}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.ids, self.block_size, self.batch_size = ids, block_size, batch_size
        self.rng = np.random.default_rng(seed)

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        starts = self.rng.integers(0, len(self.ids) - self.block_size, self.batch_size)
        offsets = np.arange(self.block_size)
        x = self.ids[starts[:, None] + offsets]  # (B, T)
        y = self.ids[starts[:, None] + offsets + 1]
        return x, y

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def top_k_probabilities(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    r"""Next-token probabilities from ``logits`` (..., V): softmax of
    $\ell / \tau$ over the ``top_k`` largest logits (all of them by default),
    then cut to the nucleus of mass ``top_p`` (none by default).

    The temperature $\tau$ sharpens ($\tau < 1$) or flattens ($\tau > 1$) the
    distribution; $\tau \to 0$ approaches the argmax. Top-k sets every other
    token's probability to 0, so a long tail of unlikely tokens cannot be drawn.
    Top-p (nucleus sampling, Holtzman et al., 2020) keeps the fewest most likely
    tokens whose probabilities sum to at least $p$ and renormalises: a cut that
    adapts to the distribution, few tokens where the model is sure, many where
    it is not.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < scaled.shape[-1]:
            kth = np.partition(scaled, -top_k, axis=-1)[..., -top_k, None]
            scaled = np.where(scaled < kth, -np.inf, scaled)
    scaled -= scaled.max(axis=-1, keepdims=True)
    p = np.exp(scaled)
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        order = np.argsort(-p, axis=-1, kind="stable")  # most likely first
        ranked = np.take_along_axis(p, order, axis=-1)
        # Keep a token if the tokens ranked above it hold less than top_p: the
        # most likely one is always kept, and the last kept one crosses top_p.
        keep_ranked = ranked.cumsum(axis=-1) - ranked < top_p
        keep = np.empty_like(keep_ranked)
        np.put_along_axis(keep, order, keep_ranked, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    return p


def sample(
    next_logits: Callable[[np.ndarray], np.ndarray],
    prompt: np.ndarray,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop: int | None = None,
    rng: np.random.Generator | int | None = 0,
) -> list[np.ndarray]:
    """Continue each row of ``prompt`` (B, T0) by up to ``max_new_tokens`` tokens.

    ``next_logits(ids)`` takes the ids so far, (B, t), and returns the logits of
    the next token, (B, V): a count table's row, an MLP's output on the last
    window, an RNN's output at the last step, a Transformer's last position. So
    one function samples every model of the book; the model decides how much of
    the past it reads. Generation of a row ends after it draws ``stop`` (e.g. the
    names' boundary token), which is kept. Returns one int64 array per row, new
    tokens only. ``temperature``, ``top_k`` and ``top_p`` shape each draw's
    distribution (:func:`top_k_probabilities`).
    """
    prompt = np.atleast_2d(np.asarray(prompt, dtype=np.int64))
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ids, done = prompt, np.zeros(len(prompt), dtype=bool)
    new = [[] for _ in range(len(prompt))]
    for _ in range(max_new_tokens):
        logits = np.asarray(next_logits(ids))
        if logits.shape[0] != len(ids) or logits.ndim != 2:
            raise ValueError(
                f"next_logits must return (B, V) logits, got {logits.shape}"
            )
        p = top_k_probabilities(logits, temperature, top_k, top_p)
        # One uniform draw per row, inverted through the row's cumulative sum.
        u = (
            1.0 - rng.random(len(ids))[:, None]
        )  # in (0, 1]: a 0-probability token never wins
        token = (p.cumsum(axis=1) < u).sum(axis=1).clip(max=p.shape[1] - 1)
        for row in np.flatnonzero(~done):
            new[row].append(int(token[row]))
        if stop is not None:
            done |= token == stop
            if done.all():
                break
        ids = np.concatenate([ids, token[:, None]], axis=1)
    return [np.array(row, dtype=np.int64) for row in new]


# --- A toy translation task: numbers written in digits -> the same numbers in words

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
NUMBER_WORDS = tuple(_ONES + _TENS[2:] + ["hundred"] + [w for _, w in _SCALES])


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n:
        words.append(_ONES[n])
    return words


def number_words(n: int) -> list[str]:
    """English words of ``0 <= n < 10**12``, short scale, without "and":
    ``number_words(1205) == ["one", "thousand", "two", "hundred", "five"]``."""
    if not 0 <= n < 10**12:
        raise ValueError(f"number_words covers 0 .. 10**12 - 1, got {n}")
    if n == 0:
        return ["zero"]
    words = []
    for scale, name in _SCALES:
        if n >= scale:
            words += _below_thousand(n // scale) + [name]
            n %= scale
    return words + _below_thousand(n)


class Seq2SeqData:
    """Pairs of token lists (source, target) with a vocabulary for each side, cut
    into train/val/test splits, and padded arrays for a batch of them.

    Both vocabularies put ``<pad>`` at id 0, ``<bos>`` at 1 and ``<eos>`` at 2, so
    a padded array's zeros are what a mask hides and what the loss ignores
    (``ignore_index=0``).
    """

    def __init__(self, splits: dict[str, list[tuple[list[str], list[str]]]]):
        self.splits = splits
        src = sorted({t for pairs in splits.values() for s, _ in pairs for t in s})
        tgt = sorted({t for pairs in splits.values() for _, s in pairs for t in s})
        self.src_vocab = Vocab([PAD, BOS, EOS] + src)
        self.tgt_vocab = Vocab([PAD, BOS, EOS] + tgt)

    def __getitem__(self, split: str) -> list[tuple[list[str], list[str]]]:
        return self.splits[split]

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """Padded int64 arrays of one split: ``src`` (N, S) with ``src_len`` (N,),
        ``tgt_in`` (N, T) = ``<bos>`` + target and ``tgt_out`` (N, T) = target +
        ``<eos>`` (teacher forcing: the decoder reads ``tgt_in`` and predicts
        ``tgt_out``), all padded with 0 on the right."""
        pairs = self.splits[split]
        s_ids = [[self.src_vocab.stoi[t] for t in s] for s, _ in pairs]
        t_ids = [[self.tgt_vocab.stoi[t] for t in t] for _, t in pairs]
        S = max(map(len, s_ids))
        T = max(map(len, t_ids)) + 1
        src = np.zeros((len(pairs), S), dtype=np.int64)
        tgt_in = np.zeros((len(pairs), T), dtype=np.int64)
        tgt_out = np.zeros((len(pairs), T), dtype=np.int64)
        for i, (s, t) in enumerate(zip(s_ids, t_ids, strict=True)):
            src[i, : len(s)] = s
            tgt_in[i, : len(t) + 1] = [1] + t  # <bos> = 1
            tgt_out[i, : len(t) + 1] = t + [2]  # <eos> = 2
        src_len = np.array([len(s) for s in s_ids], dtype=np.int64)
        return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out}

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Target words of ``ids``, up to the first ``<eos>`` (and without
        ``<bos>`` and ``<pad>``)."""
        words = []
        for i in ids:
            if int(i) == 2:
                break
            if int(i) > 2:
                words.append(self.tgt_vocab.itos[int(i)])
        return words


def numbers_task_problem(
    n_train: int, n_val: int, n_test: int, min_digits: int, max_digits: int
) -> str | None:
    """What is wrong with these sizes of :func:`numbers_task`, in one line, or None.
    The chapters' configs call it too, so a bad option is refused before any work.
    At most half of the numbers with ``min_digits .. max_digits`` digits are drawn,
    so that drawing distinct ones stays quick."""
    if not 1 <= min_digits <= max_digits <= 12:
        return (
            f"need 1 <= min_digits <= max_digits <= 12, got min_digits={min_digits}, "
            f"max_digits={max_digits}"
        )
    if min(n_train, n_val, n_test) < 1:
        return "n_train, n_val and n_test must each be at least 1"
    lo = 10 ** (min_digits - 1) if min_digits > 1 else 0
    room = (10**max_digits - lo) // 2
    if n_train + n_val + n_test > room:
        return (
            f"n_train + n_val + n_test = {n_train + n_val + n_test}: only {room} "
            f"distinct numbers of {min_digits}..{max_digits} digits may be used"
        )
    return None


def numbers_task(
    n_train: int,
    n_val: int,
    n_test: int,
    min_digits: int = 1,
    max_digits: int = 12,
    seed: int = 0,
) -> Seq2SeqData:
    """The toy translation task of the attention and Transformer chapters: a number
    in digits (``"1205"`` as the tokens ``1 2 0 5``) to the same number in words
    (``one thousand two hundred five``).

    The number of digits is drawn uniformly from ``min_digits .. max_digits``
    (then the number uniformly among those with that many digits), so every input
    length is equally common and accuracy can be measured per length. The splits
    hold distinct numbers: a test number was never seen in training. It needs no
    download and is exactly checkable, yet it is a real translation in miniature:
    the output is longer than the input, its words depend on digits far away
    ("thousand" on how many digits follow) and a zero digit emits nothing.
    """
    problem = numbers_task_problem(n_train, n_val, n_test, min_digits, max_digits)
    if problem:
        raise ValueError(problem)
    total = n_train + n_val + n_test
    rng = np.random.default_rng(seed)
    seen: set[int] = set()
    numbers = []
    while len(numbers) < total:
        d = int(rng.integers(min_digits, max_digits + 1))
        lo = 0 if d == 1 else 10 ** (d - 1)
        n = int(rng.integers(lo, 10**d))
        if n not in seen:
            seen.add(n)
            numbers.append(n)
    pairs = [(list(str(n)), number_words(n)) for n in numbers]
    cuts = (n_train, n_train + n_val)
    return Seq2SeqData(
        {
            "train": pairs[: cuts[0]],
            "val": pairs[cuts[0] : cuts[1]],
            "test": pairs[cuts[1] :],
        }
    )


from .bpe import BPETokenizer  # noqa: E402,F401
