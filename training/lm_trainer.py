"""Causal-LM training through the Hugging Face Trainer (checkpoints, resume, DeepSpeed, bf16 for free)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, Trainer, TrainingArguments, default_data_collator

from larr.llm.lm_data import BlockDataset

log = logging.getLogger("larr.train")


def latest_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return str(ckpts[-1]) if ckpts else None


def train_causal_lm(model: PreTrainedModel, tokenizer: Any, blocks: dict[str, torch.Tensor], out: Path, *,
                    epochs: float, lr: float, batch_size: int, warmup_ratio: float, save_steps: int, seed: int,
                    deepspeed: str | None = None, gradient_checkpointing: bool = False,
                    resume: bool = True) -> dict[str, float]:
    """Train on packed blocks; checkpoints go to ``out/checkpoints`` and a re-run resumes from the newest."""
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=batch_size, warmup_steps=warmup_ratio, lr_scheduler_type="cosine",
        weight_decay=0.01, logging_steps=10, save_steps=save_steps, save_total_limit=2, seed=seed,
        data_seed=seed, report_to="none", use_cpu=not cuda, bf16=cuda, deepspeed=deepspeed,
        gradient_checkpointing=gradient_checkpointing, dataloader_num_workers=0, disable_tqdm=False,
        save_only_model=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=BlockDataset(blocks), data_collator=default_data_collator,
                      processing_class=tokenizer)
    ckpt = latest_checkpoint(out / "checkpoints") if resume else None
    if ckpt:
        log.info("resuming from %s", ckpt)
    result = trainer.train(resume_from_checkpoint=ckpt)
    m = dict(result.metrics)
    tokens = int(blocks["attention_mask"].sum()) * epochs
    m["tokens"] = tokens
    m["tokens_per_second"] = tokens / max(1e-9, m.get("train_runtime", 0.0))
    return m
