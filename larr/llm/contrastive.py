"""Contrastive fine-tuning pieces (paper 3.2): symmetric InfoNCE with in-batch negatives, negatives gathered
across processes, one-kind batches, and gradient caching (GradCache) so the contrastive batch can exceed
memory."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather along the batch dimension keeping the local slice differentiable (no-op when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``a`` matches row i of ``b``; every other row is a negative.

    loss = (CE(a b^T / t, diag) + CE(b a^T / t, diag)) / 2, with negatives from all processes.
    """
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    all_a, all_b = gather_with_grad(a), gather_with_grad(b)
    labels = torch.arange(a.shape[0], device=a.device) + rank * a.shape[0]
    logits_ab = a @ all_b.T / temperature
    logits_ba = b @ all_a.T / temperature
    return (F.cross_entropy(logits_ab, labels) + F.cross_entropy(logits_ba, labels)) / 2


def kind_batches(kinds: Sequence[str], batch_size: int, seed: int, epoch: int) -> list[tuple[str, list[int]]]:
    """Shuffle each pair kind separately, cut into full batches of one kind, and interleave them."""
    rng = random.Random(seed * 1000 + epoch)
    by_kind: dict[str, list[int]] = {}
    for i, k in enumerate(kinds):
        by_kind.setdefault(k, []).append(i)
    batches = []
    for k, idx in sorted(by_kind.items()):
        rng.shuffle(idx)
        for s in range(0, len(idx) - batch_size + 1, batch_size):
            batches.append((k, idx[s:s + batch_size]))
        rest = len(idx) % batch_size
        if rest >= 2:  # a short last batch still has negatives
            batches.append((k, idx[-rest:]))
    rng.shuffle(batches)
    return batches


def grad_cache_step(embed: Callable[[list[str]], torch.Tensor], left: list[str], right: list[str],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], chunk: int) -> float:
    """One GradCache step (Gao et al. 2021): embed without graph, get the loss gradient w.r.t. the embeddings,
    then re-embed chunk by chunk with graph and backpropagate the cached gradients.  Peak activation memory is
    one chunk, yet the loss sees the whole batch as negatives.  Calls ``backward``; returns the loss."""
    with torch.no_grad():
        reps_l = torch.cat([embed(left[i:i + chunk]) for i in range(0, len(left), chunk)])
        reps_r = torch.cat([embed(right[i:i + chunk]) for i in range(0, len(right), chunk)])
    reps_l.requires_grad_(True)
    reps_r.requires_grad_(True)
    loss = loss_fn(reps_l, reps_r)
    loss.backward()
    for texts, grads in ((left, reps_l.grad), (right, reps_r.grad)):
        for i in range(0, len(texts), chunk):
            embed(texts[i:i + chunk]).backward(grads[i:i + chunk])
    return float(loss.detach())
