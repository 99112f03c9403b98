r"""Sequence-to-sequence decoding and scoring: greedy and beam search, exact-match
accuracy overall and per source length, corpus BLEU, the teacher-forced loss,
the copy task.

Every function here works with any model that has these three methods (the
Transformer of ``scratch.models.transformer`` and the attention GRU of
``scratch.models.seq2seq`` both do), so one chapter decodes both with the same
code:

- ``teacher_forced(src, src_len, tgt_in)`` -> logits (B, T, V), for training;
- ``encode_source(src, src_len)`` -> ``memory``, a tuple of tensors (or None)
  whose first dimension is the batch;
- ``decode_step(memory, prefix)`` -> log-probabilities (B, V) of the token that
  follows ``prefix`` (B, t), which starts with ``<bos>``.

Ids follow ``scratch.text.Seq2SeqData``: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2.
Decoders never emit ``<pad>`` or ``<bos>``; their outputs are (B, max_len) arrays
padded with 0 after the first ``<eos>``, the layout of ``tgt_out``.

Beam search keeps the ``beam_size`` best prefixes, scored by their summed
log-probability; a finished hypothesis $Y$ is ranked by
$\log p(Y \mid X) / \mathrm{lp}(Y)$ with the length penalty of Wu et al. (2016),
$\mathrm{lp}(Y) = ((5 + |Y|) / 6)^\alpha$ ($\alpha = 0$: no normalisation; the
Transformer paper used $\alpha = 0.6$ and 4 beams).

Chapter: "The Transformer" (book/sequences/transformer.md).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

PAD, BOS, EOS = 0, 1, 2


class Seq2SeqModel(Protocol):
    def teacher_forced(self, src, src_len, tgt_in) -> torch.Tensor: ...
    def encode_source(self, src, src_len): ...
    def decode_step(self, memory, prefix) -> torch.Tensor: ...


# ---- training ----------------------------------------------------------------------
def tensor_dataset(arrays: dict):
    """A ``TensorDataset`` of (src, src_len, tgt_in, tgt_out) from
    ``Seq2SeqData.arrays`` (or :func:`copy_task`)."""
    from torch.utils.data import TensorDataset

    keys = ("src", "src_len", "tgt_in", "tgt_out")
    return TensorDataset(*(torch.as_tensor(arrays[k], dtype=torch.int64) for k in keys))


def seq2seq_step(label_smoothing: float = 0.0):
    """A ``fit`` step ``(model, batch) -> {"loss", "nll"}``: the teacher-forced
    cross-entropy over real target tokens (padding id 0 ignored), with label
    smoothing in ``loss`` and without it in ``nll``. Each batch is cut to its own
    longest source and target first."""
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")

    def step(model, batch):
        src, src_len, tgt_in, tgt_out = batch
        S = int(src_len.max())
        T = int((tgt_out != PAD).sum(dim=1).max())
        logits = model.teacher_forced(src[:, :S], src_len, tgt_in[:, :T])
        logits = logits.float().reshape(-1, logits.shape[-1])  # (B T, V)
        target = tgt_out[:, :T].reshape(-1)
        loss = F.cross_entropy(
            logits, target, ignore_index=PAD, label_smoothing=label_smoothing
        )
        if not label_smoothing:
            return {"loss": loss, "nll": loss.detach()}
        with torch.no_grad():
            nll = F.cross_entropy(logits, target, ignore_index=PAD)
        return {"loss": loss, "nll": nll}

    return step


# ---- decoding ----------------------------------------------------------------------
def _next_log_probs(model, memory, prefix):
    logp = model.decode_step(memory, prefix).float()  # (B, V)
    logp[:, [PAD, BOS]] = float("-inf")  # never emitted
    return logp


@torch.no_grad()
def greedy(model, src, src_len, max_len: int) -> torch.Tensor:
    """Feed back the likeliest token: ids (B, max_len), 0 after the first
    ``<eos>`` (rows without one are cut at ``max_len``)."""
    memory = model.encode_source(src, src_len)
    B = src.shape[0]
    prefix = torch.full((B, 1), BOS, dtype=torch.long, device=src.device)
    out = torch.zeros(B, max_len, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    for t in range(max_len):
        y = _next_log_probs(model, memory, prefix).argmax(dim=1)  # (B,)
        out[:, t] = y.masked_fill(done, PAD)
        done |= y == EOS
        if done.all():
            break
        prefix = torch.cat([prefix, y[:, None]], dim=1)
    return out


def length_penalty(length: int, alpha: float) -> float:
    r"""Wu et al.'s (2016) $((5 + |Y|) / 6)^\alpha$; 1 for $\alpha = 0$."""
    return ((5 + length) / 6) ** alpha


def _repeat(memory, k: int):
    """Each example's memory ``k`` times over: row b -> rows b k .. b k + k - 1."""
    if memory is None:
        return None
    if torch.is_tensor(memory):
        return memory.repeat_interleave(k, dim=0)
    return type(memory)(_repeat(m, k) for m in memory)


@torch.no_grad()
def beam_search(
    model,
    src,
    src_len,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``beam_size`` best prefixes of every source, extended one token at a
    time. Returns the best finished hypothesis of each source, ids (B, max_len)
    padded with 0, and its score $\log p(Y \mid X) / \mathrm{lp}(Y)$ (B,).

    At each step the ``2 beam_size`` best one-token extensions are ranked; those
    among the first ``beam_size`` that emit ``<eos>`` (or reach ``max_len``
    tokens: cut, as in :func:`greedy`) are finished, and the best others are the
    next live prefixes. $|Y|$ counts the ``<eos>``. A source
    is done once its best finished score is at least what any live prefix could
    still reach (its log-probability can only fall, and the penalty is at most
    $\mathrm{lp}(\text{max\_len})$), so with a wide enough beam the result is the
    exact best sequence (tested against enumeration). ``beam_size=1`` with
    ``alpha=0`` is greedy decoding.
    """
    if beam_size < 1 or max_len < 1 or alpha < 0:
        raise ValueError(
            f"need beam_size >= 1, max_len >= 1 and alpha >= 0, got {beam_size}, "
            f"{max_len}, {alpha}"
        )
    B, K, dev = src.shape[0], beam_size, src.device
    memory = _repeat(model.encode_source(src, src_len), K)
    prefix = torch.full((B * K, 1), BOS, dtype=torch.long, device=dev)
    score = torch.full((B, K), float("-inf"), device=dev)
    score[:, 0] = 0.0  # one live prefix, <bos>, at first: no duplicate beams
    finished: list[list[tuple[float, float, list[int]]]] = [[] for _ in range(B)]
    best_bound = length_penalty(max_len, alpha)
    for t in range(max_len):
        logp = _next_log_probs(model, memory, prefix)  # (B K, V)
        V = logp.shape[1]
        cand = (score[:, :, None] + logp.view(B, K, V)).view(B, K * V)
        top, idx = cand.topk(min(2 * K, K * V), dim=1)  # enough to refill K beams
        beam, tok = idx // V, idx % V
        top, beam, tok = top.tolist(), beam.tolist(), tok.tolist()
        new_score = torch.full((B, K), float("-inf"), device=dev)
        rows = torch.zeros(B, K, dtype=torch.long, device=dev)  # parent of each beam
        toks = torch.full((B, K), EOS, dtype=torch.long, device=dev)
        old = prefix[:, 1:].tolist()
        for b in range(B):
            k = 0
            for rank, (s, j, y) in enumerate(zip(top[b], beam[b], tok[b])):
                if s == float("-inf"):
                    break
                if y == EOS or t == max_len - 1:
                    # Only a finish that ranks among the K best candidates counts
                    # (as in fairseq): then beam_size=1 is exactly greedy.
                    if rank < K:
                        seq = old[b * K + j] + [y]
                        finished[b].append((s / length_penalty(t + 1, alpha), s, seq))
                elif k < K:
                    new_score[b, k], rows[b, k], toks[b, k] = s, b * K + j, y
                    k += 1
            finished[b] = sorted(finished[b], key=lambda h: -h[0])[:K]
            alive = new_score[b].max().item()
            if finished[b] and finished[b][0][0] >= alive / best_bound:
                new_score[b] = float("-inf")  # done: nothing live can beat it
        score = new_score
        if torch.isinf(score).all():
            break
        prefix = torch.cat([prefix[rows.view(-1)], toks.view(-1, 1)], dim=1)
        memory = _select(memory, rows.view(-1))
    out = torch.zeros(B, max_len, dtype=torch.long, device=dev)
    best = torch.zeros(B, device=dev)
    for b in range(B):
        norm, _, seq = finished[b][0]
        out[b, : len(seq)] = torch.tensor(seq)
        best[b] = norm
    return out, best


def _select(memory, rows):
    """Memory rows reordered to follow the beams (each beam's parent row)."""
    if memory is None:
        return None
    if torch.is_tensor(memory):
        return memory.index_select(0, rows)
    return type(memory)(_select(m, rows) for m in memory)


@torch.no_grad()
def translate(
    model,
    arrays: dict,
    method: str = "greedy",
    beam_size: int = 4,
    alpha: float = 0.0,
    max_len: int | None = None,
    batch_size: int = 500,
    device=None,
) -> np.ndarray:
    """Decode every source of ``arrays`` (``Seq2SeqData.arrays``) in batches, in
    eval mode: ids (N, max_len) int64, ``max_len`` the width of ``tgt_out`` by
    default. ``method`` is ``"greedy"`` or ``"beam"``."""
    if method not in ("greedy", "beam"):
        raise ValueError(f"method must be 'greedy' or 'beam', got {method!r}")
    device = device or next(model.parameters()).device
    max_len = max_len or arrays["tgt_out"].shape[1]
    was_training = model.training
    model.eval()
    N = len(arrays["src"])
    out = np.zeros((N, max_len), dtype=np.int64)
    for i in range(0, N, batch_size):
        src_len = torch.as_tensor(arrays["src_len"][i : i + batch_size], device=device)
        src = torch.as_tensor(arrays["src"][i : i + batch_size], device=device)
        src = src[:, : int(src_len.max())]
        if method == "greedy":
            ids = greedy(model, src, src_len, max_len)
        else:
            ids, _ = beam_search(model, src, src_len, max_len, beam_size, alpha)
        out[i : i + batch_size] = ids.cpu().numpy()
    model.train(was_training)
    return out


@torch.no_grad()
def sequence_log_prob(model, src, src_len, ids) -> torch.Tensor:
    r"""$\log p(Y \mid X)$ (B,) of given outputs ``ids`` (B, T) (the layout of
    :func:`greedy`: up to and including the first ``<eos>``, then 0), summed
    over its tokens. Scores any decoder's output with the model's own
    probabilities: ``beam_search`` returns this divided by the length penalty."""
    ids = torch.as_tensor(trim(ids.cpu().numpy()), device=src.device)  # (B, T)
    bos = torch.full((len(ids), 1), BOS, dtype=torch.long, device=src.device)
    logits = model.teacher_forced(src, src_len, torch.cat([bos, ids[:, :-1]], 1))
    logp = logits.float().log_softmax(dim=-1)  # (B, T, V), as decode_step
    picked = logp.gather(2, ids[..., None])[..., 0]  # (B, T)
    return picked.masked_fill(ids == PAD, 0.0).sum(dim=1)


# ---- scoring -----------------------------------------------------------------------
def trim(ids: np.ndarray) -> np.ndarray:
    """A copy of ``ids`` (N, T) with everything after each row's first ``<eos>``
    set to 0."""
    ids = np.array(ids, dtype=np.int64)
    after = np.cumsum(ids == EOS, axis=1) - (ids == EOS) > 0  # past the first <eos>
    ids[after] = PAD
    return ids


def exact_match(pred: np.ndarray, tgt_out: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each output equals its target exactly, up to and
    including the first ``<eos>``. The arrays may differ in width."""
    pred, tgt = trim(pred), trim(tgt_out)
    T = max(pred.shape[1], tgt.shape[1])
    pred = np.pad(pred, ((0, 0), (0, T - pred.shape[1])))
    tgt = np.pad(tgt, ((0, 0), (0, T - tgt.shape[1])))
    return (pred == tgt).all(axis=1)


def accuracy_by_length(correct: np.ndarray, src_len: np.ndarray) -> dict[int, tuple]:
    """{source length: (exact-match accuracy, number of examples)}, sorted."""
    correct, src_len = np.asarray(correct, dtype=bool), np.asarray(src_len)
    return {
        int(n): (float(correct[src_len == n].mean()), int((src_len == n).sum()))
        for n in np.unique(src_len)
    }


# ---- a task ------------------------------------------------------------------------
def copy_task(
    n: int, min_len: int = 1, max_len: int = 10, n_symbols: int = 10, seed: int = 0
) -> dict[str, np.ndarray]:
    """The Annotated Transformer's first task: copy a random sequence of symbols.

    Lengths uniform in ``min_len .. max_len``, symbols uniform among ``n_symbols``
    (ids 3 .. n_symbols + 2, after pad, bos, eos: a vocabulary of ``n_symbols +
    3`` on both sides). Returns arrays like ``Seq2SeqData.arrays``."""
    if not 1 <= min_len <= max_len or n < 1 or n_symbols < 1:
        raise ValueError(
            f"need n >= 1, n_symbols >= 1, 1 <= min_len <= max_len; got {n}, "
            f"{n_symbols}, {min_len}, {max_len}"
        )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n)
    src = np.zeros((n, max_len), dtype=np.int64)
    tgt_in = np.zeros((n, max_len + 1), dtype=np.int64)
    tgt_out = np.zeros((n, max_len + 1), dtype=np.int64)
    for i, L in enumerate(lengths):
        seq = rng.integers(3, n_symbols + 3, L)
        src[i, :L] = seq
        tgt_in[i, : L + 1] = np.concatenate([[BOS], seq])
        tgt_out[i, : L + 1] = np.concatenate([seq, [EOS]])
    return {
        "src": src,
        "src_len": lengths.astype(np.int64),
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
    }


# ---- BLEU ----------------------------------------------------------------------------
def _ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(hypotheses, references, max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002) of tokenised ``hypotheses`` against one
    tokenised reference each, in 0 .. 100.

    Each n-gram of a hypothesis counts at most as often as it occurs in its reference
    (clipping); the clipped counts and the hypothesis n-gram counts are summed over
    the corpus before dividing, giving precisions $p_1 .. p_4$, whose geometric mean
    is multiplied by the brevity penalty $\\min(1, e^{1 - r/c})$ ($c$, $r$: total
    hypothesis and reference lengths). No smoothing: a corpus without a single
    matching 4-gram scores 0, as in the paper and sacreBLEU's default. Tokens can be
    words or ids; the score depends on the tokenisation, so compare only scores
    computed on the same one.
    """
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references"
        )
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = list(hyp), list(ref)
        c, r = c + len(hyp), r + len(ref)
        for n in range(1, max_n + 1):
            h, g = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(k, g[gram]) for gram, k in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if c == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = min(0.0, 1.0 - r / c)  # log of the brevity penalty
    return 100.0 * math.exp(log_precision + brevity)
