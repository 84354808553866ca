"""Stage 3: train one CTR model on ``ctr_samples`` and evaluate it on the test day.

Models: ``ple`` (no LLM), ``larr`` (scene encoder + alignment; with another scene-vector table it is the noCPT
or noFT ablation), ``noal`` (scene vector concatenated, no alignment loss), ``wdl``, ``deepfm`` and ``p5`` (the
LLM in the loop, :mod:`larr.ctr.p5`).  Evaluation: CTR/CTCVR AUC, GAUC (per-user, impression-weighted;
one-class users skipped and counted) and logloss on the whole test day and on the slices new POIs (created
on the test day), travelling users (out of area) and the rest, with the simulator's oracle AUC beside each.

    .venv/bin/python -m training.ctr --kind larr --data data/small --seed 7 --out runs/small/ctr
    larr experiment paper --profile small --seeds 3 --out runs/small/paper     # everything, see experiment.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from larr.config import CtrConfig, LarrConfig, config_to_dict
from larr.ctr.artifact import build_model, predict
from larr.ctr.columns import CtrColumns, ctr_columns
from larr.ctr.data import CtrStream, Preprocessor, SceneTable, id_dropout, split_files
from larr.ctr.gauc import gauc
from larr.ctr.kinds import KIND_HELP, KINDS, uses_scene
from larr.ctr.models import ctr_ctcvr_loss
from larr.ctr.p5 import P5Classifier, SceneTexts
from larr.entry import UserError, add_config_args, config_from_args, entry_point, require_dir
from larr.llm.contrastive import global_mean_weight
from larr.metrics import auc
from larr.spec import Spec, load_spec, window_of
from training.common import seed_everything
from training.distributed import all_sum, barrier, broadcast_object, current, init_distributed, local_batch

log = logging.getLogger("larr.ctr")
SLICES = ("all", "new_pois", "travellers", "rest")  # the food world's slices (the spec names them: slice_names)
EVAL_CACHE_ROWS = 2_000_000  # validation/test days up to this size are preprocessed once per experiment
METRICS = ("ctr_auc", "ctcvr_auc", "ctr_gauc", "ctcvr_gauc", "ctr_logloss", "ctcvr_logloss")


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def slice_masks(spec: Spec, cols: CtrColumns, test: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks of the spec's evaluation slices over the test rows: all, new items (created on the
    test day, where items carry a creation date), each declared bool slice column, and the rest."""
    out = {"all": np.ones(len(test), bool)}
    named = []
    if spec.new_item_slice():
        out[spec.new_item_slice()] = (test[cols.item_age] == 0).to_numpy()
        named.append(spec.new_item_slice())
    for name, col in spec.slices.items():
        out[name] = test[col].to_numpy(bool)
        named.append(name)
    if named:
        out["rest"] = ~np.logical_or.reduce([out[n] for n in named])
    return out


def evaluate(test: pd.DataFrame, p_ctr: np.ndarray, p_ctcvr: np.ndarray, slices: dict[str, np.ndarray] | None = None,
             conversion: bool = True) -> dict[str, dict[str, float]]:
    """Metrics per slice (NaN where a metric does not exist: CTCVR without a conversion label, the oracle
    on real logs, AUC on an empty or one-class slice).  ``test`` holds click, order, user_id, and the
    oracle's p_click / p_ctcvr when the data came from a simulator."""
    nan = float("nan")
    if slices is None:  # the food world's slices
        slices = {"all": np.ones(len(test), bool), "new_pois": (test["poi_age_days"] == 0).to_numpy(),
                  "travellers": test["out_of_area"].to_numpy(bool)}
        slices["rest"] = ~(slices["new_pois"] | slices["travellers"])
    out = {}
    for name, m in slices.items():
        t = test[m]
        y_c, y_o = t["click"].to_numpy(), t["order"].to_numpy()
        g_ctr, skipped = gauc(t["user_id"].to_numpy(), y_c, p_ctr[m])
        g_ctcvr, _ = gauc(t["user_id"].to_numpy(), y_o, p_ctcvr[m]) if conversion else (nan, 0)
        out[name] = {"rows": int(m.sum()), "ctr_auc": auc(y_c, p_ctr[m]),
                     "ctcvr_auc": auc(y_o, p_ctcvr[m]) if conversion else nan,
                     "ctr_gauc": g_ctr, "ctcvr_gauc": g_ctcvr, "gauc_users_skipped": skipped,
                     "ctr_logloss": _logloss(y_c, p_ctr[m]) if m.any() else nan,
                     "ctcvr_logloss": _logloss(y_o, p_ctcvr[m]) if conversion and m.any() else nan,
                     "oracle_ctr_auc": auc(y_c, t["p_click"].to_numpy()) if "p_click" in t else nan,
                     "oracle_ctcvr_auc": auc(y_o, t["p_ctcvr"].to_numpy()) if conversion and "p_ctcvr" in t else nan}
    return out


@dataclass
class CtrData:
    """What every CTR run reads, loaded once and shared by all models of an experiment: the split files, the
    preprocessor fitted on the training days, the test day joined with the oracle, scene tables by folder."""

    data: Path
    samples: Path
    spec: Spec
    cols: CtrColumns
    window: dict[str, Any]
    train_files: list[Path]
    valid_files: list[Path]
    test_files: list[Path]
    prep: Preprocessor
    test: pd.DataFrame
    valid: pd.DataFrame
    _features_root: Path | None = None
    _scenes: dict[str, SceneTable] = field(default_factory=dict)
    _eval: dict[tuple[str, int, int], tuple[SceneTable | None, list]] = field(default_factory=dict)

    @property
    def features_root(self) -> Path:
        """Folder holding the scene-vector tables (``features``, ``features_nocpt``, ...)."""
        return self._features_root or self.data

    @classmethod
    def load(cls, data: Path, samples: Path | None = None, spec: Spec | None = None,
             oracle: Path | None = None, features_root: Path | None = None) -> CtrData:
        """``data``: the raw folder (with ``jobs/`` and ``features/`` by default); ``samples``: the ctr_samples
        folder (default DATA/jobs/ctr_samples).  The split is the spec's, over the samples' date partitions.
        The simulator's oracle (``DATA/_oracle/test_truth.parquet``, or ``oracle``) is joined when present;
        on real logs there is none and the reports omit it."""
        spec = spec or load_spec()
        cols = ctr_columns(spec)
        samples = samples or data / "jobs" / "ctr_samples"
        days = sorted(p.name.split("=", 1)[1] for p in samples.glob("date=*"))
        if not days:
            raise FileNotFoundError(f"{samples} has no date= partitions: run `larr spark ctr_samples` first")
        window = window_of(spec, days)
        train, valid, test = (split_files(samples, (s,), window) for s in ("train", "valid", "test"))
        require_sample_columns(spec, cols, {"train": train, "valid": valid, "test": test})
        prep = Preprocessor.fit(train, cols)
        keys = [spec.log.request, spec.item_key, spec.user_key]
        extra = ([cols.item_age] if cols.item_age else []) + list(spec.slices.values())
        want = list(dict.fromkeys([*keys, *cols.labels, *extra, "scene_keys"]))
        test_df = pd.concat(pd.read_parquet(f, columns=want) for f in test).reset_index(drop=True)
        test_df = _standard_labels(spec, test_df)
        oracle_path = oracle or data / "_oracle" / "test_truth.parquet"
        if oracle_path.exists():
            truth = pd.read_parquet(oracle_path)
            on = [c for c in (spec.log.request, spec.item_key) if c in truth.columns]
            test_df = test_df.merge(truth, on=on, how="left", validate="one_to_one")
            if test_df["p_click"].isna().any():
                raise ValueError(f"{int(test_df['p_click'].isna().sum())} test rows have no oracle row in "
                                 f"{oracle_path}: ctr_samples and the world disagree; re-run `larr spark ctr_samples`")
        valid_df = _standard_labels(spec, pd.concat(pd.read_parquet(f, columns=list(cols.labels))
                                                    for f in valid).reset_index(drop=True))
        return cls(data, samples, spec, cols, window, train, valid, test, prep, test_df, valid_df,
                   _features_root=features_root)

    def eval_batches(self, split: str, scene: SceneTable | None, batch_size: int) -> Iterable[dict[str, torch.Tensor]]:
        """Preprocessed batches of the validation or test day.  Every epoch of every run of an experiment
        evaluates on the same rows, so they are prepared once per scene table and kept -- unless the day has
        more than ``EVAL_CACHE_ROWS`` rows, when they are streamed from parquet each time (bounded memory)."""
        files, rows = (self.valid_files, len(self.valid)) if split == "valid" else (self.test_files, len(self.test))
        stream = self.stream(files, scene, batch_size)
        if rows > EVAL_CACHE_ROWS:
            return stream
        key = (split, id(scene), batch_size)
        cached = self._eval.get(key)
        if cached is None or cached[0] is not scene:  # identity check: an id can be reused after GC
            cached = self._eval[key] = (scene, list(stream))
        return cached[1]

    def stream(self, files: list[Path], scene: SceneTable | None, batch_size: int, **kw: Any) -> CtrStream:
        return CtrStream(files, self.prep, scene, batch_size, labels=self.cols.labels, user_key=self.spec.user_key,
                         **kw)

    def evaluate(self, p_ctr: np.ndarray, p_ctcvr: np.ndarray) -> dict[str, dict[str, float]]:
        return evaluate(self.test, p_ctr, p_ctcvr, slice_masks(self.spec, self.cols, self.test),
                        self.spec.has_conversion)

    def scene(self, features: Path, min_coverage: float = 0.0) -> SceneTable:
        """The scene table of ``features``; its coverage of the training keys is logged once and must reach
        ``min_coverage`` (``ctr.min_scene_coverage``)."""
        key = str(features)
        if key not in self._scenes:
            path = features / "scene_value_embeddings.parquet"
            if not path.exists():
                raise FileNotFoundError(f"{path} missing: run `larr embed --features {features}` first")
            self._scenes[key] = SceneTable(path)
        self._scenes[key].require_coverage(self.train_files, min_coverage, self.spec.scene)
        return self._scenes[key]


def require_sample_columns(spec: Spec, cols: CtrColumns, files: dict[str, list[Path]]) -> None:
    """Every ctr_samples file holds the columns training and evaluation read, checked from the parquet footers
    before any row is read.  Why: pyarrow's batch reader silently skips a column it does not find, so a file
    written by another spec (or by hand) used to end in a KeyError or IndexError deep inside an epoch."""
    every = [*cols.categorical, *cols.numeric, *cols.labels, spec.user_key, "scene_keys"]
    test_only = [spec.log.request, spec.item_key, *([cols.item_age] if cols.item_age else []), *spec.slices.values()]
    for split, paths in files.items():
        want = list(dict.fromkeys(every + (test_only if split == "test" else [])))
        bad = {f: missing for f in paths if (missing := [c for c in want if c not in pq.read_schema(f).names])}
        if bad:
            first, missing = next(iter(bad.items()))
            more = f" and {len(bad) - 1} more file(s)" if len(bad) > 1 else ""
            raise UserError(f"CTR samples lack column(s) {', '.join(missing)} that the spec {spec.name!r} needs",
                            f"{first}{more}; {len(bad)} of {len(paths)} {split} file(s)",
                            "re-run `larr spark ctr_samples` with the same spec (--set spec=...)")


def _standard_labels(spec: Spec, df: pd.DataFrame) -> pd.DataFrame:
    """The spec's label and user columns under the names evaluation reads: click, order (zeros without a
    conversion label), user_id."""
    df = df.copy()
    df["click"] = df[spec.labels.click]
    df["order"] = df[spec.labels.conversion] if spec.labels.conversion else 0
    if spec.user_key in df:
        df["user_id"] = df[spec.user_key]
    return df


def run_ctr(cfg: CtrConfig, kind: str, d: CtrData, seed: int, features: Path | None = None,
            progress: bool = True, save: Path | None = None, checkpoint: Path | None = None) -> dict[str, Any]:
    """Train one id/feature model (``ple``, ``larr``, ``noal``, ``wdl``, ``deepfm``) and evaluate it.

    Returns metrics per slice, the training history (loss per step, alignment loss per step, validation-day
    AUC per epoch), wall time and training samples/s.  With ``save`` the model artefact is written there:
    ``model.pt`` (state dict), ``preprocessor.json`` (vocabularies, numeric statistics) and ``model.json``
    (kind, config, scene table) -- what a scorer needs to rebuild the model without the training data.

    One process or one of W (``torchrun``): under W the model is wrapped in DDP and each process streams its
    slice of every global batch of ``ctr.batch_size`` rows (:class:`~larr.ctr.data.CtrStream`); the loss is
    weighted by the process's share of the batch and the alignment loss gathers its negatives from every
    process, so the steps are those of one process on the whole batch (id dropout included; sampled
    alignment negatives, ``align_negatives > 0``, are drawn within each process's slice).  Rank 0 alone
    evaluates and saves; every rank returns rank 0's result.  With ``checkpoint`` a folder receives the
    model, optimizer and random state after each epoch, and a run with the same settings resumes from the
    newest on any number of processes."""
    dd = init_distributed()
    seed_everything(seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    local_batch(cfg.batch_size, dd.world, "ctr.batch_size")
    scene = (d.scene(features or d.features_root / "features", cfg.min_scene_coverage) if uses_scene(kind)
             else None)
    model = build_model(kind, cfg, d.prep, scene, d.cols, d.spec.has_conversion).to(dd.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stream = d.stream(d.train_files, scene, cfg.batch_size, shuffle=True, seed=seed, shuffle_buffer=cfg.shuffle_buffer,
                      rank=dd.rank, world=dd.world)
    history: dict[str, list] = {"loss": [], "align": [], "valid": []}
    id_cols = [d.cols.user_col, d.cols.item_col]
    seen, train_seconds, first_epoch = 0, 0.0, 0
    fingerprint = _ctr_fingerprint(cfg, kind, d, seed, features if scene is not None else None)
    found = broadcast_object(_newest_epoch(checkpoint, fingerprint) if dd.main and checkpoint else None)
    if found:
        state = torch.load(found, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        first_epoch, history, seen, train_seconds = state["epoch"], state["history"], state["seen"], state["seconds"]
        stream.epoch = first_epoch  # the stream's shuffle is seeded by seed + epoch
        log.info("%s seed %d: resuming after epoch %d from %s (%d process(es))", kind, seed, first_epoch, found,
                 dd.world)
    net: torch.nn.Module = model
    if dd.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dd.local_rank] if dd.device.type == "cuda" else None)
    for epoch in range(first_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        for batch in tqdm(stream, desc=f"{kind} seed {seed} epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                          disable=None if progress and dd.main else True, leave=False):
            global_rows = int(batch.pop("global_rows", len(batch["click"])))
            offset = int(batch.pop("offset", 0))
            batch = {k: v.to(dd.device) for k, v in batch.items()}
            batch["cat"] = id_dropout(batch["cat"].cpu(), id_cols, cfg.id_dropout,
                                      global_rows if dd.distributed else None, offset).to(dd.device)
            out = net(batch)
            loss = model.loss(batch, out)
            share = global_mean_weight(len(batch["click"]), global_rows)
            opt.zero_grad(set_to_none=True)
            if dd.distributed:
                (loss * share).backward()  # DDP averages over processes: weight by this process's share
            else:
                loss.backward()
            opt.step()
            seen += global_rows
            values = [float(loss.detach())] + ([float(out["align"].detach())] if "align" in out else [])
            if dd.distributed:  # the global batch's mean: local means weighted by local rows, summed
                values = [v / global_rows for v in all_sum([v * len(batch["click"]) for v in values], dd.device)]
            history["loss"].append(round(values[0], 5))
            if "align" in out:
                history["align"].append(round(values[1], 5))
        train_seconds += time.perf_counter() - t0
        if dd.main:
            pv_ctr, pv_ctcvr = predict(model, d.eval_batches("valid", scene, cfg.eval_batch_size))
            history["valid"].append({"epoch": epoch + 1, "ctr_auc": auc(d.valid["click"].to_numpy(), pv_ctr),
                                     "ctcvr_auc": auc(d.valid["order"].to_numpy(), pv_ctcvr)
                                     if d.spec.has_conversion else float("nan")})
            log.info("%s seed %d epoch %d: valid CTR AUC %.4f", kind, seed, epoch + 1,
                     history["valid"][-1]["ctr_auc"])
            if checkpoint is not None:
                _save_epoch(checkpoint, epoch + 1, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                    "rng": torch.get_rng_state(), "epoch": epoch + 1,
                                                    "history": history, "seen": seen, "seconds": train_seconds,
                                                    "fingerprint": fingerprint})
        barrier()
    result: dict[str, Any] = {}
    if dd.main:
        t0 = time.perf_counter()
        p_ctr, p_ctcvr = predict(model, d.eval_batches("test", scene, cfg.eval_batch_size))
        test_seconds = time.perf_counter() - t0
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, save / "model.pt")
            d.prep.save(save / "preprocessor.json")
            (save / "model.json").write_text(json.dumps({"kind": kind, "seed": seed, "ctr": cfg.model_dump(),
                                                         "spec": d.spec.source,
                                                         "categorical": d.prep.categorical_columns,
                                                         "numeric": d.prep.numeric_columns,
                                                         "scene_table": str(features) if scene else None}, indent=2))
        result = {"kind": kind, "seed": seed, "features": str(features) if scene is not None else None,
                  "metrics": d.evaluate(p_ctr, p_ctcvr), "history": history,
                  "train_seconds": train_seconds, "train_samples_per_second": seen / max(train_seconds, 1e-9),
                  "test_rows_per_second": len(d.test) / max(test_seconds, 1e-9),
                  "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                  "processes": dd.world,
                  "device": torch.cuda.get_device_name(dd.device) if dd.device.type == "cuda" else "cpu"}
    return broadcast_object(result)


def _ctr_fingerprint(cfg: CtrConfig, kind: str, d: CtrData, seed: int, features: Path | None) -> str:
    """What an epoch checkpoint must match to be resumed (not ``epochs``: a finished run may be extended,
    and not the number of processes)."""
    h = hashlib.sha256(json.dumps({"cfg": cfg.model_dump(exclude={"epochs", "threads", "eval_batch_size"}),
                                   "kind": kind, "seed": seed, "features": str(features),
                                   "train": [f"{f}:{f.stat().st_size}" for f in d.train_files]},
                                  sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _newest_epoch(folder: Path, fingerprint: str) -> str | None:
    for f in sorted(folder.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]), reverse=True):
        if torch.load(f, map_location="cpu", weights_only=False).get("fingerprint") == fingerprint:
            return str(f)
        log.warning("ignoring CTR checkpoint %s: it belongs to another run (config, data or seed changed)", f)
    return None


def _save_epoch(folder: Path, epoch: int, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"epoch-{epoch}.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / f"epoch-{epoch}.pt")
    for old in folder.glob("epoch-*.pt"):
        if int(old.stem.split("-")[1]) < epoch - 1:  # the newest two, as the LLM stages keep
            old.unlink()


def train_candidate(cfg: LarrConfig, kind: str, data: Path, out: Path, jobs: Path | None = None,
                    features: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """``larr ctr train``: one model on the spec's split, saved as a registry candidate -- ``OUT/model.pt``,
    ``preprocessor.json``, ``model.json``, ``metrics.json`` (validation-day and test-day AUC) and
    ``config.json``.  The same in-process and under ``launch.ctr`` (torchrun), where rank 0 writes.  Epoch
    checkpoints live in ``OUT/checkpoints`` while it trains (a re-run resumes) and are removed once the
    candidate is complete, so the folder holds only what a scorer needs."""
    d = CtrData.load(data, samples=jobs / "ctr_samples" if jobs else None, spec=load_spec(cfg.spec))
    features = features or data / "features"
    r = run_ctr(cfg.ctr, kind, d, cfg.seed, features, progress=progress, save=out, checkpoint=out / "checkpoints")
    valid = r["history"]["valid"][-1]
    metrics = {"kind": kind, "seed": cfg.seed, "valid_days": d.window["valid_days"],
               "test_days": d.window["test_days"], "valid_ctr_auc": valid["ctr_auc"],
               "valid_ctcvr_auc": valid["ctcvr_auc"], "test": r["metrics"], "history": r["history"],
               "train_samples_per_second": r["train_samples_per_second"], "parameters": r["parameters"],
               "processes": r["processes"], "global_batch": cfg.ctr.batch_size}
    if current().main:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (out / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    barrier()
    return metrics


def _sample_train(d: CtrData, n: int, seed: int) -> pd.DataFrame:
    """``n`` training impressions drawn uniformly without replacement, read file by file (never all at once)."""
    sizes = np.array([pq.ParquetFile(f).metadata.num_rows for f in d.train_files])
    total = int(sizes.sum())
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(n, total), replace=False))
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    parts = []
    for f, s, size in zip(d.train_files, starts, sizes, strict=True):
        local = pick[(pick >= s) & (pick < s + size)] - s
        if len(local):
            parts.append(pd.read_parquet(f, columns=["scene_keys", *d.cols.labels]).iloc[local])
    return _standard_labels(d.spec, pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True))


def run_p5(cfg: LarrConfig, d: CtrData, seed: int, llm: Path, jobs: Path | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Fine-tune the LLM (``ctr.p5.init``: base or CPT backbone from ``llm``) as an impression-text classifier
    on a uniform sample of training impressions, then score the whole test day with it."""
    from transformers import get_cosine_schedule_with_warmup

    from training.contrastive import init_path

    p = cfg.ctr.p5
    seed_everything(seed)
    if cfg.ctr.threads:
        torch.set_num_threads(cfg.ctr.threads)
    backbone = init_path(cfg, llm, p.init)  # the CPT model, or the base (llm.backbone.path when set)
    if not (backbone / "config.json").exists():
        raise FileNotFoundError(f"{backbone} holds no backbone: run `larr train base` / `larr train cpt` first")
    texts = SceneTexts((jobs or d.samples.parent) / "scene_vocab")
    model = P5Classifier(backbone, p.max_length)
    train = _sample_train(d, p.train_samples, seed)
    train_texts = texts.impressions(np.stack(train["scene_keys"].to_numpy()))
    steps = max(1, int(math.ceil(len(train) / p.batch_size) * p.epochs))
    rng = np.random.default_rng(seed)
    schedule = np.concatenate([rng.permutation(len(train)) for _ in range(math.ceil(p.epochs) + 1)])
    clicks, orders = train["click"].to_numpy(np.float32), train["order"].to_numpy(np.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=0.01)
    sched = get_cosine_schedule_with_warmup(opt, max(1, steps // 20), steps)
    history: dict[str, list] = {"loss": [], "align": [], "valid": []}
    model.train()
    t0 = time.perf_counter()
    tokens = 0
    for step in tqdm(range(steps), desc=f"p5 seed {seed}", unit="batch", disable=None if progress else True,
                     leave=False):
        rows = schedule[step * p.batch_size:(step + 1) * p.batch_size]
        enc = model.tokenize([train_texts[i] for i in rows])
        batch = {"click": torch.from_numpy(clicks[rows]), "order": torch.from_numpy(orders[rows])}
        loss = ctr_ctcvr_loss(model(enc["input_ids"], enc["attention_mask"]), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += int(enc["attention_mask"].sum())
        history["loss"].append(round(float(loss.detach()), 5))
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    test_texts = texts.impressions(np.stack(d.test["scene_keys"].to_numpy()))
    p_ctr, p_ctcvr = model.score(test_texts, p.eval_batch_size)
    score_seconds = time.perf_counter() - t0
    return {"kind": "p5", "seed": seed, "features": None, "backbone": str(backbone),
            "metrics": d.evaluate(p_ctr, p_ctcvr), "history": history, "train_seconds": train_seconds,
            "train_samples_per_second": steps * p.batch_size / max(train_seconds, 1e-9),
            "train_tokens_per_second": tokens / max(train_seconds, 1e-9), "train_samples": len(train),
            "test_rows_per_second": len(d.test) / max(score_seconds, 1e-9),
            "parameters": sum(q.numel() for q in model.parameters() if q.requires_grad)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.ctr",
                                 description="Train one CTR model kind and evaluate it on the test day "
                                             "(the whole comparison: `larr experiment paper`). Runs as one "
                                             "process or under torchrun (`torchrun --nproc_per_node N -m "
                                             "training.ctr ...`), the global batch being ctr.batch_size.")
    ap.add_argument("--kind", default="larr", choices=[*KINDS, "p5"], metavar="KIND",
                    help=f"{KIND_HELP}; or p5 (default larr)")
    add_config_args(ap, "config override, e.g. --set ctr.epochs=1 (repeatable)")
    ap.add_argument("--data", default="data/small", help="world folder (jobs/ and features/ inside)")
    ap.add_argument("--jobs", help="Spark job outputs (default DATA/jobs)")
    ap.add_argument("--features", help="folder with scene_value_embeddings.parquet (default DATA/features)")
    ap.add_argument("--llm", default="runs/small/llm", help="LLM run folder (P5 fine-tunes its backbone)")
    ap.add_argument("--out", default="runs/small/ctr")
    ap.add_argument("--save", help="write the model artefact (weights, preprocessor, config) to this folder")
    ap.add_argument("--candidate", help="write a registry candidate to this folder instead (what `larr ctr "
                                        "train --out DIR` writes: artefact, metrics.json, config.json)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    return ap


@entry_point
def main(argv: list[str] | None = None) -> int:
    """``python -m training.ctr`` (also under torchrun); user errors (bad config, missing folder or column):
    one line, exit 2."""
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.candidate and a.kind == "p5":
        ap.error("--candidate: the P5 baseline (--kind p5) is not a registry candidate; pick another --kind")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config_from_args(a)
    require_dir(a.data, "--data", "give the world folder (`larr generate --out DIR`, then `larr spark all`)")
    jobs = Path(a.jobs) if a.jobs else None
    if a.candidate:
        out = Path(a.candidate)
        m = train_candidate(cfg, a.kind, Path(a.data), out, jobs, Path(a.features) if a.features else None,
                            progress=not a.quiet)
        if current().main:
            print(f"{a.kind}: validation CTR AUC {m['valid_ctr_auc']:.4f}, test CTR AUC "
                  f"{m['test']['all']['ctr_auc']:.4f} ({m['processes']} process(es)); artefact and metrics in {out}")
        return 0
    d = CtrData.load(Path(a.data), samples=jobs / "ctr_samples" if jobs else None, spec=load_spec(cfg.spec))
    r = run_p5(cfg, d, cfg.seed, Path(a.llm)) if a.kind == "p5" else \
        run_ctr(cfg.ctr, a.kind, d, cfg.seed, Path(a.features) if a.features else None, progress=not a.quiet,
                save=Path(a.save) if a.save else None)
    if not current().main:
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.kind}_seed{cfg.seed}.json").write_text(json.dumps(r, indent=2) + "\n")
    for name, m in r["metrics"].items():
        print(f"{a.kind:<7} {name:<11} n={m['rows']:>6} CTR AUC {m['ctr_auc']:.4f} (oracle {m['oracle_ctr_auc']:.4f}) "
              f"CTCVR AUC {m['ctcvr_auc']:.4f} (oracle {m['oracle_ctcvr_auc']:.4f}) CTR GAUC {m['ctr_gauc']:.4f}")
    print(f"train {r['train_seconds']:.0f}s, {r['train_samples_per_second']:,.0f} samples/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
