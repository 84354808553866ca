"""Contrastive fine-tuning pieces (paper 3.2): symmetric InfoNCE with in-batch negatives, negatives gathered
across processes, one-kind batches, and gradient caching (GradCache) so the contrastive batch can exceed
memory."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 keeping every rank's slice differentiable.

    Backward: rank r's slice receives the sum over all ranks of the gradient flowing into it (an all-reduce of
    the gathered gradient, then r's slice), because every rank's loss uses rank r's rows as negatives.  Only
    public collectives, so gloo (CPU) and nccl (GPU) behave the same."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rows of ``x`` from every process, in rank order, differentiable, and the offset of this process's first
    row among them.  Processes may hold different row counts (the short last batch of a plan is split as
    evenly as it goes): rows are padded to the widest for the collective and the padding dropped after.
    Outside a process group: ``(x, 0)``."""
    if not _distributed():
        return x, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes_t = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes_t, size)
    sizes = [int(s.item()) for s in sizes_t]
    widest = max(sizes)
    padded = F.pad(x, (0, 0, 0, widest - x.shape[0])) if x.shape[0] < widest else x
    gathered = _GatherRows.apply(padded)
    rows = torch.cat([gathered[q * widest:q * widest + sizes[q]] for q in range(world)], dim=0)
    return rows, sum(sizes[:rank])


# exp(-80) ~ 1.8e-35 is still a normal float32 (min ~1.2e-38): one shared shift is safe while the logits span less
_SHARED_SHIFT_SPAN = 80.0


class _SymmetricInfoNCE(torch.autograd.Function):
    """Both directions of InfoNCE on one process from one logits matrix L = a b^T (b a^T is its transpose),
    with one exponential pass over it.  |L_ij| <= M = max|a_i| max|b_j|, so E = exp(L - M) shares one shift
    for rows and columns without overflow, and (while 2M < 80) without underflow:

        loss = M + (mean_i log sum_j E_ij + mean_j log sum_i E_ij) / 2 - mean_i L_ii
        dL = (E / rowsum(E) + E / colsum(E) - 2 I) / 2n

    Inputs [k, m, d] are k independent blocks of m rows (``torch.bmm``), the loss the mean over all k*m rows.
    The same value and gradients as two ``cross_entropy`` calls (tested to 1e-6) in about a third of the time:
    autograd's version makes ~12 passes over the n x n logits (two matmuls, divisions by t, two log-softmaxes,
    a one-hot fill, their backwards); at a CTR batch of 2,400 rows that was half of a LARR training step."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, shift: float) -> torch.Tensor:  # type: ignore[override]
        e = (a @ b.mT).sub_(shift).exp_()
        rows, cols = e.sum(-1), e.sum(-2)
        ctx.save_for_backward(a, b, e, rows, cols)
        return shift + (rows.log().mean() + cols.log().mean()) / 2 - (a * b).sum(-1).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        a, b, e, rows, cols = ctx.saved_tensors
        k = grad / (2 * rows.numel())
        g = e * (k / rows).unsqueeze(-1)
        g.addcmul_(e, (k / cols).unsqueeze(-2))
        g.diagonal(dim1=-2, dim2=-1).sub_(2 * k)
        return g @ b, g.mT @ a, None


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, across_processes: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``a`` matches row i of ``b``; every other row is a negative.

    loss = (CE(a b^T / t, diag) + CE(b a^T / t, diag)) / 2, the mean over this process's rows.  Under a
    process group the negatives are the rows of *every* process (gathered with gradient), and this
    process's own positives sit on the diagonal of its block: its row i is row ``offset + i`` of the gathered
    matrix.  For the loss of the whole global batch, weight each process's mean by its share of the rows
    (:func:`global_mean_weight`).  A process with no rows (a last batch smaller than the world) returns a
    zero that still joins the collectives and backward.  ``across_processes=False``: this process's rows
    only, no collective (the CTR alignment's blocks, :func:`larr.ctr.models.alignment_loss`).
    """
    all_a, offset = gather_with_grad(a) if across_processes else (a, 0)
    all_b, _ = gather_with_grad(b) if across_processes else (b, 0)
    if a.shape[0] == 0:
        return (all_a.sum() + all_b.sum()) * 0.0
    one_process = all_a is a
    # 1/t applied to the [n, d] inputs as 1/sqrt(t) each, not to the [n, n] logits
    scale = temperature ** -0.5
    a, b = a * scale, b * scale
    if not one_process:
        all_a, all_b = all_a * scale, all_b * scale
    else:
        all_a, all_b = a, b
        if a.dtype in (torch.float32, torch.float64):
            shift = float(a.detach().norm(dim=1).max() * b.detach().norm(dim=1).max())
            if 2 * shift < _SHARED_SHIFT_SPAN:  # cosine logits need t >= 0.025; else the general path below
                return _SymmetricInfoNCE.apply(a, b, shift)
    labels = torch.arange(a.shape[0], device=a.device) + offset
    logits_ab = a @ all_b.T
    logits_ba = b @ all_a.T
    return (F.cross_entropy(logits_ab, labels) + F.cross_entropy(logits_ba, labels)) / 2


def info_nce_blocks(a: torch.Tensor, b: torch.Tensor, temperature: float, block: int) -> torch.Tensor:
    """Symmetric InfoNCE within consecutive blocks of ``block`` rows of this process's rows (the last one
    shorter; no collective): each row's negatives are the other rows of its block.  The mean over all rows.
    The whole blocks go through one batched pass (one set of ops however many blocks, issue 16), the short
    one through :func:`info_nce`."""
    n, d = a.shape
    full = n // block * block
    total = a.new_zeros(())
    if full:
        scale = temperature ** -0.5
        a3, b3 = (a[:full] * scale).view(-1, block, d), (b[:full] * scale).view(-1, block, d)
        shift = float(a3.detach().norm(dim=-1).max() * b3.detach().norm(dim=-1).max())
        if a.dtype in (torch.float32, torch.float64) and 2 * shift < _SHARED_SHIFT_SPAN:
            total = _SymmetricInfoNCE.apply(a3, b3, shift) * full
        else:
            for lo in range(0, full, block):
                total = total + info_nce(a[lo:lo + block], b[lo:lo + block], temperature,
                                         across_processes=False) * block
    if full < n:
        total = total + info_nce(a[full:], b[full:], temperature, across_processes=False) * (n - full)
    return total / n


def global_mean_weight(local_rows: int, global_rows: int) -> float:
    """Factor that turns this process's mean loss into its part of the global-batch mean, *for gradients
    averaged over processes* (DDP, DeepSpeed, :func:`training.distributed.average_gradients`): local mean x
    local rows / global rows x world.  Summed over processes and divided by the world it is the mean over
    the global batch, so W processes take the step one process takes on the whole batch.  1 outside a
    process group."""
    if not _distributed():
        return 1.0
    return local_rows * dist.get_world_size() / max(global_rows, 1)


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
