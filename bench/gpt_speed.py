"""GPT on the CPU: training tokens per second, the two attention cores, and
generation with and without the key-value cache.

- training: optimizer steps (forward, backward, AdamW) of the `small` profile's
  model (2 layers, 128 wide, block 64, batch 32, 65 tokens) in fp32 and under bf16
  autocast, tokens per second;
- attention: a forward and backward pass of that model with the written-out
  attention core and with `F.scaled_dot_product_attention`, at blocks of 64, 256
  and 1024 tokens (the same tokens per batch), and the largest logit difference;
- generation: `block_size - 1` tokens from one, batch 1, through
  `scratch.text.sample`, with and without the cache, for the `small` model and
  for nanoGPT's CPU model with a longer block (4 layers, 128 wide, block 256;
  untrained: the speed does not depend on the weights). Same tokens required.
  (nanoGPT's GPU model, 6 layers of 384, takes minutes per uncached generation
  here.)

Each number is the median of the repeats, the two sides of a comparison timed
alternately so that a burst of load hits both alike.

One thread by default: the book's `small` profile trains on one, and on a CPU
shared with other jobs two threads stall each other.

    python bench/gpt_speed.py [--threads 1] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from _common import median, report
from scratch.models.gpt import GPTSpec, NextLogits, lm_loss
from scratch.recipes import param_groups
from scratch.text import sample

SMALL = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False)
LONG = dict(n_layer=4, n_head=4, n_embd=128, block_size=256, dropout=0.0, bias=False)
VOCAB = 65  # tiny Shakespeare's characters


def build(**kw):
    torch.manual_seed(0)
    return GPTSpec(vocab_size=VOCAB, **kw).build()


def timed(fn, repeats):
    fn()  # warm-up: allocators, kernels' first calls
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def training(repeats, batch=32, steps=5):
    """Tokens/s of AdamW steps, fp32 and bf16 autocast, timed alternately."""
    rows = []
    model = build(**SMALL)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3)
    x = torch.randint(0, VOCAB, (batch, SMALL["block_size"]))

    def steps_of(dtype):
        def run():
            for _ in range(steps):
                with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                    loss = lm_loss(model(x), x)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        return run

    runs = {"fp32": steps_of(None), "bf16 autocast": steps_of(torch.bfloat16)}
    times = {k: [] for k in runs}
    for k, fn in runs.items():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) / steps)
    for k, ts in times.items():
        rows.append(
            ["training step, small model", k, f"{x.numel() / median(ts):,.0f} tok/s"]
        )
    return rows


def attention(repeats, tokens=2048):
    """Forward+backward of the small model with each core at several block sizes."""
    rows, worst = [], 0.0
    for block in (64, 256, 1024):
        model = build(**{**SMALL, "block_size": block})
        x = torch.randint(0, VOCAB, (max(1, tokens // block), block))
        with torch.no_grad():
            diff = (model.set_fused(True)(x) - model.set_fused(False)(x)).abs().max()
        worst = max(worst, float(diff))

        def fb(fused):
            def run():
                model.set_fused(fused)
                lm_loss(model(x), x).backward()

            return run

        written, fused = fb(False), fb(True)
        written(), fused()  # warm-up
        tw, tf = [], []
        for _ in range(repeats):
            tw.append(timed_once(written))
            tf.append(timed_once(fused))
        for name, ts in (("written out", tw), ("SDPA", tf)):
            rows.append(
                [
                    f"forward+backward, block {block}",
                    name,
                    f"{x.numel() / median(ts):,.0f} tok/s",
                ]
            )
        rows.append(
            [
                f"forward+backward, block {block}",
                "SDPA speed-up",
                f"{median(tw) / median(tf):.2f}x (max logit diff {float(diff):.1e})",
            ]
        )
    return rows, worst


def timed_once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def generation(repeats):
    rows, same, speedups = [], True, {}
    for name, kw in (
        ("small model (block 64)", SMALL),
        ("4 layers of 128 (block 256)", LONG),
    ):
        model = build(**kw).eval()
        n = model.block_size - 1
        prompt = np.zeros((1, 1), dtype=np.int64)
        out, rates = {}, {True: [], False: []}
        for _ in range(repeats + 1):  # the first round is a warm-up
            for cache in (False, True):
                t0 = time.perf_counter()
                out[cache] = sample(NextLogits(model, cache), prompt, n, rng=0)[0]
                rates[cache].append(n / (time.perf_counter() - t0))
        same &= bool(np.array_equal(out[True], out[False]))
        for cache in (False, True):
            rows.append(
                [
                    f"generation, {name}",
                    "KV cache" if cache else "no cache",
                    f"{median(rates[cache][1:]):,.0f} tok/s",
                ]
            )
        speedups[name] = median(rates[True][1:]) / median(rates[False][1:])
        rows.append(
            [f"generation, {name}", "KV-cache speed-up", f"{speedups[name]:.1f}x"]
        )
    return rows, same, speedups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats (median reported)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 repeats: a smoke test, not a measurement",
    )
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        print("--threads and --repeats must be >= 1", file=sys.stderr)
        return 2
    repeats = 2 if args.quick else args.repeats
    torch.set_num_threads(args.threads)
    rows = training(repeats)
    print("training: done", file=sys.stderr, flush=True)
    attn_rows, worst = attention(repeats)
    print("attention: done", file=sys.stderr, flush=True)
    gen_rows, same, speedups = generation(repeats)
    rows += attn_rows + gen_rows
    big = speedups["4 layers of 128 (block 256)"]
    ok = worst < 1e-4 and same and big > 1.0
    summary = (
        f"{args.threads} thread(s): written-out attention and SDPA agree to "
        f"{worst:.1e}; the KV cache gives the same tokens ({same}) and generates "
        f"{big:.1f}x faster at block 256"
    )
    return report(
        "gpt_speed",
        ["case", "variant", "result"],
        rows,
        summary,
        ok,
        threads=args.threads,
        repeats=repeats,
        load=os.getloadavg(),
    )


if __name__ == "__main__":
    sys.exit(main())
