r"""Byte-level byte-pair encoding (BPE), the tokenizer of GPT-2, written from scratch.

A text is read as its UTF-8 bytes, so the 256 byte values are the first 256 token
ids and every string has an encoding: no unknown tokens. Training repeats one step,
*merge the most frequent adjacent pair of tokens into a new token*, until the
vocabulary has the size asked for (Sennrich et al., 2016; GPT-2, Radford et al.,
2019). Pairs are counted *within* the chunks of the GPT-2 pre-tokenization regex
(a word with its leading space, a run of digits, of punctuation, of whitespace), so
no token spans two words.

- :class:`BPETokenizer`: ``BPETokenizer().train(text, vocab_size,
  special_tokens=...)``, ``encode(text, allowed_special=...)``, ``decode(ids)``,
  ``vocab_size``, ``save(path)`` / ``BPETokenizer.load(path)`` (JSON);
- :data:`GPT2_PATTERN`, the pre-tokenization regex, and :data:`ENDOFTEXT`, GPT-2's
  document separator;
- :func:`merge`, one merge applied to a list of ids.

Training counts each distinct chunk once, with its frequency, and after a merge
updates only the counts of the pairs in the chunks that contain the merged pair
(a heap finds the most frequent pair), so training on a megabyte to a few
thousand tokens takes seconds. Encoding merges, within each chunk, the pair that
was learnt first until no learnt pair is left, and caches each chunk's ids. In
practice: Hugging Face ``tokenizers`` (Rust) and OpenAI's ``tiktoken``.

Chapter: "Tokenization: byte-pair encoding" (book/sequences/tokenization.md).
"""

from __future__ import annotations

import heapq
import json
import numbers
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex

from .utils import atomic_write_text

#: GPT-2's pre-tokenization (``encoder.py`` of openai/gpt-2): English contractions,
#: an optional space and a run of letters, of digits or of other symbols, and runs
#: of whitespace (all but the last space of a run, which starts the next word).
GPT2_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"  # GPT-2's separator between documents
FORMAT = "scratch.bpe"  # the "format" field of a saved tokenizer
CACHE_SIZE = 1 << 16  # distinct chunks remembered by encode (then it starts over)


def merge(ids: Sequence[int], pair: tuple[int, int], new: int) -> list[int]:
    """``ids`` with every occurrence of ``pair``, read left to right, replaced by
    ``new``: ``merge([1, 1, 1], (1, 1), 9) == [9, 1]``."""
    out, i, a, b = [], 0, pair[0], pair[1]
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _utf8(text, what: str = "text") -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a str, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate: not a Unicode scalar value
        raise ValueError(
            f"{what} is not valid Unicode: lone surrogate {text[err.start]!r} at "
            f"index {err.start}"
        ) from None


class BPETokenizer:
    """A byte-level BPE tokenizer: ``BPETokenizer().train(text, 1024)``.

    Ids ``0..255`` are the byte values, id ``256 + i`` is the ``i``-th merge
    (``merges[i]``, a pair of earlier ids), and the special tokens come last, in
    the order given. ``BPETokenizer()`` without merges is the plain byte
    tokenizer (256 ids); ``train`` learns the merges and returns the tokenizer.
    """

    def __init__(
        self,
        merges: Iterable[tuple[int, int]] = (),
        special_tokens: Iterable[str] = (),
        pattern: str = GPT2_PATTERN,
    ):
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        self._set(merges, special_tokens)

    def _set(self, merges, special_tokens) -> None:
        merges = [tuple(p) for p in merges]
        vocab = [bytes([i]) for i in range(256)]
        ranks = {}
        for i, pair in enumerate(merges):
            ok = len(pair) == 2 and all(
                isinstance(t, int) and 0 <= t < len(vocab) for t in pair
            )
            if not ok or pair in ranks:
                raise ValueError(
                    f"merge {i} = {pair!r} must be a new pair of ids below {len(vocab)}"
                )
            ranks[pair] = len(vocab)
            vocab.append(vocab[pair[0]] + vocab[pair[1]])
        specials = list(special_tokens)
        for s in specials:
            if not isinstance(s, str) or not s:
                raise ValueError(f"a special token must be a non-empty str, got {s!r}")
            _utf8(s, "a special token")
        if len(set(specials)) != len(specials):
            raise ValueError(f"special tokens must be distinct, got {specials}")
        self.merges: list[tuple[int, int]] = merges
        self.ranks: dict[tuple[int, int], int] = ranks  # pair -> its new id
        self.special_tokens = {s: len(vocab) + i for i, s in enumerate(specials)}
        self.vocab: list[bytes] = vocab + [s.encode("utf-8") for s in specials]
        self.merge_counts: list[int] | None = None  # set by train: each pair's count
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """256 bytes + one id per merge + one per special token."""
        return len(self.vocab)

    # ---- training -----------------------------------------------------------
    def train(
        self, text: str, vocab_size: int, special_tokens: Iterable[str] = ()
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``
        (fewer if it runs out of pairs) and return ``self``.

        Each step merges the most frequent pair of adjacent ids, counted inside
        the pre-tokenization chunks (ties: the smallest pair of ids). A special
        token in ``text`` is a boundary: training never looks across it, nor
        into it. Training is greedy, so the first ``k`` merges of a long training
        run are those of a short one (:meth:`truncated`).
        """
        specials = list(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise ValueError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size < 256 + len(specials):
            raise ValueError(
                f"vocab_size={vocab_size} is below 256 bytes + {len(specials)} "
                "special tokens"
            )
        _utf8(text)
        self._set((), specials)  # checks the special tokens
        pieces = self._split_special(text, specials) if specials else [text]
        words = Counter(
            chunk
            for piece in pieces[::2]  # the text between the special tokens
            for chunk in self._regex.findall(piece)
        )
        merges, counts = _learn(
            [list(w.encode("utf-8")) for w in words],
            list(words.values()),
            vocab_size - 256 - len(specials),
        )
        self._set(merges, specials)
        self.merge_counts = counts
        return self

    def truncated(self, vocab_size: int) -> BPETokenizer:
        """The tokenizer with this one's first merges and its special tokens, of
        ``vocab_size`` ids: what training to ``vocab_size`` gives (training is
        greedy). The special tokens' ids move down with the vocabulary."""
        n = vocab_size - 256 - len(self.special_tokens)
        if not 0 <= n <= len(self.merges):
            raise ValueError(
                f"vocab_size must be in [{256 + len(self.special_tokens)}, "
                f"{self.vocab_size}], got {vocab_size}"
            )
        out = BPETokenizer(self.merges[:n], self.special_tokens, self.pattern)
        if self.merge_counts is not None:
            out.merge_counts = self.merge_counts[:n]
        return out

    # ---- encoding and decoding ----------------------------------------------
    def _split_special(self, text: str, specials) -> list[str]:
        """``[text, special, text, special, ..., text]``: the longest match first."""
        alternatives = "|".join(
            regex.escape(s) for s in sorted(specials, key=len, reverse=True)
        )
        return regex.split(f"({alternatives})", text)

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode("utf-8"))
        ranks = self.ranks
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
            if pair not in ranks:
                break  # no learnt pair is left
            ids = merge(ids, pair, ranks[pair])
        return ids

    def _encode_ordinary(self, text: str, out: list[int]) -> None:
        chunks = self._regex.findall(text)
        if sum(map(len, chunks)) != len(text):
            raise ValueError(f"the pattern {self.pattern!r} does not cover the text")
        cache = self._cache
        for chunk in chunks:
            ids = cache.get(chunk)
            if ids is None:
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                ids = cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)

    def encode(self, text: str, allowed_special: str | Iterable[str] = ()) -> list[int]:
        """Token ids of ``text``.

        A special token in the text becomes its id only if it is allowed
        (``allowed_special="all"`` or a collection of them, as in ``tiktoken``);
        otherwise its characters are encoded like any other text, so a user's
        string cannot inject a document boundary.
        """
        _utf8(text)
        if allowed_special == "all":
            allowed = list(self.special_tokens)
        elif isinstance(allowed_special, str):
            raise ValueError(
                f"allowed_special must be 'all' or a collection of special tokens, "
                f"got the string {allowed_special!r}"
            )
        else:
            allowed = list(allowed_special)
            unknown = [s for s in allowed if s not in self.special_tokens]
            if unknown:
                raise ValueError(
                    f"allowed_special: {unknown[0]!r} is not a special token of "
                    f"this tokenizer ({list(self.special_tokens)})"
                )
        out: list[int] = []
        if not allowed:
            self._encode_ordinary(text, out)
            return out
        for i, piece in enumerate(self._split_special(text, allowed)):
            if i % 2:
                out.append(self.special_tokens[piece])
            elif piece:
                self._encode_ordinary(piece, out)
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids``; an id outside the vocabulary is an error."""
        vocab, n = self.vocab, len(self.vocab)
        ids = ids.tolist() if hasattr(ids, "tolist") else ids  # NumPy: Python ints
        parts = []
        for i in ids:
            if type(i) is not int and (
                isinstance(i, bool) or not isinstance(i, numbers.Integral)
            ):
                raise ValueError(f"token ids must be ints, got {i!r}")
            if not 0 <= i < n:
                raise ValueError(f"unknown token id {int(i)}: the vocabulary has {n}")
            parts.append(vocab[i])
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``. A sequence of ids can end inside a character (a
        token is bytes, not characters): invalid UTF-8 becomes U+FFFD, as in
        GPT-2 (``errors="replace"``). ``decode(encode(s)) == s`` for every str."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- saving and loading -------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": 1,
            "pattern": self.pattern,
            "merges": [list(p) for p in self.merges],
            "special_tokens": list(self.special_tokens),
        }

    def save(self, path) -> None:
        """Write the tokenizer as JSON (atomically: a crash never leaves half a
        file). The training counts are not saved."""
        atomic_write_text(path, json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`; a file of another kind, or a
        damaged one, is a ValueError naming it."""
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
            if record.get("format") != FORMAT or record.get("version") != 1:
                raise ValueError(f"not a {FORMAT} version 1 file")
            return cls(record["merges"], record["special_tokens"], record["pattern"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: cannot load a tokenizer: {err}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, BPETokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}: 256 bytes, "
            f"{len(self.merges)} merges, {len(self.special_tokens)} special tokens)"
        )


def _learn(
    words: list[list[int]], freqs: list[int], n_merges: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Up to ``n_merges`` merges of the distinct chunks ``words`` (byte ids), each
    occurring ``freqs[w]`` times: the merges and the count of each merged pair.

    ``counts[pair]`` is the pair's frequency over the whole text and
    ``where[pair]`` the chunks that contain it. A merge re-counts only those
    chunks: their old pairs are subtracted, their new pairs added. The heap holds
    ``(-count, pair)`` entries; an entry whose count is out of date is skipped
    when it comes up (lazy deletion).
    """
    counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for w, (ids, f) in enumerate(zip(words, freqs, strict=True)):
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + f
            where.setdefault(pair, set()).add(w)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges, merged_counts = [], []
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair) != -neg:
            continue  # stale: this pair's count changed since the entry was pushed
        new = 256 + len(merges)
        merges.append(pair)
        merged_counts.append(-neg)
        changed = set()
        for w in where.pop(pair):
            old = words[w]
            ids = merge(old, pair, new)
            if len(ids) == len(old):
                continue  # the chunk no longer holds the pair
            f = freqs[w]
            for p in zip(old, old[1:]):
                counts[p] -= f
                changed.add(p)
            for p in zip(ids, ids[1:]):
                counts[p] = counts.get(p, 0) + f
                where.setdefault(p, set()).add(w)
                changed.add(p)
            words[w] = ids
        for p in changed:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                del counts[p]
                where.pop(p, None)
    return merges, merged_counts
