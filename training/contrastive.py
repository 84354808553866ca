"""Stage 2: contrastive fine-tuning into a text-embedding model (paper 3.2).

Batches hold one pair kind each (user-user, POI-POI, user-POI); the loss of a batch is the symmetric InfoNCE
with in-batch negatives (gathered across processes when distributed) times the kind's weight.  With
``llm.contrastive.grad_cache_chunk > 0`` the batch is embedded in chunks with gradient caching, so the
contrastive batch can exceed activation memory.  The result is the encoder artefact (``TextEncoder.save``).

CPU:  larr train contrastive --profile small --jobs data/small/jobs --out runs/small/llm [--init base]
GPU:  deepspeed --num_gpus 8 training/contrastive.py --jobs ... --out ... --deepspeed training/configs/zero2.json
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from larr.config import LarrConfig, load_config
from larr.llm.backbone import load_backbone
from larr.llm.contrastive import grad_cache_step, info_nce, kind_batches
from larr.llm.encoder import TextEncoder
from larr.spec import load_spec
from larr.text import registry
from training.common import launcher_parser, read_latest, seed_everything, set_threads, write_json
from training.cpt import base_path
from training.ds_config import resolve as resolve_ds

log = logging.getLogger("larr.train")


def init_path(cfg: LarrConfig, out: Path, init: str) -> Path:
    return out / "cpt" / "model" if init == "cpt" else base_path(cfg, out)


def run(cfg: LarrConfig, jobs: Path, out: Path, init: str = "cpt", name: str | None = None,
        deepspeed: str | None = None, gradient_checkpointing: bool = False) -> dict[str, Any]:
    """Fine-tune the ``init`` backbone (cpt or base) into the encoder artefact ``out/<name>``."""
    seed_everything(cfg.seed)
    set_threads(cfg)
    c = cfg.llm.contrastive
    name = name or ("encoder" if init == "cpt" else "encoder_nocpt")
    model, tok = load_backbone(init_path(cfg, out, init))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    enc = TextEncoder(model, tok, c.proj_dim, c.max_length, registry(load_spec(cfg.spec)).special_tokens())
    pairs = read_latest(jobs / "contrastive_pairs")
    pairs = pairs[(pairs["split"] == "train") & pairs["kind"].isin([k for k, w in c.weights.items() if w > 0])]
    pairs = pairs.reset_index(drop=True)
    left, right, kinds = pairs["anchor_text"].tolist(), pairs["positive_text"].tolist(), pairs["kind"].tolist()
    lengths_l = [min(len(x), c.max_length) for x in tok(left)["input_ids"]]
    lengths_r = [min(len(x), c.max_length) for x in tok(right)["input_ids"]]
    n_epochs = math.ceil(c.epochs)
    steps_per_epoch = len(kind_batches(kinds, c.batch_size, cfg.seed, 0))
    total_steps = max(1, int(steps_per_epoch * c.epochs))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    opt = torch.optim.AdamW(enc.parameters(), lr=c.lr, weight_decay=0.01)
    sched = get_cosine_schedule_with_warmup(opt, max(1, total_steps // 20), total_steps)
    engine = None
    if deepspeed:
        if c.grad_cache_chunk:
            raise ValueError("llm.contrastive.grad_cache_chunk cannot be combined with --deepspeed; "
                             "use DeepSpeed's micro-batching instead")
        import deepspeed as ds

        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        ds_cfg = resolve_ds(deepspeed, micro_batch=c.batch_size, world_size=world)
        engine, opt, _, sched = ds.initialize(model=enc, optimizer=opt, lr_scheduler=sched, config=ds_cfg)
        device = engine.device
    else:
        enc.to(device)

    def embed(texts: list[str]) -> torch.Tensor:
        batch = enc.tokenize(texts)
        model_ = engine if engine is not None else enc
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device != "cpu" and engine is None):
            return model_(batch["input_ids"].to(device), batch["attention_mask"].to(device))

    enc.train()
    history: list[dict[str, float]] = []
    step, tokens = 0, 0
    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, desc="contrastive", unit="batch")
    for epoch in range(n_epochs):
        for kind, idx in kind_batches(kinds, c.batch_size, cfg.seed, epoch):
            if step >= total_steps:
                break
            a_txt, b_txt = [left[i] for i in idx], [right[i] for i in idx]
            weight = c.weights[kind]

            def loss_fn(a: torch.Tensor, b: torch.Tensor, w: float = weight) -> torch.Tensor:
                return w * info_nce(a, b, c.temperature)

            if engine is not None:
                loss = loss_fn(embed(a_txt), embed(b_txt))
                engine.backward(loss)
                engine.step()
                value = float(loss.detach())
            else:
                opt.zero_grad(set_to_none=True)
                if c.grad_cache_chunk:
                    value = grad_cache_step(embed, a_txt, b_txt, loss_fn, c.grad_cache_chunk)
                else:
                    loss = loss_fn(embed(a_txt), embed(b_txt))
                    loss.backward()
                    value = float(loss.detach())
                torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
                opt.step()
                sched.step()
            tokens += sum(lengths_l[i] + lengths_r[i] for i in idx)
            history.append({"step": step, "kind": kind, "loss": value / weight if weight else value})
            step += 1
            bar.update(1)
            bar.set_postfix(kind=kind, loss=f"{value:.3f}")
    bar.close()
    seconds = time.perf_counter() - t0
    enc.eval()
    version = enc.save(out / name, extra={"init": init, "temperature": c.temperature, "seed": cfg.seed})
    by_kind: dict[str, list[float]] = {}
    for h in history:
        by_kind.setdefault(h["kind"], []).append(h["loss"])
    metrics = {"init": init, "version": version, "train_pairs": len(pairs), "steps": step,
               "seconds": round(seconds, 1), "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
               "first_loss_by_kind": {k: v[0] for k, v in by_kind.items()},
               "last_loss_by_kind": {k: sum(v[-10:]) / len(v[-10:]) for k, v in by_kind.items()},
               "history": history}
    write_json(out / name / "metrics.json", metrics, cfg)
    log.info("contrastive (%s): %d steps in %.0fs, version %s", init, step, seconds, version)
    return metrics


def save_noft_encoder(cfg: LarrConfig, out: Path, name: str = "encoder_noft") -> Path:
    """The noFT ablation's encoder (paper 4.3): the CPT model as it is, no contrastive fine-tuning and so no
    projection -- the embedding is the L2-normalised last hidden state at the closing field token (the
    paper's eq. 22 pooling).  Its dimension is the backbone's hidden size."""
    cpt_model = out / "cpt" / "model"
    if not (cpt_model / "config.json").exists():
        raise FileNotFoundError(f"{cpt_model} holds no CPT model: run `larr train cpt` first")
    model, tok = load_backbone(cpt_model)
    TextEncoder(model, tok, proj_dim=None, max_length=cfg.llm.contrastive.max_length,
                field_tokens=registry(load_spec(cfg.spec)).special_tokens()).save(
        out / name, extra={"init": "cpt", "contrastive": False})
    return out / name


def main(argv: list[str] | None = None) -> int:
    p = launcher_parser(__doc__)
    p.add_argument("--init", choices=["cpt", "base"], default="cpt")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(load_config(a.profile, a.config), Path(a.jobs), Path(a.out), a.init, deepspeed=a.deepspeed,
        gradient_checkpointing=a.gradient_checkpointing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
