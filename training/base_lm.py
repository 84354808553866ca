"""The default backbone: a BPE tokenizer trained on our text and a small Llama pretrained on the simulator's
general world text, so that it plays the part of a general-purpose LLM (and "no CPT" means something).

With ``llm.backbone.path`` set, this step only checks that the local model loads.

    larr train base --profile small --raw data/small --jobs data/small/jobs --out runs/small/llm
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from larr.config import LarrConfig
from larr.entry import add_config_args, config_from_args, entry_point, existing_dir
from larr.llm.backbone import build_default_model, load_backbone, save_backbone, train_tokenizer
from larr.llm.lm_data import pack, tokenize_documents
from training.common import read_latest, seed_everything, set_threads, strip_tags, write_json
from training.lm_trainer import train_lm

log = logging.getLogger("larr.train")


def run(cfg: LarrConfig, raw: Path, jobs: Path, out: Path) -> dict[str, Any]:
    """Build (or check) the base backbone into ``out/base``."""
    seed_everything(cfg.seed)
    set_threads(cfg)
    b = cfg.llm.backbone
    target = out / "base"
    if b.path:
        model, tok = load_backbone(b.path)
        metrics = {"backbone": b.path, "parameters": sum(p.numel() for p in model.parameters())}
        write_json(target / "metrics.json", metrics, cfg)
        return metrics
    corpus = read_latest(jobs / "cpt_corpus")["text"].map(strip_tags).tolist()
    general_file = raw / "general_text.txt"
    if general_file.exists():
        general = [line for line in general_file.read_text().splitlines() if line.strip()]
        log.info("base backbone: pretraining on %s (%d documents)", general_file, len(general))
    else:
        # Real logs come without the simulator's world knowledge: pretrain on the corpus itself (tags stripped,
        # so CPT still has something to learn: the field structure).  A real model: llm.backbone.path.
        general = corpus
        log.warning("base backbone: no %s; pretraining the default backbone on the CPT corpus itself "
                    "(%d documents). For real text, point llm.backbone.path at a local Hugging Face model.",
                    general_file, len(general))
    if b.general_epochs >= 20 and len(general) > 5000:
        log.warning("base backbone: %d epochs over %d documents can take a long time on a CPU; lower "
                    "llm.backbone.general_epochs or set llm.backbone.path", b.general_epochs, len(general))
    pairs = read_latest(jobs / "contrastive_pairs")
    tokenizer_text = general + corpus + pairs["anchor_text"].map(strip_tags).tolist()
    t0 = time.perf_counter()
    tok = train_tokenizer(tokenizer_text, b.vocab_size)
    model = build_default_model(b, tok, cfg.seed)
    docs = tokenize_documents(tok, general, max_length=b.max_length)
    blocks = pack(docs, min(128, b.max_length), tok.pad_token_id)
    m = train_lm(model, tok, blocks, target, epochs=b.general_epochs, lr=b.general_lr, batch_size=16,
                        warmup_ratio=0.05, save_steps=10_000, seed=cfg.seed, resume=False)
    save_backbone(model, tok, target)
    metrics = {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tok),
               "general_documents": len(general), "general_tokens": int(blocks["attention_mask"].sum()),
               "train_loss": m.get("train_loss"), "tokens_per_second": m["tokens_per_second"],
               "seconds": round(time.perf_counter() - t0, 1)}
    write_json(target / "metrics.json", metrics, cfg)
    log.info("base backbone: %s", metrics)
    return metrics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.base_lm", description=__doc__.split("\n")[0])
    add_config_args(p)
    p.add_argument("--raw", required=True, type=existing_dir, help="raw data folder (the general text)")
    p.add_argument("--jobs", required=True, help="root of the Spark job outputs (larr spark --out)")
    p.add_argument("--out", required=True, help="run folder; the backbone goes to OUT/base")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """``python -m training.base_lm``; user errors: one line, exit 2."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(config_from_args(a), Path(a.raw), Path(a.jobs), Path(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
