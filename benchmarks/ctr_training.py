"""CTR model speed: training samples/s and peak memory of PLE and LARR at batch 2,400, and the scoring latency
of one request of 100 candidates for LARR vs the P5-style LLM-in-the-loop baseline -- side by side in one run,
on the CPU (and the GPU when one is present).

Needs the outputs of the main job (bash scripts/demo.sh):

    .venv/bin/python -m benchmarks.ctr_training [--data data/small] [--llm runs/small/llm] [--steps 30]

Every training measurement runs in its own child process so that its peak memory (peak RSS on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU) is its own.  PLE, noAL (PLE + scene lookup + scene encoder)
and LARR (+ alignment loss) are measured in turns, ``--rounds`` times, and the median taken; the share of a
LARR step spent per component follows from the differences (encoder = noAL - PLE, alignment = LARR - noAL,
per sample), and the input pipeline (``CtrStream``: parquet -> preprocessed batch, scene-row lookup
included) is timed on its own.  ``--before REV`` measures the same models at another git revision (a
worktree, same data, same child script of that revision) in the same turns: the before/after of issue 16.  Scoring latency is a model call on one request
(100 candidates of one test-day request, already looked up): LARR reads N scene vectors per candidate and runs
the 1-layer transformer and PLE; P5 tokenises 100 impression texts and runs the LLM over each.  Feature
lookups are the same for both and measured in ``benchmarks/feature_store.py``.

The ``processes`` table trains the real stage -- ``larr ctr train`` (``python -m training.ctr --candidate``),
streaming input and all -- for one epoch through its launch command at 1 and 2 CPU processes (torchrun,
gloo, DDP) and on every GPU when present (torchrun, nccl), and reports the stage's own global training
samples/s at the same global batch.  Prints tables and writes JSON (runs/bench/ctr_training.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from larr.config import load_config
from larr.ctr.artifact import build_model
from larr.ctr.data import CtrStream
from larr.ctr.p5 import P5Classifier, SceneTexts
from training.ctr import CtrData
from training.launch import config_args, launch

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def bench_training(kind: str, data: Path, device: str, steps: int, batch_size: int) -> dict:
    """Training steps/s of one model on real batches (preprocessed ahead, so this is the model's cost)."""
    cfg = load_config("small").ctr
    d = CtrData.load(data)
    scene = d.scene(data / "features") if kind in ("larr", "noal") else None
    torch.manual_seed(0)
    model = build_model(kind, cfg, d.prep, scene).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    stream = iter(CtrStream(d.train_files, d.prep, scene, batch_size, shuffle=True, seed=0))
    batches = [_to(next(stream), device) for _ in range(min(steps, 20))]
    seen, t0 = 0, 0.0
    for step in range(steps + 3):
        b = batches[step % len(batches)]
        loss = model.loss(b, model(b))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 2:  # three warm-up steps
            _sync(device)
            t0 = time.perf_counter()
        elif step > 2:
            seen += len(b["click"])
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"what": f"train {kind}", "device": device, "batch": batch_size, "samples_per_s": seen / seconds,
            "peak_mb": _peak_mb(device), "last_loss": float(loss)}


def bench_input(kind: str, data: Path, batch_size: int) -> dict:
    """The input pipeline alone over one whole epoch: shuffled parquet rows -> preprocessed batches (+ scene rows
    for the scene kinds), shuffle-buffer fills included (a buffer's batches are cut from rows prepared at fill)."""
    cfg = load_config("small").ctr
    d = CtrData.load(data)
    scene = d.scene(data / "features") if kind in ("larr", "noal") else None
    t0, seen = time.perf_counter(), 0
    for batch in CtrStream(d.train_files, d.prep, scene, batch_size, shuffle=True, seed=0,
                           shuffle_buffer=cfg.shuffle_buffer):
        seen += len(batch["click"])
    return {"what": f"input {kind}", "samples_per_s": seen / (time.perf_counter() - t0)}


def _child(args: list[str], root: Path) -> dict:
    """Run this script's child mode from ``root`` (this checkout or a worktree of another revision)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([sys.executable, "-m", "benchmarks.ctr_training", *args], cwd=root, env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"benchmark child {args} in {root} exited {res.returncode}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare_training(data: Path, device: str, steps: int, batch: int, rounds: int, before: str | None) -> dict:
    """PLE, noAL and LARR (at this revision and, with ``before``, at that one), in turns; medians."""
    # imported here: this script's child mode also runs in worktrees of revisions without the module
    from benchmarks.provenance import revision

    roots = {"after": ROOT}
    tmp = None
    if before:
        tmp = tempfile.mkdtemp(prefix="larr-bench-before-")
        subprocess.run(["git", "worktree", "add", "--detach", tmp, before], cwd=ROOT, check=True,
                       capture_output=True)
        # the measurement is this script's (the same loop, noAL included), the models those of ``before``
        shutil.copy(Path(__file__), Path(tmp) / "benchmarks" / "ctr_training.py")
        roots = {"before": Path(tmp), "after": ROOT}
    runs: dict[tuple[str, str], list[dict]] = {}
    try:
        for _ in range(rounds):
            for label, root in roots.items():
                for kind in ("ple", "noal", "larr"):
                    args = ["--data", str(data.resolve()), "--steps", str(steps), "--batch", str(batch), "--child",
                            kind, device]
                    runs.setdefault((label, kind), []).append(_child(args, root))
    finally:
        if tmp:
            subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, check=False)
    table = {}
    for label in roots:
        med = {k: float(np.median([r["samples_per_s"] for r in runs[(label, k)]])) for k in ("ple", "noal", "larr")}
        per = {k: 1e6 / v for k, v in med.items()}  # microseconds per sample
        table[label] = {
            "revision": before if label == "before" else revision("+changes"),
            "samples_per_s": med, "runs": {k: [r["samples_per_s"] for r in runs[(label, k)]] for k in med},
            "peak_mb": {k: max(r["peak_mb"] for r in runs[(label, k)]) for k in med},
            "larr_cost_vs_ple": per["larr"] / per["ple"], "noal_cost_vs_ple": per["noal"] / per["ple"],
            "us_per_sample": {"ple (shared body)": per["ple"], "scene lookup + encoder": per["noal"] - per["ple"],
                              "alignment loss": per["larr"] - per["noal"]},
        }
    return table


def _latency(fn, repeats: int, device: str) -> dict:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def bench_scoring(data: Path, llm: Path, device: str, candidates: int, repeats: int) -> list[dict]:
    """One request of ``candidates`` candidates: LARR model call vs P5-style model call (tokenise + LLM)."""
    cfg = load_config("small")
    d = CtrData.load(data)
    scene = d.scene(data / "features")
    larr = build_model("larr", cfg.ctr, d.prep, scene).to(device).eval()
    first_test = d.test_files[0]
    rows = pd.read_parquet(first_test).head(candidates)  # one user's rows: the candidates of a request
    batch = _to(next(iter(CtrStream([first_test], d.prep, scene, candidates))), device)
    texts = SceneTexts(data / "jobs" / "scene_vocab").impressions(np.stack(rows["scene_keys"].to_numpy()))
    p5 = P5Classifier(llm / "base", cfg.ctr.p5.max_length).to(device).eval()

    def score_larr() -> None:
        with torch.inference_mode():
            larr(batch)

    def score_p5() -> None:
        with torch.inference_mode():
            enc = p5.tokenize(texts)
            p5(enc["input_ids"].to(device), enc["attention_mask"].to(device))

    tokens = int(p5.tokenize(texts)["attention_mask"].sum())
    out = [{"what": f"score {candidates} candidates: LARR", "device": device, **_latency(score_larr, repeats, device)},
           {"what": f"score {candidates} candidates: P5-style", "device": device, "tokens": tokens,
            **_latency(score_p5, max(10, repeats // 5), device)}]
    out[1]["ratio_p50_vs_larr"] = out[1]["p50_ms"] / out[0]["p50_ms"]
    return out


def bench_processes(data: Path, kind: str, epochs: int, batch_size: int, repeats: int = 1) -> list[dict]:
    """One epoch of ``larr ctr train`` at 1 and 2 CPU processes and on all GPUs: global training samples/s.
    With ``repeats`` the variants alternate (1, 2, 1, 2, ...) so that a busy machine slows both alike."""
    cpu = {"CUDA_VISIBLE_DEVICES": ""}
    # one process with torch's default threads, one with a single thread (what torchrun gives each process)
    variants = [("python", "cpu", cpu), ("python", "cpu", {**cpu, "OMP_NUM_THREADS": "1"}),
                ("torchrun --nproc_per_node 2", "cpu", cpu)]
    if torch.cuda.is_available():
        variants.append((f"torchrun --nproc_per_node {torch.cuda.device_count()}", "cuda", {}))
    rows = []
    for prefix, device, env in variants * repeats:
        with tempfile.TemporaryDirectory(prefix="larr-bench-ctr-") as tmp:
            args = [*config_args("small", None, [f"ctr.epochs={epochs}", f"ctr.batch_size={batch_size}"], None),
                    "--kind", kind, "--data", str(data), "--candidate", tmp, "--quiet"]
            code = launch(prefix, "training.ctr", args, env=env)
            if code:
                raise SystemExit(f"training.ctr under {prefix!r} exited {code}")
            m = json.loads((Path(tmp) / "metrics.json").read_text())
        rows.append({"what": f"train {kind} (stage, {epochs} epoch)", "device": device, "batch": batch_size,
                     "processes": m["processes"], "threads": env.get("OMP_NUM_THREADS", "1" if m["processes"] > 1
                                                                     else "default"),
                     "launch": prefix, "samples_per_s": m["train_samples_per_second"],
                     "valid_ctr_auc": m["valid_ctr_auc"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/small")
    ap.add_argument("--llm", default="runs/small/llm")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    ap.add_argument("--batch", type=int, default=2400)
    ap.add_argument("--rounds", type=int, default=3, help="turns of PLE/noAL/LARR (medians are reported)")
    ap.add_argument("--before", metavar="REV", help="also measure the models at this git revision (worktree)")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--process-epochs", type=int, default=1, help="processes table: epochs of the stage")
    ap.add_argument("--no-processes", action="store_true", help="skip the processes table")
    ap.add_argument("--no-scoring", action="store_true", help="skip the scoring-latency table")
    ap.add_argument("--only-processes", action="store_true", help="only the processes table")
    ap.add_argument("--process-repeats", type=int, default=1, help="processes table: alternating repeats")
    ap.add_argument("--out", default="runs/bench/ctr_training.json")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "DEVICE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(bench_training(a.child[0], Path(a.data), a.child[1], a.steps, a.batch)))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    training: dict[str, dict] = {}
    rows: list[dict] = []
    inputs: list[dict] = []
    for device in devices if not a.only_processes else []:
        training[device] = compare_training(Path(a.data), device, a.steps, a.batch, a.rounds, a.before)
        print(f"\ntraining, {device}, batch {a.batch}, median of {a.rounds} turns (samples/s; cost per sample vs PLE)")
        print(f"{'revision':<18} {'PLE':>9} {'noAL':>9} {'LARR':>9} {'noAL/PLE':>9} {'LARR/PLE':>9}  "
              "us/sample: body | scene lookup+encoder | alignment")
        for t in training[device].values():
            sps, us = t["samples_per_s"], list(t["us_per_sample"].values())
            print(f"{t['revision']:<18} {sps['ple']:>9,.0f} {sps['noal']:>9,.0f} {sps['larr']:>9,.0f} "
                  f"{t['noal_cost_vs_ple']:>8.2f}x {t['larr_cost_vs_ple']:>8.2f}x  "
                  f"{us[0]:.1f} | {us[1]:.1f} | {us[2]:.1f}")
        if not a.no_scoring:
            rows += bench_scoring(Path(a.data), Path(a.llm), device, a.candidates, a.repeats)
    if not a.only_processes:
        inputs = [bench_input(k, Path(a.data), a.batch) for k in ("ple", "larr")]
        print("\ninput pipeline (parquet -> batch, one process, one epoch): " +
              ", ".join(f"{r['what']} {r['samples_per_s']:,.0f} samples/s" for r in inputs))
    if rows:
        print(f"\n{'what':<34} {'device':<6} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
        for r in rows:
            ratio = f"{r['ratio_p50_vs_larr']:.0f}x" if "ratio_p50_vs_larr" in r else ""
            print(f"{r['what']:<34} {r['device']:<6} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {ratio:>6}")
    procs = [] if a.no_processes else bench_processes(Path(a.data), "larr", a.process_epochs, a.batch,
                                                      a.process_repeats)
    if procs:
        print(f"\n{'what':<34} {'device':<6} {'processes':>9} {'threads':>8} {'samples/s':>10} {'valid AUC':>10}")
        for r in procs:
            print(f"{r['what']:<34} {r['device']:<6} {r['processes']:>9} {r['threads']:>8} "
                  f"{r['samples_per_s']:>10,.0f} {r['valid_ctr_auc']:>10.4f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__,
                               "threads": torch.get_num_threads(), "args": vars(a), "training": training,
                               "input_pipeline": inputs, "scoring": rows, "processes": procs}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
