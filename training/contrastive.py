"""Stage 2: contrastive fine-tuning into a text-embedding model (paper 3.2).

Batches hold one pair kind each (user-user, POI-POI, user-POI); the loss of a batch is the symmetric InfoNCE
with in-batch negatives (gathered across processes when distributed) times the kind's weight.  With
``llm.contrastive.grad_cache_chunk > 0`` the batch is embedded in chunks with gradient caching, so the
contrastive batch can exceed activation memory.  The result is the encoder artefact (``TextEncoder.save``).

CPU:  larr train contrastive --profile small --jobs data/small/jobs --out runs/small/llm [--init base]
GPU:  deepspeed --num_gpus 8 training/contrastive.py --jobs ... --out ... --deepspeed training/configs/zero2.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from larr.config import LarrConfig
from larr.entry import entry_point
from larr.llm.backbone import auto_model_class, load_backbone
from larr.llm.contrastive import global_mean_weight, grad_cache_step, info_nce, kind_batches
from larr.llm.encoder import TextEncoder
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
from training.cpt import base_path
from training.distributed import (
    Dist,
    all_sum,
    average_gradients,
    barrier,
    broadcast_object,
    full_state_dict,
    init_distributed,
    local_batch,
    peak_gpu_mb,
    shard,
)
from training.ds_config import resolve as resolve_ds

log = logging.getLogger("larr.train")
KEEP_CHECKPOINTS = 2


def init_path(cfg: LarrConfig, out: Path, init: str) -> Path:
    return out / "cpt" / "model" if init == "cpt" else base_path(cfg, out)


def batch_plan(kinds: list[str], batch_size: int, seed: int, epoch: int, world: int) -> list[tuple[str, list[int]]]:
    """The global batches of one epoch (one pair kind each), the same list on every rank.  Each rank trains
    on its :func:`~training.distributed.shard` of every batch.  Under W > 1 processes a batch with fewer
    than W pairs (a short last batch of a kind) is left out so that no rank goes without rows; for W <= 2 the
    plan is exactly the one-process plan (every kept batch has >= 2 pairs)."""
    return [(k, idx) for k, idx in kind_batches(kinds, batch_size, seed, epoch) if len(idx) >= world]


def _fingerprint(cfg: LarrConfig, init: str, init_dir: Path, pairs: pd.DataFrame) -> str:
    """What a checkpoint must match to be resumed: the stage's config, seed, init model files and the pairs
    (not the number of processes: a run may resume on another)."""
    h = hashlib.sha256()
    h.update(json.dumps({"c": cfg.llm.contrastive.model_dump(exclude={"save_steps"}), "seed": cfg.seed,
                         "init": init, "spec": cfg.spec}, sort_keys=True, default=str).encode())
    for f in sorted(init_dir.glob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(pd.util.hash_pandas_object(pairs[["kind", "anchor_id", "positive_id"]], index=False).values.tobytes())
    return h.hexdigest()[:16]


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []


def _resumable(folder: Path, fingerprint: str, deepspeed: bool) -> Path | None:
    """Newest checkpoint of this run (same fingerprint, same kind: DeepSpeed or plain); rank 0 decides."""
    for ckpt in reversed(_checkpoints(folder)):
        meta = ckpt / "meta.json"
        if not meta.exists():
            continue
        m = json.loads(meta.read_text())
        if m.get("fingerprint") == fingerprint and m.get("deepspeed", False) == deepspeed:
            return ckpt
        log.warning("ignoring checkpoint %s: it belongs to another run (config, data or init model changed)", ckpt)
    return None


def run(cfg: LarrConfig, jobs: Path, out: Path, init: str = "cpt", name: str | None = None,
        deepspeed: str | None = None, gradient_checkpointing: bool = False, resume: bool = True) -> dict[str, Any]:
    """Fine-tune the ``init`` backbone (cpt or base) into the encoder artefact ``out/<name>``.

    Runs as one process or as one of W (torchrun / deepspeed): the process group is initialised first, every
    rank walks the same global batch plan and embeds its own slice, negatives are gathered from every rank
    with this rank's positives on the diagonal of its block, and the loss is normalised by the global batch,
    so the steps equal those of one process at the same batch.  Checkpoints (``out/checkpoints/<name>``,
    every ``save_steps``) hold the full model and optimizer, so a run resumes on any number of processes
    (DeepSpeed's own checkpoints: on the same number).  Rank 0 alone saves the artefact and the metrics."""
    d = init_distributed()
    seed_everything(cfg.seed)
    set_threads(cfg)
    c = cfg.llm.contrastive
    name = name or ("encoder" if init == "cpt" else "encoder_nocpt")
    init_dir = init_path(cfg, out, init)
    model, tok = load_backbone(init_dir)
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
    steps_per_epoch = len(batch_plan(kinds, c.batch_size, cfg.seed, 0, d.world))
    total_steps = max(1, int(steps_per_epoch * c.epochs))
    local_batch(c.batch_size, d.world, "llm.contrastive.batch_size")
    device = d.device
    head = list(enc.projection.parameters()) if enc.projection is not None else []
    body = [p for p in enc.parameters() if all(p is not h for h in head)]
    opt = torch.optim.AdamW([{"params": body, "lr": c.lr}, {"params": head, "lr": c.head_lr or c.lr}],
                            weight_decay=0.01)
    sched = get_cosine_schedule_with_warmup(opt, max(1, total_steps // 20), total_steps)
    engine, zero3 = None, False
    if deepspeed:
        if c.grad_cache_chunk:
            raise ValueError("llm.contrastive.grad_cache_chunk cannot be combined with --deepspeed; "
                             "use DeepSpeed's micro-batching instead")
        import deepspeed as ds

        ds_cfg = resolve_ds(deepspeed, micro_batch=local_batch(c.batch_size, d.world, "llm.contrastive.batch_size"),
                            world_size=d.world)
        zero3 = ds_cfg.get("zero_optimization", {}).get("stage", 0) == 3
        engine, opt, _, sched = ds.initialize(model=enc, optimizer=opt, lr_scheduler=sched, config=ds_cfg)
        device = engine.device
    else:
        enc.to(device)

    ckpt_dir = out / "checkpoints" / name  # beside the artefact, not in it: the artefact is what gets copied
    fingerprint = _fingerprint(cfg, init, init_dir, pairs)
    start_step, history, tokens, seconds_before = 0, [], 0, 0.0
    found = broadcast_object(str(_resumable(ckpt_dir, fingerprint, engine is not None) or "") if d.main else None)
    if resume and found:
        state = _load_checkpoint(Path(found), enc, opt, sched, engine)
        start_step, history, tokens, seconds_before = state["step"], state["history"], state["tokens"], state["seconds"]
        log.info("resuming from %s (step %d of %d, %d process(es))", found, start_step, total_steps, d.world)

    def embed(texts: list[str]) -> torch.Tensor:
        batch = enc.tokenize(texts)
        model_ = engine if engine is not None else enc
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                            enabled=device.type == "cuda" and engine is None):
            return model_(batch["input_ids"].to(device), batch["attention_mask"].to(device))

    enc.train()
    step = start_step
    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, initial=start_step, desc="contrastive", unit="batch", disable=None if d.main else True)
    for epoch in range(n_epochs):
        for kind, idx in batch_plan(kinds, c.batch_size, cfg.seed, epoch, d.world):
            if step >= total_steps:
                break
            if step < start_step:
                step += 1  # already trained before the checkpoint: the plan is deterministic, skip it
                continue
            mine = shard(idx, d.rank, d.world)
            a_txt, b_txt = [left[i] for i in mine], [right[i] for i in mine]
            weight = c.weights[kind]
            share = global_mean_weight(len(mine), len(idx))

            def loss_fn(a: torch.Tensor, b: torch.Tensor, w: float = weight * share) -> torch.Tensor:
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
                average_gradients(enc.parameters())
                torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
                opt.step()
                sched.step()
            # value = weight x share x local mean; the global mean is the sum over ranks of local mean x rows
            local_rows_loss = value / (weight * share) * len(mine) if weight and share else 0.0
            summed, step_tokens = all_sum([local_rows_loss, sum(lengths_l[i] + lengths_r[i] for i in mine)], device)
            tokens += int(step_tokens)
            history.append({"step": step, "kind": kind, "loss": summed / len(idx)})
            step += 1
            bar.update(1)
            bar.set_postfix(kind=kind, loss=f"{history[-1]['loss']:.3f}")
            if c.save_steps and (step % c.save_steps == 0 or step == total_steps):
                _save_checkpoint(ckpt_dir / f"step-{step}", d, enc, opt, sched, engine,
                                 {"step": step, "history": history, "tokens": tokens, "fingerprint": fingerprint,
                                  "seconds": seconds_before + time.perf_counter() - t0})
    bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    enc.eval()
    state = full_state_dict(enc, zero3, d.main) if engine is not None else None
    version = None
    if d.main:
        artefact = enc if engine is None else _fp32_copy(enc, state)
        version = artefact.save(out / name, extra={"init": init, "temperature": c.temperature, "seed": cfg.seed})
    version = broadcast_object(version)
    by_kind: dict[str, list[float]] = {}
    for h in history:
        by_kind.setdefault(h["kind"], []).append(h["loss"])
    metrics = {"init": init, "version": version, "train_pairs": len(pairs), "steps": step, "processes": d.world,
               "global_batch": c.batch_size, "deepspeed": Path(deepspeed).name if deepspeed else None,
               "seconds": round(seconds, 1), "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
               "peak_gpu_mb": peak_gpu_mb(),
               "parameters": sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters()),  # ZeRO-3: full
               "first_loss_by_kind": {k: v[0] for k, v in by_kind.items()},
               "last_loss_by_kind": {k: sum(v[-10:]) / len(v[-10:]) for k, v in by_kind.items()},
               "history": history}
    if d.main:
        write_json(out / name / "metrics.json", metrics, cfg)
        log.info("contrastive (%s): %d steps in %.0fs on %d process(es), version %s", init, step, seconds, d.world,
                 version)
    barrier()
    return metrics


def _fp32_copy(enc: TextEncoder, state: dict[str, torch.Tensor] | None) -> TextEncoder:
    """A float32 CPU encoder holding ``state`` (the gathered weights of a DeepSpeed-trained encoder, whose
    module may be bf16 and partitioned), so the artefact is the same kind of file however it was trained."""
    config = copy.deepcopy(enc.backbone.config)
    backbone = auto_model_class(config).from_config(config, dtype=torch.float32)
    out = TextEncoder(backbone, enc.tokenizer, enc.projection.out_features if enc.projection is not None else None,
                      enc.max_length, pooling=enc.pooling)
    out.load_state_dict(state or {})
    return out


def _save_checkpoint(path: Path, d: Dist, enc: TextEncoder, opt: Any, sched: Any, engine: Any,
                     meta: dict[str, Any]) -> None:
    """Full (unsharded) model, optimizer and schedule from rank 0, so any number of processes can resume;
    under DeepSpeed its own ``save_checkpoint`` (a collective; ZeRO states stay partitioned)."""
    meta = {**meta, "deepspeed": engine is not None}
    if engine is not None:
        engine.save_checkpoint(str(path.parent), tag=path.name, client_state=meta)
    elif d.main:
        tmp = path.with_name(path.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        torch.save({"model": enc.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
                   tmp / "state.pt")
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    if d.main:
        (path / "meta.json").write_text(json.dumps(meta, default=str) + "\n")
        for old in _checkpoints(path.parent)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()


def _load_checkpoint(path: Path, enc: TextEncoder, opt: Any, sched: Any, engine: Any) -> dict[str, Any]:
    meta = json.loads((path / "meta.json").read_text())
    if engine is not None:
        engine.load_checkpoint(str(path.parent), tag=path.name)
    else:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        enc.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    return meta


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


def build_parser() -> argparse.ArgumentParser:
    p = launcher_parser(__doc__, prog="python -m training.contrastive")
    p.add_argument("--init", choices=["cpt", "base"], default="cpt")
    p.add_argument("--name", help="artefact folder name under OUT (default encoder, or encoder_nocpt for --init base)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """``python -m training.contrastive`` (also under torchrun/deepspeed); user errors: one line, exit 2."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(config_from_args(a), Path(a.jobs), Path(a.out), a.init, name=a.name, deepspeed=deepspeed_arg(a),
        gradient_checkpointing=a.gradient_checkpointing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
