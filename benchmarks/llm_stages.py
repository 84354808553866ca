"""LLM stage speed: training tokens/s of CPT and of contrastive fine-tuning, encode texts/s, peak memory;
on the CPU (and the GPU when one is present), side by side in one run.

Needs the outputs of the main job (bash scripts/demo.sh):

    .venv/bin/python -m benchmarks.llm_stages [--data data/small] [--run runs/small] [--steps 20]

Prints a table and writes JSON (runs/bench/llm_stages.json). Peak memory is the process's peak RSS on the
CPU and ``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from larr.config import load_config
from larr.llm.backbone import add_field_tokens, load_backbone
from larr.llm.contrastive import info_nce
from larr.llm.encoder import TextEncoder
from larr.llm.lm_data import pack, tokenize_documents
from training.common import read_latest


def _peak_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_cpt(run: Path, jobs: Path, device: str, steps: int, batch: int, block: int) -> dict:
    model, tok = load_backbone(run / "llm" / "base")
    add_field_tokens(model, tok)
    model.to(device).train()
    corpus = read_latest(jobs / "cpt_corpus")
    blocks = pack(tokenize_documents(tok, corpus["text"].tolist(), corpus["prompt_chars"].tolist()), block,
                  tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = blocks["input_ids"].shape[0]
    tokens, t0 = 0, None
    for step in range(steps + 2):
        i = (step * batch) % max(1, n - batch)
        b = {k: v[i:i + batch].to(device) for k, v in blocks.items()}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step == 1:  # two warm-up steps
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        elif step > 1:
            tokens += int(b["attention_mask"].sum())
    if device == "cuda":
        torch.cuda.synchronize()
    return {"stage": "cpt", "device": device, "tokens_per_second": tokens / (time.perf_counter() - t0),
            "peak_mb": _peak_mb(device)}


def bench_contrastive(run: Path, jobs: Path, device: str, steps: int, batch: int) -> dict:
    model, tok = load_backbone(run / "llm" / "cpt" / "model")
    enc = TextEncoder(model, tok, 128, 256).to(device).train()
    pairs = read_latest(jobs / "contrastive_pairs")
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
    tokens, t0 = 0, None
    for step in range(steps + 2):
        rows = pairs.iloc[(step * batch) % (len(pairs) - batch):][:batch]
        a = enc.tokenize(rows["anchor_text"].tolist())
        b = enc.tokenize(rows["positive_text"].tolist())
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = info_nce(enc(a["input_ids"].to(device), a["attention_mask"].to(device)),
                            enc(b["input_ids"].to(device), b["attention_mask"].to(device)), 0.05)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step == 1:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        elif step > 1:
            tokens += int(a["attention_mask"].sum() + b["attention_mask"].sum())
    if device == "cuda":
        torch.cuda.synchronize()
    return {"stage": "contrastive", "device": device, "tokens_per_second": tokens / (time.perf_counter() - t0),
            "peak_mb": _peak_mb(device)}


def bench_encode(run: Path, jobs: Path, device: str) -> dict:
    enc = TextEncoder.load(run / "llm" / "encoder", device=device)
    texts = read_latest(jobs / "scene_vocab")["text"].tolist()[:3000]
    enc.encode(texts[:128])
    t0 = time.perf_counter()
    enc.encode(texts, 128)
    return {"stage": "encode", "device": device, "texts_per_second": len(texts) / (time.perf_counter() - t0),
            "peak_mb": _peak_mb(device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/small")
    ap.add_argument("--run", default="runs/small")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="runs/bench/llm_stages.json")
    args = ap.parse_args()
    run, jobs = Path(args.run), Path(args.data) / "jobs"
    cfg = load_config("small")
    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for d in devices:
        rows.append(bench_cpt(run, jobs, d, args.steps, cfg.llm.cpt.batch_size, cfg.llm.cpt.block_size))
        rows.append(bench_contrastive(run, jobs, d, args.steps, cfg.llm.contrastive.batch_size))
        rows.append(bench_encode(run, jobs, d))
    print(f"{'stage':<12} {'device':<6} {'tokens/s':>10} {'texts/s':>9} {'peak MB':>9}")
    for r in rows:
        print(f"{r['stage']:<12} {r['device']:<6} {r.get('tokens_per_second', float('nan')):>10,.0f} "
              f"{r.get('texts_per_second', float('nan')):>9,.0f} {r['peak_mb']:>9,.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__, "results": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
