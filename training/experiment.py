"""``larr experiment paper``: the paper's whole CTR comparison in one command (paper Tables 2-3, Fig. 4).

For every seed it trains the baselines (Wide&Deep, DeepFM, the P5-style LLM-in-the-loop classifier), the
ablations (PLE = no LLM, noCPT, noFT, noAL) and LARR Complete; then the alignment temperature sweep
(Fig. 4a) and the negative-sampling sweep (Fig. 4b); then writes ``report.md``, ``report.json`` and PNG plots
(:mod:`training.ctr_report`).

The ablations differ only in the scene-vector table the same model reads:

* Complete / noAL: vectors of the CPT + contrastive encoder (``DATA/features``, written by ``larr embed``);
* noCPT: vectors of the encoder fine-tuned from the base model without CPT (``DATA/features_nocpt``);
* noFT: vectors of the CPT model without contrastive fine-tuning (``DATA/features_noft``).

Missing tables, and tables another encoder made (their ``encoder_version`` is not the current artefact's),
are embedded here through the production path (the Spark embedding job).  Every run's result is written to
``OUT/runs/<name>_seed<S>.json`` as soon as it finishes, with its key: a hash of the resolved config (the
variant's overrides applied), the seed and the versions of every input artefact it read (the CTR samples, the
scene-vector table and its encoder version, the P5 backbone, the oracle).  A re-run reuses a run only when
its key matches -- so an interrupted experiment resumes where it stopped, and a changed config or input
retrains instead of reporting numbers made by another one.  The resolved config is saved as
``OUT/config.yaml``; every run in the report was made with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from larr.config import LarrConfig, config_to_dict, save_config
from larr.llm.encoder import encoder_version
from larr.spec import load_spec
from training import ctr_report
from training.ctr import CtrData, run_ctr, run_p5

log = logging.getLogger("larr.experiment")


@dataclass(frozen=True)
class Variant:
    """One row of the report: a model kind reading one scene-vector table, with config overrides."""

    name: str
    kind: str
    label: str
    table: str | None = None  # features folder name under DATA, for the models that read scene vectors
    temperature: float | None = None
    negatives: int | None = None


MAIN = (
    Variant("wdl", "wdl", "Wide&Deep (no LLM)"),
    Variant("deepfm", "deepfm", "DeepFM (no LLM)"),
    Variant("dcnv2", "dcnv2", "DCN-V2 (no LLM)"),
    Variant("p5", "p5", "P5-style (LLM in the loop)"),
    Variant("ple", "ple", "LARR-PLE (no LLM)"),
    Variant("nocpt", "larr", "LARR-noCPT", "features_nocpt"),
    Variant("noft", "larr", "LARR-noFT", "features_noft"),
    Variant("noal", "noal", "LARR-noAL", "features"),
    Variant("larr", "larr", "LARR Complete", "features"),
)
BACKBONE_LABELS = {"ple": "PLE", "wdl": "Wide&Deep", "deepfm": "DeepFM", "dcnv2": "DCN-V2"}
# the LARR module on the other backbones (issue 17): the same scene encoder and alignment, plugged into each
MODULE_ROWS = tuple(Variant(f"{b}+{m}", f"{b}+{m}", f"{BACKBONE_LABELS[b]} + LARR" + ("-noAL" if m == "noal" else ""),
                            "features") for b in ("wdl", "deepfm", "dcnv2") for m in ("noal", "larr"))
TABLE_ENCODERS = {"features": "encoder", "features_nocpt": "encoder_nocpt", "features_noft": "encoder_noft"}


def sweep_variants(cfg: LarrConfig) -> list[Variant]:
    """Fig. 4a/4b points; the point equal to Complete's settings is Complete itself (not trained twice)."""
    c = cfg.ctr
    out = [Variant(f"larr_t{t:g}", "larr", f"LARR, temperature {t:g}", "features", temperature=t)
           for t in c.sweep_temperatures if t != c.align_temperature]
    out += [Variant(f"larr_neg{k}", "larr", f"LARR, {k} sampled negatives", "features", negatives=k)
            for k in c.sweep_negatives if k != c.align_negatives]
    return out


def ensure_tables(cfg: LarrConfig, data: Path, llm: Path, tables: set[str], spark: Any = None,
                  jobs: Path | None = None, root: Path | None = None) -> None:
    """Embed the scene-vector tables the variants need into ``root/<table>`` (default: the data folder) with the
    Spark embedding job, when a table is missing or was made by another encoder than the current artefact
    (its ``encoder_version`` column): a table is never reused whatever encoder made it, or the LARR rows would
    report an old encoder's vectors under the new one's name.  The noFT encoder is rebuilt when it is older
    than the CPT model it is a view of.  A session passed in is used and left running; otherwise one is
    started and stopped here."""
    from training.contrastive import save_noft_encoder

    jobs, root = jobs or data / "jobs", root or data
    noft = llm / TABLE_ENCODERS["features_noft"]
    cpt_model = llm / "cpt" / "model" / "config.json"
    if "features_noft" in tables and cpt_model.exists() and (
            not (noft / "encoder.json").exists()
            or (noft / "encoder.json").stat().st_mtime_ns < cpt_model.stat().st_mtime_ns):
        save_noft_encoder(cfg, llm)  # missing, or older than the CPT model it is a view of
    missing = []
    for table in sorted(tables):
        encoder = llm / TABLE_ENCODERS[table]
        if not (encoder / "encoder.json").exists():
            raise FileNotFoundError(f"{encoder} missing: run `larr train all ... --init cpt base` first")
        made_by = table_versions(root / table)
        if made_by != {encoder_version(encoder)}:
            if made_by:
                log.info("%s was embedded by encoder %s, not %s's %s: re-embedding", root / table, sorted(made_by),
                         encoder, encoder_version(encoder))
            missing.append(table)
    if not missing:
        return
    from spark_jobs import embed_features
    from spark_jobs.common import spark_session

    own = spark is None
    spark = spark or spark_session(cfg, "larr-experiment-embed")
    try:
        for table in missing:
            encoder = llm / TABLE_ENCODERS[table]
            dim = json.loads((encoder / "encoder.json").read_text())["dim"]
            # ablation tables feed the CTR model only, never a Feast view: they keep the encoder's own width
            run_cfg = cfg.model_copy(update={"features": cfg.features.model_copy(update={"embedding_dim": dim})})
            log.info("embedding scene values with %s into %s", encoder, root / table)
            embed_features.run(spark, run_cfg, data, jobs, validate=False, encoder=encoder, features=root / table)
    finally:
        if own:
            spark.stop()


def table_versions(folder: Path) -> set[str]:
    """The encoder versions that made the scene-vector table in ``folder`` (empty when there is none)."""
    import pandas as pd

    path = folder / "scene_value_embeddings.parquet"
    if not path.exists():
        return set()
    return set(pd.read_parquet(path, columns=["encoder_version"])["encoder_version"].astype(str))


def _files_version(path: Path) -> str | None:
    """A cheap version of a file or folder: a hash of every file's relative path, size and modification time
    (a rebuilt artefact gets a new one; content is not read, so a large sample folder costs nothing)."""
    if not path.exists():
        return None
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _variant_cfg(cfg: LarrConfig, v: Variant) -> LarrConfig:
    """``cfg`` with the variant's alignment overrides: the config the run is actually trained with."""
    update = {k: val for k, val in (("align_temperature", v.temperature), ("align_negatives", v.negatives))
              if val is not None}
    if v.negatives:  # sampled negatives replace the in-batch blocks (the two schemes exclude each other)
        update["align_block"] = 0
    return cfg.model_copy(update={"ctr": cfg.ctr.model_copy(update=update)})


def run_inputs(cfg: LarrConfig, v: Variant, d: CtrData, llm: Path) -> dict[str, Any]:
    """The versions of every artefact one run reads: what must be unchanged for a finished run to be reused."""
    inputs: dict[str, Any] = {"ctr_samples": _files_version(d.samples),
                              "oracle": _files_version(d.data / "_oracle" / "test_truth.parquet")}
    if v.table:
        table = d.features_root / v.table
        inputs["scene_table"] = _files_version(table / "scene_value_embeddings.parquet")
        inputs["scene_table_encoder"] = sorted(table_versions(table))
    if v.kind == "p5":
        from training.contrastive import init_path

        inputs["backbone"] = _files_version(init_path(cfg, llm, cfg.ctr.p5.init))
        inputs["scene_vocab"] = _files_version(d.samples.parent / "scene_vocab")
    return inputs


def run_key(cfg: LarrConfig, v: Variant, seed: int, inputs: dict[str, Any]) -> str:
    """The identity of one run: the resolved config it trains with (the variant's overrides applied; the
    profile's base seed left out, the run's own seed put in), the model kind, its table and its inputs'
    versions.  Two runs with one key are the same computation."""
    conf = config_to_dict(_variant_cfg(cfg, v))
    conf.pop("seed", None)
    payload = {"config": conf, "kind": v.kind, "table": v.table, "seed": seed, "inputs": inputs}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_one(cfg: LarrConfig, v: Variant, d: CtrData, seed: int, llm: Path, progress: bool) -> dict[str, Any]:
    if v.kind == "p5":
        return run_p5(cfg, d, seed, llm, progress=progress)
    return run_ctr(_variant_cfg(cfg, v).ctr, v.kind, d, seed, d.features_root / v.table if v.table else None,
                   progress=progress)


def select_temperature(results: list[dict[str, Any]], cfg: LarrConfig) -> float:
    """The alignment temperature with the best mean validation-day CTR AUC (final epoch) over the sweep seeds --
    model selection on the validation day, never the test day."""
    sweep_seeds = {cfg.seed + i for i in range(cfg.ctr.sweep_seeds)}
    by_t: dict[float, list[float]] = {}
    for r in results:
        if r["seed"] not in sweep_seeds:
            continue
        if r["name"] == "larr":
            t = cfg.ctr.align_temperature
        elif r["kind"] == "larr" and r.get("temperature") is not None:
            t = r["temperature"]
        else:  # other models and the negative-sampling points
            continue
        by_t.setdefault(t, []).append(r["history"]["valid"][-1]["ctr_auc"])
    best = max(by_t, key=lambda t: sum(by_t[t]) / len(by_t[t]))
    log.info("alignment temperature by validation-day CTR AUC: %s -> %g",
             {t: round(sum(v) / len(v), 4) for t, v in sorted(by_t.items())}, best)
    return best


def _run_plan(cfg: LarrConfig, plan: list[tuple[Variant, int]], d: CtrData, llm: Path, out: Path,
              progress: bool) -> list[dict[str, Any]]:
    """Run every (variant, seed) of ``plan`` in order, reusing a finished run only when its file holds the same
    :func:`run_key` (same config, seed and input versions); a stale file is retrained and overwritten."""
    results: list[dict[str, Any]] = []
    for n, (v, seed) in enumerate(plan, 1):
        path = out / "runs" / f"{v.name}_seed{seed}.json"
        inputs = run_inputs(cfg, v, d, llm)
        key = run_key(cfg, v, seed, inputs)
        old = json.loads(path.read_text()) if path.exists() else None
        if old is not None and old.get("run_key") == key:
            r = old
            log.info("[%d/%d] %s seed %d: done before with this config and inputs, reusing %s", n, len(plan),
                     v.name, seed, path)
        else:
            if old is not None:
                log.info("[%d/%d] %s seed %d: %s was made with another config or other inputs: retraining", n,
                         len(plan), v.name, seed, path)
            t0 = time.perf_counter()
            r = _run_one(cfg, v, d, seed, llm, progress)
            r.update(name=v.name, label=v.label, temperature=v.temperature, negatives=v.negatives,
                     wall_seconds=time.perf_counter() - t0, run_key=key, inputs=inputs)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r, indent=1) + "\n")
            m = r["metrics"]["all"]
            log.info("[%d/%d] %s seed %d: CTR AUC %.4f CTCVR AUC %.4f (%.0fs)", n, len(plan), v.name, seed,
                     m["ctr_auc"], m["ctcvr_auc"], r["wall_seconds"])
        results.append(r)
    return results


def run_paper(cfg: LarrConfig, data: Path, llm: Path, out: Path, seeds: int = 3, models: list[str] | None = None,
              sweeps: bool = True, progress: bool = True, spark: Any = None, jobs: Path | None = None,
              features_root: Path | None = None) -> dict[str, Any]:
    """Train every variant for ``seeds`` seeds (cfg.seed, cfg.seed + 1, ...), the sweeps, and write the report.

    ``data`` is the raw folder; the Spark job outputs are read from ``jobs`` (default DATA/jobs) and the
    scene-vector tables (``features``, ``features_nocpt``, ``features_noft``) live under ``features_root``
    (default DATA).  The simulator's oracle is used when DATA/_oracle exists, and omitted otherwise."""
    catalogue = MAIN + MODULE_ROWS
    known = {v.name for v in catalogue}
    chosen = [v for v in catalogue if models is None or v.name in models]
    unknown = sorted(set(models or []) - known)
    if unknown:
        raise ValueError(f"--models: unknown model(s) {unknown}; choose from {', '.join(sorted(known))}")
    sweep = sweep_variants(cfg) if sweeps else []
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    ensure_tables(cfg, data, llm, {v.table for v in chosen + sweep if v.table}, spark, jobs, features_root)
    d = CtrData.load(data, jobs / "ctr_samples" if jobs else None, spec=load_spec(cfg.spec),
                     features_root=features_root)
    plan = [(v, cfg.seed + i) for i in range(seeds) for v in chosen]
    plan += [(v, cfg.seed + i) for i in range(cfg.ctr.sweep_seeds) for v in sweep]
    results = _run_plan(cfg, plan, d, llm, out, progress)
    main = [v.name for v in chosen]
    if sweeps and any(v.name == "larr" for v in chosen) and len(cfg.ctr.sweep_temperatures) > 1:
        best = select_temperature(results, cfg)
        if best != cfg.ctr.align_temperature:
            tuned = replace(next(v for v in sweep if v.temperature == best),
                            label=f"LARR Complete, temperature {best:g} (selected on the validation day)")
            done = {r["seed"] for r in results if r["name"] == tuned.name}
            results += _run_plan(cfg, [(tuned, cfg.seed + i) for i in range(seeds) if cfg.seed + i not in done],
                                 d, llm, out, progress)
            for r in results:
                if r["name"] == tuned.name:
                    r["label"] = tuned.label
            main.insert(main.index("larr") + 1, tuned.name)
    # the runs' own wall time, summed: stable when a resumed experiment reuses finished runs
    import pyarrow.parquet as pq

    n_train = sum(pq.ParquetFile(f).metadata.num_rows for f in d.train_files)  # to state each model's budget
    report = ctr_report.write(out, results, cfg, main, seconds=sum(r.get("wall_seconds", 0.0) for r in results),
                              train_impressions=n_train)
    return report
