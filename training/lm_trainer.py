"""Language-model training (causal, or masked with a collator) through the Hugging Face Trainer (checkpoints, resume, DeepSpeed, bf16 for free).

One process uses the Trainer's own data loader, unchanged.  Under W processes the Trainer would give each
rank its own per-device batches (accelerate's ``BatchSamplerShard``), which equals the one-process run only
when the data fill every batch, and pads the last one with rows from the start; instead each rank takes its
slice of the *same* global batches the one-process run sees (:class:`GlobalBatchSampler`), and the Trainer's
token-count normalisation across devices (``average_tokens_across_devices``) makes the loss that of the whole
global batch.  So W processes at global batch B take the one-process steps, last batch included."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler
from transformers import (
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from larr.llm.lm_data import IGNORE, BlockDataset
from training.distributed import current, shard

log = logging.getLogger("larr.train")


def latest_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return str(ckpts[-1]) if ckpts else None


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's slice of every global batch of a seeded shuffle.

    The permutation is the one the one-process Trainer draws (accelerate's ``SeedableRandomSampler``:
    ``torch.randperm(n)`` from a generator seeded with ``seed + epoch``); batch k is rows [kB, (k+1)B) of
    it, split over ranks by :func:`training.distributed.shard` (a short last batch is split, not padded)."""

    def __init__(self, n: int, global_batch: int, rank: int, world: int, seed: int):
        if n < world:
            raise ValueError(f"{n} training blocks cannot feed {world} processes")
        self.n, self.batch, self.rank, self.world, self.seed, self.epoch = n, global_batch, rank, world, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        for i in range(0, self.n, self.batch):
            mine = shard(perm[i:i + self.batch], self.rank, self.world)
            # A last batch smaller than the world leaves a rank without rows; it runs a copy of a block with
            # every label masked (MASKED), which adds nothing to the loss or its token count, so the step
            # stays the one-process step and every rank still joins the gradient all-reduce.
            yield mine or [MASKED - perm[i]]


MASKED = -1  # dataset index MASKED - i: block i with every label -100 (GlobalBatchSampler's filler)


class _MaskableBlocks(BlockDataset):
    """Packed blocks; a negative index ``MASKED - i`` is block i with every label masked."""

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i >= 0:
            return super().__getitem__(i)
        item = super().__getitem__(MASKED - i)
        return {**item, "labels": torch.full_like(item["labels"], IGNORE)}


class _EpochLoader(DataLoader):
    """A data loader the Trainer can tell the epoch (it calls ``set_epoch`` when the loader has one)."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]


class _GlobalBatchTrainer(Trainer):
    """The Trainer with :class:`GlobalBatchSampler` batches (W > 1 only; the sampler already shards, so the
    loader is not handed to accelerate to be sharded again -- batches are moved to the device by the
    Trainer's ``_prepare_inputs`` as usual)."""

    global_batch: int = 1

    def get_train_dataloader(self) -> DataLoader:
        d = current()
        sampler = GlobalBatchSampler(len(self.train_dataset), self.global_batch, d.rank, d.world,
                                     self.args.data_seed if self.args.data_seed is not None else self.args.seed)
        return _EpochLoader(self.train_dataset, batch_sampler=sampler, collate_fn=self.data_collator, num_workers=0)


class _LossLog(TrainerCallback):
    """The training loss the Trainer logs (every ``logging_steps``; with 1: the loss of every step, the mean
    over the global batch's target tokens)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.history.append({"step": state.global_step, "loss": float(logs["loss"])})


def train_lm(model: PreTrainedModel, tokenizer: Any, blocks: dict[str, torch.Tensor], out: Path, *,
             epochs: float, lr: float, batch_size: int, warmup_ratio: float, save_steps: int, seed: int,
             deepspeed: str | None = None, gradient_checkpointing: bool = False,
             resume: bool = True, logging_steps: int = 10, save_model: Path | None = None,
             data_collator: Any = None) -> dict[str, Any]:
    """Train on packed blocks at global batch ``batch_size`` (``data_collator``: e.g. the masked-LM
    :class:`~larr.llm.lm_data.MaskedTargetCollator`; default: the blocks as they are, for a causal LM); checkpoints go to ``out/checkpoints`` and a
    re-run resumes from the newest, on the same or another number of processes (the checkpoint's step
    counts global batches).  With ``save_model`` the trained model and tokenizer are written there by the
    Trainer's ``save_model``: rank 0 writes, and under DeepSpeed ZeRO-3 the partitioned weights are
    consolidated first (DeepSpeed's 16-bit gather, ``stage3_gather_16bit_weights_on_model_save``)."""
    d = current()
    if batch_size % d.world:
        raise ValueError(f"llm.cpt.batch_size={batch_size} is the global batch; it must be divisible by the "
                         f"{d.world} processes")
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=batch_size // d.world, warmup_steps=warmup_ratio, lr_scheduler_type="cosine",
        weight_decay=0.01, logging_steps=logging_steps, save_steps=save_steps, save_total_limit=2, seed=seed,
        data_seed=seed, report_to="none", use_cpu=not cuda, bf16=cuda, deepspeed=deepspeed,
        gradient_checkpointing=gradient_checkpointing, dataloader_num_workers=0, disable_tqdm=not d.main,
        save_only_model=False, **({"ddp_backend": "nccl" if cuda else "gloo"} if d.world > 1 else {}),
    )
    cls = _GlobalBatchTrainer if d.world > 1 else Trainer
    losses = _LossLog()
    trainer = cls(model=model, args=args, train_dataset=_MaskableBlocks(blocks), data_collator=data_collator or default_data_collator,
                  processing_class=tokenizer, callbacks=[losses])
    if isinstance(trainer, _GlobalBatchTrainer):
        trainer.global_batch = batch_size
    ckpt = latest_checkpoint(out / "checkpoints") if resume else None
    if ckpt:
        log.info("resuming from %s", ckpt)
    result = trainer.train(resume_from_checkpoint=ckpt)
    if save_model is not None:
        trainer.save_model(str(save_model))
    m: dict[str, Any] = dict(result.metrics)
    tokens = int(blocks["attention_mask"].sum()) * epochs
    m["tokens"] = tokens
    m["tokens_per_second"] = tokens / max(1e-9, m.get("train_runtime", 0.0))
    m["history"] = losses.history
    return m
