"""DeepSpeed configs under ``training/configs/`` use "auto" like the Hugging Face integration; the Trainer
(stage 1) fills them itself, and :func:`resolve` fills them for our own loop (stage 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def resolve(path: str | Path, micro_batch: int, grad_accum: int = 1, world_size: int = 1,
            bf16: bool | None = None) -> dict[str, Any]:
    """Replace every "auto" with a concrete value (batch sizes from the arguments, bf16 when CUDA has it)."""
    cfg = json.loads(Path(path).read_text())
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported() if bf16 is None else bf16
    fill = {"train_micro_batch_size_per_gpu": micro_batch, "gradient_accumulation_steps": grad_accum,
            "train_batch_size": micro_batch * grad_accum * world_size}
    for key, value in fill.items():
        if cfg.get(key) == "auto":
            cfg[key] = value
    if cfg.get("bf16", {}).get("enabled") == "auto":
        cfg["bf16"]["enabled"] = bool(bf16)
    leftover = [k for k, v in cfg.items() if v == "auto"]
    if leftover:
        raise ValueError(f"{path}: cannot resolve 'auto' for {leftover}; give concrete values")
    return cfg
