"""The NumPy engine against PyTorch on the CPU: ops and whole training steps.

For each case both libraries run the same computation in float32 (forward and
backward; a training step adds the SGD update), alternately, after a warm-up.
Each repeat times a few calls of each; the ratio engine / PyTorch is taken
repeat by repeat and the median is reported, so a burst of load on the machine
hits both sides alike. Both libraries get the same number of threads (NumPy's
BLAS through threadpoolctl). Targets: MLP step ratio <= 1.5, CNN step <= 3, LSTM
step <= 3 (1 layer, hidden 256, sequence 64, batch 32: the sequences chapters),
attention step <= 3 (causal multi-head self-attention, width 128, 4 heads,
sequence 64, batch 32).

    python bench/engine_vs_torch.py [--threads N] [--repeats 30] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import scratch.engine.functional as F
from _common import median, report
from scratch.engine import Tensor, nn, optim

TARGETS = {"MLP step": 1.5, "CNN step": 3.0, "LSTM step": 3.0, "attention step": 3.0}


def timed(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(engine_fn, torch_fn, repeats, calls):
    for _ in range(2):  # warm-up: allocators, BLAS, caches
        engine_fn(), torch_fn()
    e, t = [], []
    for _ in range(repeats):
        e.append(timed(engine_fn, calls))
        t.append(timed(torch_fn, calls))
    ratios = [a / b for a, b in zip(e, t)]
    return median(e), median(t), median(ratios), (np.percentile(ratios, 25), np.percentile(ratios, 75))


# ---- single ops: forward + backward ------------------------------------------------
def op_case(name, shapes, engine_op, torch_op, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]

    def engine_fn():
        xs = [Tensor(a, requires_grad=True) for a in arrays]
        engine_op(*xs).sum().backward()

    def torch_fn():
        xs = [torch.tensor(a, requires_grad=True) for a in arrays]
        torch_op(*xs).sum().backward()

    return name, engine_fn, torch_fn


def op_cases():
    labels = np.random.default_rng(1).integers(0, 10, 128)
    labels_t = torch.tensor(labels)
    big_labels = np.random.default_rng(1).integers(0, 1000, 256)
    big_labels_t = torch.tensor(big_labels)
    tf = torch.nn.functional
    bn = lambda f: (lambda x: f(x, None, None, training=True))
    return [
        op_case("matmul (128x784)@(784x256)", [(128, 784), (784, 256)], lambda a, b: a @ b, lambda a, b: a @ b),
        op_case("matmul (512x512)@(512x512)", [(512, 512), (512, 512)], lambda a, b: a @ b, lambda a, b: a @ b),
        op_case("conv2d 64x1x28x28, 16x1x5x5, pad 2", [(64, 1, 28, 28), (16, 1, 5, 5)],
                lambda x, w: F.conv2d(x, w, padding=2), lambda x, w: tf.conv2d(x, w, padding=2)),
        op_case("conv2d 64x16x14x14, 32x16x5x5, pad 2", [(64, 16, 14, 14), (32, 16, 5, 5)],
                lambda x, w: F.conv2d(x, w, padding=2), lambda x, w: tf.conv2d(x, w, padding=2)),
        op_case("conv2d 32x32x16x16, 64x32x3x3, stride 2, pad 1", [(32, 32, 16, 16), (64, 32, 3, 3)],
                lambda x, w: F.conv2d(x, w, stride=2, padding=1), lambda x, w: tf.conv2d(x, w, stride=2, padding=1)),
        op_case("max_pool2d 64x16x28x28, 2x2", [(64, 16, 28, 28)],
                lambda x: F.max_pool2d(x, 2), lambda x: tf.max_pool2d(x, 2)),
        op_case("softmax cross-entropy 128x10", [(128, 10)],
                lambda x: F.cross_entropy(x, labels), lambda x: tf.cross_entropy(x, labels_t)),
        op_case("softmax cross-entropy 256x1000", [(256, 1000)],
                lambda x: F.cross_entropy(x, big_labels), lambda x: tf.cross_entropy(x, big_labels_t)),
        op_case("batch_norm 128x256 (train)", [(128, 256)], bn(F.batch_norm), bn(tf.batch_norm)),
        op_case("batch_norm 64x16x28x28 (train)", [(64, 16, 28, 28)], bn(F.batch_norm), bn(tf.batch_norm)),
        op_case("layer_norm 128x256", [(128, 256)],
                lambda x: F.layer_norm(x, (256,)), lambda x: tf.layer_norm(x, (256,))),
        op_case("layer_norm 32x64x128", [(32, 64, 128)],
                lambda x: F.layer_norm(x, (128,)), lambda x: tf.layer_norm(x, (128,))),
        op_case("scaled_dot_product_attention 8x4x64x32, causal", [(8, 4, 64, 32)] * 3,
                lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                lambda q, k, v: tf.scaled_dot_product_attention(q, k, v, is_causal=True)),
    ]


# ---- whole training steps ------------------------------------------------------------
def mlp(lib):
    return lib.Sequential(lib.Linear(784, 256), lib.ReLU(), lib.Linear(256, 256), lib.ReLU(), lib.Linear(256, 10))


def cnn(lib):
    """The Part I CNN (book/foundations/cnn.md, small profile): conv(1->8, 5x5)-ReLU-pool,
    conv(8->16, 5x5)-ReLU-pool, linear; 28x28 -> 24 -> 12 -> 8 -> 4."""
    return lib.Sequential(lib.Conv2d(1, 8, 5), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Conv2d(8, 16, 5), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Flatten(), lib.Linear(16 * 4 * 4, 10))


def step_case(name, build, x_shape, batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *x_shape)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    e_model, t_model = build(nn), build(torch.nn)
    for p in e_model.parameters():  # the engine's layers default to float64; compare float32 with float32
        p.data = p.data.astype(np.float32)
    e_model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    assert all(p.dtype == np.float32 for p in e_model.parameters())
    e_opt = optim.SGD(e_model.parameters(), lr=0.01, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.tensor(x), torch.tensor(y)

    def engine_fn():
        e_opt.zero_grad()
        F.cross_entropy(e_model(Tensor(x)), y).backward()
        e_opt.step()

    def torch_fn():
        t_opt.zero_grad()
        torch.nn.functional.cross_entropy(t_model(xt), yt).backward()
        t_opt.step()

    return name, engine_fn, torch_fn


def lstm_case(name, steps=64, batch=32, n_in=64, hidden=256):
    """A 1-layer LSTM over a (T, B, in) sequence, forward and backward through time
    (a random weighting of every output), then an SGD step."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, n_in)).astype(np.float32)
    w = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
    t_model = torch.nn.LSTM(n_in, hidden)
    e_model = nn.LSTM(n_in, hidden, dtype=np.float32)
    e_model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    e_opt = optim.SGD(e_model.parameters(), lr=0.01)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01)
    xt, wt = torch.tensor(x), torch.tensor(w)

    def engine_fn():
        e_opt.zero_grad()
        (e_model(x)[0] * w).sum().backward()
        e_opt.step()

    def torch_fn():
        t_opt.zero_grad()
        (t_model(xt)[0] * wt).sum().backward()
        t_opt.step()

    return name, engine_fn, torch_fn


def mha_case(name, steps=64, batch=32, dim=128, heads=4):
    """Causal multi-head self-attention over a (B, T, E) batch (batch_first), forward
    and backward (a random weighting of every output), then an SGD step: the layer of
    the attention chapter, at a Transformer language model's size."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, dim)).astype(np.float32)
    w = rng.standard_normal((batch, steps, dim)).astype(np.float32)
    mask = np.triu(np.ones((steps, steps), dtype=bool), 1)  # True = may not attend
    t_model = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
    e_model = nn.MultiheadAttention(dim, heads, batch_first=True, dtype=np.float32)
    e_model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    e_opt = optim.SGD(e_model.parameters(), lr=0.01)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01)
    xt, wt, mt = torch.tensor(x), torch.tensor(w), torch.tensor(mask)

    def engine_fn():
        e_opt.zero_grad()
        (e_model(x, x, x, attn_mask=mask, need_weights=False)[0] * w).sum().backward()
        e_opt.step()

    def torch_fn():
        t_opt.zero_grad()
        (t_model(xt, xt, xt, attn_mask=mt, need_weights=False)[0] * wt).sum().backward()
        t_opt.step()

    return name, engine_fn, torch_fn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both libraries")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="5 repeats: a smoke test, not a measurement")
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        sys.exit("engine_vs_torch: --threads and --repeats must be >= 1")
    repeats = 5 if args.quick else args.repeats
    torch.set_num_threads(args.threads)
    rows, steps = [], {}
    with threadpool_limits(limits=args.threads):
        cases = [("op", c) for c in op_cases()] + [
            ("step", step_case("MLP step", mlp, (784,), 128)),
            ("step", step_case("CNN step", cnn, (1, 28, 28), 64)),
            ("step", lstm_case("LSTM step")),
            ("step", mha_case("attention step"))]
        for kind, (name, engine_fn, torch_fn) in cases:
            e, t, ratio, (q1, q3) = compare(engine_fn, torch_fn, repeats, calls=3 if kind == "op" else 2)
            target = TARGETS.get(name)
            status = "" if target is None else ("ok" if ratio <= target else "OVER")
            rows.append([name, f"{e * 1e3:.2f}", f"{t * 1e3:.2f}", f"{ratio:.2f}", f"{q1:.2f}-{q3:.2f}",
                         f"<= {target}" if target else "", status])
            if target:
                steps[name] = ratio
            print(f"  {name}: ratio {ratio:.2f}", file=sys.stderr)
    ok = all(steps[name] <= TARGETS[name] for name in steps)
    summary = (f"engine vs PyTorch ({args.threads} threads, float32, median of {repeats}): "
               f"MLP step {steps['MLP step']:.2f}x (target <= 1.5), CNN step {steps['CNN step']:.2f}x "
               f"(target <= 3), LSTM step {steps['LSTM step']:.2f}x (target <= 3), attention "
               f"step {steps['attention step']:.2f}x (target <= 3); "
               + ("targets met" if ok else "OVER target"))
    return report("engine_vs_torch",
                  ["case (forward + backward)", "engine ms", "PyTorch ms", "ratio", "ratio IQR", "target", "status"],
                  rows, summary, ok=ok, threads=args.threads, repeats=repeats)


if __name__ == "__main__":
    sys.exit(main())
