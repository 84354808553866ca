"""Stage 1: continual pretraining (paper 3.1) -- causal-LM loss on the target segments of each POI document,
the prompt (name + location) masked, short documents packed; checkpoints and resume through the Hugging Face
Trainer; held-out POI target loss before and after.

CPU:  larr train cpt --profile small --jobs data/small/jobs --out runs/small/llm
GPU:  deepspeed --num_gpus 8 training/cpt.py --profile large --jobs ... --out ... \
          --deepspeed training/configs/zero2.json [--gradient-checkpointing]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from larr.config import LarrConfig, load_config
from larr.llm.backbone import add_field_tokens, load_backbone, save_backbone
from larr.llm.lm_data import pack, target_loss, tokenize_documents
from larr.spec import load_spec
from larr.text import registry
from training.common import launcher_parser, read_latest, seed_everything, set_threads, write_json
from training.lm_trainer import train_causal_lm

log = logging.getLogger("larr.train")


def base_path(cfg: LarrConfig, out: Path) -> Path:
    return Path(cfg.llm.backbone.path) if cfg.llm.backbone.path else out / "base"


def run(cfg: LarrConfig, jobs: Path, out: Path, deepspeed: str | None = None,
        gradient_checkpointing: bool = False, resume: bool = True) -> dict[str, Any]:
    """Continually pretrain the base backbone on the CPT corpus into ``out/cpt``."""
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
    before = target_loss(model, held_docs, pad_id=tok.pad_token_id)
    blocks = pack(train_docs, c.block_size, tok.pad_token_id)
    t0 = time.perf_counter()
    m = train_causal_lm(model, tok, blocks, out / "cpt", epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                        warmup_ratio=c.warmup_ratio, save_steps=c.save_steps, seed=cfg.seed, deepspeed=deepspeed,
                        gradient_checkpointing=gradient_checkpointing, resume=resume)
    after = target_loss(model, held_docs, pad_id=tok.pad_token_id)
    save_backbone(model, tok, out / "cpt" / "model")
    metrics = {"field_tokens_added": added, "train_documents": len(train), "heldout_documents": len(held),
               "train_target_tokens": sum(sum(1 for t in d[1] if t != -100) for d in train_docs),
               "heldout_target_loss_before": before, "heldout_target_loss_after": after,
               "train_loss": m.get("train_loss"), "tokens_per_second": m["tokens_per_second"],
               "seconds": round(time.perf_counter() - t0, 1)}
    write_json(out / "cpt" / "metrics.json", metrics, cfg)
    log.info("CPT: held-out target loss %.3f -> %.3f", before, after)
    return metrics


def main(argv: list[str] | None = None) -> int:
    p = launcher_parser(__doc__)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(load_config(a.profile, a.config), Path(a.jobs), Path(a.out), a.deepspeed, a.gradient_checkpointing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
