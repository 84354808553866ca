"""LLM stage speed: training tokens/s of CPT and of contrastive fine-tuning, encode texts/s, peak memory;
on the CPU (and the GPU when one is present), side by side in one run.

Needs the outputs of the main job (bash scripts/demo.sh):

    .venv/bin/python -m benchmarks.llm_stages [--data data/small] [--run runs/small] [--steps 20]
    .venv/bin/python -m benchmarks.llm_stages --gpu-scale      # GPU only: a >= 300M Llama, ZeRO-2 and ZeRO-3

The first table times the model alone (a loop over batches).  The second, ``processes``, runs the stages
themselves -- ``python -m training.cpt`` / ``training.contrastive`` on the small world, through the same launch
commands as ``larr train`` (``launch.*``) -- at 1 and 2 CPU processes (gloo) and on every GPU when present
(``deepspeed --num_gpus N``, ZeRO-2, bf16), and reports the stage's own tokens/s (global: all processes).
``--gpu-scale`` builds a Llama of ~310M parameters from config (the small world's tokenizer) and runs both
stages under ZeRO-2 and ZeRO-3: tokens/s, MFU (6 x parameters x tokens/s over the GPUs' bf16 peak), peak GPU
memory, and the CPU-vs-GPU ratio of encoding the scene vocabulary with the trained encoder.

Prints tables and writes JSON (runs/bench/llm_stages.json). Peak memory is the process's peak RSS on the
CPU and ``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from larr.config import load_config
from larr.llm.backbone import add_field_tokens, load_backbone
from larr.llm.contrastive import info_nce
from larr.llm.encoder import TextEncoder
from larr.llm.lm_data import pack, tokenize_documents
from training.common import read_latest
from training.launch import config_args, launch


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


BF16_PEAK = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12, "L40S": 362e12}


def _stage_runs(run: Path, jobs: Path, profile: str, sets: list[str], prefix: str, deepspeed: str | None,
                env: dict[str, str] | None, base: Path | None = None,
                on_encoder: Callable[[Path], dict] | None = None) -> list[dict]:
    """CPT then contrastive (from that CPT model) as the CLI launches them; each stage's own metrics, and
    ``on_encoder(encoder folder)`` while the trained encoder still exists."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="larr-bench-") as tmp:
        out = Path(tmp)
        shutil.copytree(base or run / "llm" / "base", out / "base")
        common = [*config_args(profile, None, sets, None), "--jobs", str(jobs), "--out", str(out),
                  *(["--deepspeed", deepspeed] if deepspeed else [])]
        for stage, module, extra, metrics in (("cpt", "training.cpt", [], out / "cpt" / "metrics.json"),
                                               ("contrastive", "training.contrastive", ["--init", "cpt"],
                                                out / "encoder" / "metrics.json")):
            code = launch(prefix, module, [*common, *extra], env=env)
            if code:
                raise SystemExit(f"{module} under {prefix!r} exited {code}")
            m = json.loads(metrics.read_text())
            rows.append({"stage": stage, "tokens_per_second": m["tokens_per_second"], "processes": m["processes"],
                         "peak_gpu_mb": m.get("peak_gpu_mb"), "parameters": m.get("parameters"),
                         "deepspeed": m.get("deepspeed"), "launch": prefix})
        if on_encoder is not None:
            rows.append(on_encoder(out / "encoder"))
    return rows


def bench_processes(run: Path, jobs: Path, cpt_epochs: float, contrastive_epochs: float,
                    repeats: int = 1) -> list[dict]:
    """The stages at 1 and 2 CPU processes (gloo), and on all GPUs when present (deepspeed, ZeRO-2, bf16);
    with ``repeats`` the variants alternate so that a busy machine slows both alike."""
    sets = [f"llm.cpt.epochs={cpt_epochs}", "llm.cpt.save_steps=100000", f"llm.contrastive.epochs={contrastive_epochs}",
            "llm.contrastive.save_steps=0"]
    cpu = {"CUDA_VISIBLE_DEVICES": ""}
    variants = [("python", None, cpu, "cpu"), ("torchrun --nproc_per_node 2", None, cpu, "cpu")]
    if torch.cuda.is_available():
        variants.append((f"deepspeed --num_gpus {torch.cuda.device_count()}",
                         str(Path(__file__).resolve().parents[1] / "training" / "configs" / "zero2.json"), None, "cuda"))
    rows = []
    for prefix, ds, env, device in variants * repeats:
        rows += [{**r, "device": device} for r in _stage_runs(run, jobs, "small", sets, prefix, ds, env)]
    return rows


def bench_gpu_scale(run: Path, jobs: Path, steps_epochs: float) -> list[dict]:
    """A ~310M Llama built from config, both stages under ZeRO-2 and ZeRO-3 on every GPU: tokens/s, MFU, peak
    GPU memory; then the trained encoder on the scene vocabulary, CPU vs GPU."""
    from larr.llm.backbone import build_default_model, save_backbone

    big = ["llm.backbone.hidden_size=1024", "llm.backbone.num_layers=24", "llm.backbone.num_heads=16",
           "llm.backbone.intermediate_size=2816", "llm.backbone.max_length=320", "llm.cpt.batch_size=16",
           f"llm.cpt.epochs={steps_epochs}", "llm.cpt.lr=2e-4", "llm.cpt.save_steps=100000",
           "llm.contrastive.batch_size=64", f"llm.contrastive.epochs={steps_epochs}", "llm.contrastive.lr=5e-5",
           "llm.contrastive.save_steps=0"]
    cfg = load_config("small", overrides=big)
    n = torch.cuda.device_count()
    peak = next((v for k, v in BF16_PEAK.items() if k in torch.cuda.get_device_name(0)), None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="larr-bench-base-") as tmp:
        _, tok = load_backbone(run / "llm" / "base")
        save_backbone(build_default_model(cfg.llm.backbone, tok, 0), tok, Path(tmp) / "base")
        for zero in ("zero2", "zero3"):
            ds = str(Path(__file__).resolve().parents[1] / "training" / "configs" / f"{zero}.json")
            for r in _stage_runs(run, jobs, "small", big, f"deepspeed --num_gpus {n}", ds, None, Path(tmp) / "base",
                                 on_encoder=lambda e, z=zero: bench_encode_ratio(e, jobs, z)):
                if "tokens_per_second" in r:
                    r = {**r, "device": f"{n}x {torch.cuda.get_device_name(0)}", "zero": zero,
                         "mfu": 6 * r["parameters"] * r["tokens_per_second"] / (peak * n)
                         if peak and r["parameters"] else None}
                rows.append(r)
    return rows


def bench_encode_ratio(encoder: Path, jobs: Path, zero: str) -> dict:
    """Encoding the scene vocabulary with one encoder on the CPU and on the GPU (texts/s and their ratio)."""
    texts = read_latest(jobs / "scene_vocab")["text"].tolist()[:2000]
    rates = {}
    for device in ("cpu", "cuda"):
        enc = TextEncoder.load(encoder, device=device)
        enc.encode(texts[:64])
        t0 = time.perf_counter()
        enc.encode(texts, 128)
        if device == "cuda":
            torch.cuda.synchronize()
        rates[device] = len(texts) / (time.perf_counter() - t0)
    return {"stage": "encode scene vocabulary", "zero": zero, "texts_per_second_cpu": rates["cpu"],
            "texts_per_second_gpu": rates["cuda"], "gpu_over_cpu": rates["cuda"] / rates["cpu"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/small")
    ap.add_argument("--run", default="runs/small")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cpt-epochs", type=float, default=1.0, help="processes table: CPT epochs per run")
    ap.add_argument("--contrastive-epochs", type=float, default=0.25, help="processes table: contrastive epochs")
    ap.add_argument("--no-processes", action="store_true", help="skip the processes table")
    ap.add_argument("--only-processes", action="store_true", help="only the processes table")
    ap.add_argument("--process-repeats", type=int, default=1, help="processes table: alternating repeats")
    ap.add_argument("--gpu-scale", action="store_true", help="GPU only: the >= 300M model under ZeRO-2/3")
    ap.add_argument("--gpu-scale-epochs", type=float, default=1.0)
    ap.add_argument("--out", default="runs/bench/llm_stages.json")
    args = ap.parse_args()
    run, jobs = Path(args.run), Path(args.data) / "jobs"
    cfg = load_config("small")
    torch.manual_seed(0)
    result: dict = {"machine": platform.platform(), "torch": torch.__version__}
    if args.gpu_scale:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu-scale needs a CUDA GPU")
        rows = bench_gpu_scale(run, jobs, args.gpu_scale_epochs)
        result["gpu_scale"] = rows
        print(f"{'stage':<24} {'ZeRO':<6} {'device':<24} {'tokens/s':>10} {'MFU':>6} {'peak GPU MB':>12} {'GPU/CPU':>8}")
        for r in rows:
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") else ""
            ratio = f"{r['gpu_over_cpu']:.0f}x" if "gpu_over_cpu" in r else ""
            tps = f"{r['tokens_per_second']:,.0f}" if "tokens_per_second" in r else ""
            peak = f"{r['peak_gpu_mb']:,.0f}" if r.get("peak_gpu_mb") else ""
            print(f"{r['stage']:<24} {r['zero']:<6} {r.get('device', ''):<24} {tps:>10} {mfu:>6} {peak:>12} {ratio:>8}")
    else:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        rows = []
        for d in devices if not args.only_processes else []:
            rows.append(bench_cpt(run, jobs, d, args.steps, cfg.llm.cpt.batch_size, cfg.llm.cpt.block_size))
            rows.append(bench_contrastive(run, jobs, d, args.steps, cfg.llm.contrastive.batch_size))
            rows.append(bench_encode(run, jobs, d))
        result["results"] = rows
        print(f"{'stage':<12} {'device':<6} {'tokens/s':>10} {'texts/s':>9} {'peak MB':>9}")
        for r in rows:
            print(f"{r['stage']:<12} {r['device']:<6} {r.get('tokens_per_second', float('nan')):>10,.0f} "
                  f"{r.get('texts_per_second', float('nan')):>9,.0f} {r['peak_mb']:>9,.0f}")
        if not args.no_processes:
            procs = bench_processes(run, jobs, args.cpt_epochs, args.contrastive_epochs, args.process_repeats)
            result["processes"] = procs
            print(f"\n{'stage':<12} {'device':<6} {'processes':>9} {'launch':<32} {'tokens/s':>10}")
            for r in procs:
                print(f"{r['stage']:<12} {r['device']:<6} {r['processes']:>9} {r['launch']:<32} "
                      f"{r['tokens_per_second']:>10,.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
