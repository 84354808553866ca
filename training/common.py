"""Helpers shared by the training entry points: reading job outputs, seeding, run folders."""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from larr.config import LarrConfig, save_config
from larr.entry import UserError, add_config_args
from larr.entry import config_from_args as _config_from_args

_TAG = re.compile(r"</?[A-Za-z]+(?:_[A-Za-z]+)?>")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(cfg: LarrConfig) -> None:
    if cfg.llm.threads:
        torch.set_num_threads(cfg.llm.threads)


SORT_KEYS = {"contrastive_pairs": ["kind", "anchor_id", "positive_id"]}  # cpt_corpus: its item key, first


def read_latest(folder: Path, partition: str = "ds") -> pd.DataFrame:
    """The newest ``ds=`` partition of a Spark job output, in a stable row order (Spark's file and row order
    varies between runs; training must not, or results are not reproducible)."""
    parts = sorted(folder.glob(f"{partition}=*"))
    if not parts:
        raise FileNotFoundError(f"{folder} has no {partition}= partitions; run `larr spark` first")
    df = pd.read_parquet(parts[-1])
    keys = SORT_KEYS.get(folder.name, [df.columns[0]] if folder.name == "cpt_corpus" else [])
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def strip_tags(text: str) -> str:
    """Plain text without field tokens (for the tokenizer's training text and outside encoders)."""
    return " ".join(_TAG.sub(" ", text).split())


def write_json(path: Path, data: dict[str, Any], cfg: LarrConfig | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if cfg is not None:
        save_config(cfg, path.parent)


def launcher_parser(doc: str | None, prog: str | None = None) -> argparse.ArgumentParser:
    """Arguments shared by the stage entry points (``python -m training.cpt``, ``torchrun ... -m
    training.cpt``, ``deepspeed ... --module training.cpt``); the config arguments are the CLI's (the shared
    ones of :mod:`larr.entry`), so ``larr train STAGE`` re-executes a stage under its launcher with the
    arguments it was given."""
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    add_config_args(p, "config override, e.g. --set llm.cpt.epochs=2 (repeatable)")
    p.add_argument("--jobs", required=True, help="root of the Spark job outputs (larr spark --out)")
    p.add_argument("--out", required=True, help="run folder for models and metrics")
    p.add_argument("--deepspeed", nargs="?", const="", help="DeepSpeed JSON config (training/configs/zero2.json or "
                                                           "zero3.json)")
    p.add_argument("--deepspeed_config", "--deepspeed-config", help="the same, as pyspark's "
                   "DeepspeedTorchDistributor passes it (--deepspeed --deepspeed_config FILE)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    return p


def deepspeed_arg(a: argparse.Namespace) -> str | None:
    """The DeepSpeed config file of ``--deepspeed FILE`` or ``--deepspeed --deepspeed_config FILE``."""
    path = a.deepspeed_config or a.deepspeed
    if a.deepspeed == "" and not path:
        raise UserError("--deepspeed needs a config file", "--deepspeed",
                        "give --deepspeed training/configs/zero2.json (or --deepspeed --deepspeed_config FILE)")
    return path or None


def config_from_args(a: argparse.Namespace) -> LarrConfig:
    """The resolved config of a stage entry point: profile < --config < --set < --seed, as in the CLI."""
    return _config_from_args(a)
