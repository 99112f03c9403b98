"""Several processes under ``torchrun``: data-parallel training without chapter changes.

``torchrun --nproc_per_node=N code/<chapter>.py --profile full`` starts N copies
of the chapter, each told its rank through environment variables. :func:`fit`
calls the helpers below, which do nothing in a single process:

- :func:`wrap` puts the model in DistributedDataParallel, which averages the
  gradients of all processes during ``backward()``;
- :func:`shard` gives each process its own slice of every epoch's data;
- only the main process (rank 0) prints, and writes checkpoints and results.

NCCL is used between GPUs, gloo on the CPU (which is how the tests run it).

Chapter: "Running the chapters yourself" (book/appendix/running.md).
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def is_enabled() -> bool:
    """True in a process started by torchrun with more than one process in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group (once); a no-op outside torchrun."""
    if is_enabled() and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend)


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device:
    init()
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model to call in the training step: DDP-wrapped under torchrun, else
    itself."""
    if not is_enabled():
        return model
    init()
    from torch.nn.parallel import DistributedDataParallel

    ids = (
        [model_device.index]
        if (model_device := next(model.parameters()).device).type == "cuda"
        else None
    )
    return DistributedDataParallel(model, device_ids=ids)


def shard(loader, shuffle: bool | None = None):
    """The same DataLoader, but each process iterates over its own part of the
    dataset."""
    if not is_enabled() or loader is None:
        return loader
    init()
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(loader.sampler, RandomSampler) and loader.sampler.replacement:
        # Batches drawn at random (scratch.train.sampled_loader): each process draws its
        # own.
        sampler = RankRandomSampler(
            loader.dataset, -(-loader.sampler.num_samples // world_size())
        )
    else:
        if shuffle is None:
            shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(loader.dataset, shuffle=shuffle)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
    )


class RankRandomSampler(torch.utils.data.Sampler):
    """``num_samples`` indices drawn with replacement, different in every process.

    The seed comes from the global RNG, which every process seeded alike, plus the
    rank; so the draw repeats exactly when a resumed run restores the RNG."""

    def __init__(self, dataset, num_samples: int):
        self.n, self.num_samples = len(dataset), num_samples

    def __iter__(self):
        seed = int(torch.empty((), dtype=torch.int64).random_().item()) + rank()
        g = torch.Generator().manual_seed(seed)
        return iter(torch.randint(self.n, (self.num_samples,), generator=g).tolist())

    def __len__(self):
        return self.num_samples


def no_sync_unless(model, sync: bool):
    """Skip DDP's gradient all-reduce on micro-batches that do not end an
    accumulation."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a (CPU) tensor over processes; identity in a single process."""
    if world_size() == 1:
        return t
    on = t.to(device())
    dist.all_reduce(on)
    return on.cpu()
