"""Process-group plumbing shared by the stage entry points (CPT, contrastive, CTR).

One rule runs through it: a global batch means the same rows whatever the number of processes.  Every rank
builds the same global batch plan (same seed, same order) and keeps its own contiguous slice of each global
batch (:func:`shard`); losses are normalised by the *global* row count and gradients averaged across ranks,
so W processes at global batch B take the same steps as one process at batch B (tests/test_distributed.py
checks it to 1e-4).  Rank 0 alone evaluates, writes reports and saves.

``torchrun`` and ``deepspeed`` set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_distributed` reads
them and initialises the default process group *before* anything asks for the world size (gloo on a CPU,
nccl on a GPU; DeepSpeed's ``initialize`` then adopts the existing group).  Without those variables every
helper degrades to the one-process case, so the in-process CLI path needs no process group at all.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger("larr.train")
T = TypeVar("T")
BUCKET_ELEMENTS = 50_000_000  # gradient all-reduce bucket (fp32: 200 MB)


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank, world size, local rank and the device it computes on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the one process that evaluates, writes reports and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun/deepspeed (1 when started as a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(timeout_minutes: int = 60) -> Dist:
    """Initialise the default process group when started by a launcher, and return this process's place.

    Must run before anything reads the world size: DeepSpeed's config check (train_batch_size = micro batch x
    accumulation x world) and the data shards depend on it.  Idempotent; a no-op in a plain process.  The
    backend is nccl when CUDA is present and gloo otherwise, so the same code runs the CPU tests and the GPU
    runs; the only GPU-specific step is binding the process to ``cuda:LOCAL_RANK``."""
    world = launched_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_minutes),
                                **({"device_id": device} if cuda else {}))
        atexit.register(_destroy)
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), local, device)
    return Dist(0, 1, 0, device)


def _destroy() -> None:
    """Tear the process group down before the interpreter does: a gloo group left to static destructors
    aborted a finished rank now and then ("terminate called without an active exception", exit -6), which
    failed a whole launch after its work was done."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> Dist:
    """This process's place without initialising anything (rank 0 of 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        return Dist(dist.get_rank(), dist.get_world_size(), local, device)
    return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def local_batch(global_batch: int, world: int, key: str) -> int:
    """Rows per process of a global batch; the global batch must split evenly (the config names it)."""
    if global_batch % world:
        raise ValueError(f"{key}={global_batch} is the global batch; it must be divisible by the "
                         f"{world} processes (per-process batch = global / processes)")
    return global_batch // world


def shard(rows: Sequence[T], rank: int, world: int) -> list[T]:
    """This rank's contiguous slice of one global batch; sizes differ by at most one (the first
    ``len % world`` ranks hold one more), so a short last batch is covered exactly, never padded or repeated."""
    n = len(rows)
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return list(rows[start:start + base + (1 if rank < extra else 0)])


def barrier() -> None:
    """Wait for every rank (e.g. while rank 0 evaluates or saves); a no-op in one process."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_sum(values: Sequence[float], device: torch.device | None = None) -> list[float]:
    """Sum of each value over all ranks (float64, so step losses and token counts add up exactly enough)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device or current().device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (for decisions only rank 0 can take, e.g. which checkpoint)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks, as DDP's reducer does, in flat buckets.

    The contrastive step runs two forwards (anchors, positives) before one backward, and GradCache runs one
    backward per chunk; DDP's reducer assumes one forward and one backward per step, so that loop averages
    explicitly after its last backward instead (the CTR loop, one forward and one backward, uses DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    params = [p for p in params if p.requires_grad]
    # A parameter no rank touched keeps grad None (the optimizer skips it, as in one process); one that some
    # rank touched gets zeros where it is missing, so every rank reduces the same buckets.
    has = any_rank([p.grad is not None for p in params], params[0].device if params else None)
    for p, h in zip(params, has, strict=True):
        if h and p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p, h in zip(params, has, strict=True) if h]
    bucket: list[torch.Tensor] = []
    size = 0
    for g in [*grads, None]:
        if g is not None and (not bucket or (g.dtype == bucket[0].dtype and g.device == bucket[0].device
                                             and size + g.numel() <= BUCKET_ELEMENTS)):
            bucket.append(g)
            size += g.numel()
            continue
        if bucket:
            flat = torch.cat([b.reshape(-1) for b in bucket])
            dist.all_reduce(flat)
            flat /= world
            offset = 0
            for b in bucket:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()
        bucket, size = ([g], g.numel()) if g is not None else ([], 0)


def any_rank(flags: Sequence[bool], device: torch.device | None = None) -> list[bool]:
    """For each flag: true on at least one rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(flags)
    t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=device or current().device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def full_state_dict(module: torch.nn.Module, zero3: bool, main: bool) -> dict[str, torch.Tensor] | None:
    """The whole, unpartitioned fp32 state dict of ``module`` on rank 0 (``None`` elsewhere).

    Under ZeRO-3 each rank holds a slice of every parameter and ``save_pretrained`` would write the empty
    placeholders, so the parameters are gathered with DeepSpeed's own ``deepspeed.zero.GatheredParameters``,
    one module at a time (the peak is one layer, as in DeepSpeed's own 16-bit save).  A collective: every
    rank calls it.  Without ZeRO-3 every rank already holds the full model."""
    keys = set(module.state_dict().keys())
    if not zero3:
        return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()} if main else None
    import deepspeed

    out: dict[str, torch.Tensor] = {}
    for prefix, sub in module.named_modules():
        params = list(sub.named_parameters(recurse=False))
        with deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None):
            if main:
                for name, p in params:
                    out[f"{prefix}.{name}" if prefix else name] = p.detach().float().cpu().clone()
        if main:
            for name, b in sub.named_buffers(recurse=False):
                out[f"{prefix}.{name}" if prefix else name] = b.detach().float().cpu().clone() \
                    if b.is_floating_point() else b.detach().cpu().clone()
    return {k: v for k, v in out.items() if k in keys} if main else None


def peak_gpu_mb() -> float | None:
    """Peak GPU memory this process allocated (MiB), or None on a CPU."""
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None
