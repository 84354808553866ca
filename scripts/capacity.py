"""Capacity plan on paper: the resources larr would need at the LARR paper's scale, derived line by line from
the per-unit costs the benchmarks measured here, and written to ``docs/capacity.md``.

    .venv/bin/python scripts/capacity.py [--bench docs/benchmarks runs/bench] [--out docs/capacity.md]

Inputs (read only, standard library only):

* ``{spark_jobs,llm_stages,embedding,ctr_training,serving,streaming,streaming_scale,feature_store}.json`` --
  what ``benchmarks/*.py`` wrote, from the first ``--bench`` folder holding each: ``docs/benchmarks`` (the runs
  the README cites, committed), then ``runs/bench`` (a local run, not in git).  A file or field that is missing
  falls back to the figure the README's benchmark section records (each such line says so), and where neither
  exists the line says "not measured".
* ``data/small/manifest.json`` and ``data/small/jobs/{scene_vocab,embed_features}/_manifest.json`` -- the size
  of the world the measurements were taken on (optional).
* ``feature_repo/definitions.py`` -- what the online store holds (views, fields, types), parsed with ``ast``.
  The plan is for the default spec (food_delivery: entities user, poi, scene_value, region; field prefixes
  USER_/POI_/SCENE_ in the scene-vocabulary manifest).
* the constants below: the paper's scale and every ASSUMPTION, each with its basis.

Every output line shows its formula with the numbers plugged in and the measurement (file + field) or
assumption it starts from, so the plan can be re-derived when a benchmark is re-run: re-run this script.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Given:
    """A figure that is not measured here: the paper's scale or an assumption, with its basis."""

    value: float
    basis: str


# ----- the paper's scale (the LARR paper, ../shared/paper/larr-paper.txt, and issue 16's statement of it)
PAPER: dict[str, Given] = {
    "training_samples": Given(3.5e9, "paper §4.1 / Table 1: ~3.5B training samples (1 epoch)"),
    "training_days": Given(7, "paper §4.1: logs of April 1-7, 2024"),
    "impressions_per_day": Given(5e8, "paper-derived: 3.5e9 samples ÷ 7 days (after negative sampling, so a "
                                      "floor for raw impressions); issue 16: 'hundreds of millions a day'"),
    "users": Given(1e8, "issue 16: 10^8 users (paper Table 1: 2.4e8; user-proportional lines scale linearly)"),
    "pois": Given(1e6, "issue 16: 10^5-10^6 POIs, upper end (paper Table 1: 4.37e6)"),
    "llm_parameters": Given(7e9, "paper §4.2: Baichuan2-7B ('7B-class'; the exact count is ~7.5e9)"),
    "paper_cpt_gpu_hours": Given(96 * 32, "paper §4.2: CPT ran ~96 h on 32 A100-80G"),
    "paper_cpt_tokens": Given(1e10, "paper §4.1: 'a total of 10 billion pre-training textual corpora' (read "
                                    "as tokens), 1 epoch"),
}

# ----- assumptions: none of these is measured; change them here and re-run
ASSUME: dict[str, Given] = {
    "impressions_per_request": Given(10, "ASSUMPTION: items shown per request, as the simulator's "
                                         "world.candidates_per_request (larr/profiles/small.yaml)"),
    "requests_per_active_user_day": Given(1.2, "ASSUMPTION: as the simulator's world.requests_per_user_day "
                                               "(larr/profiles/small.yaml)"),
    "request_peak_factor": Given(4, "ASSUMPTION: meal-time peak request rate ÷ daily mean"),
    "serving_utilisation": Given(0.5, "ASSUMPTION: a worker is loaded to half its one-client throughput so "
                                      "queueing does not inflate p99"),
    "latency_target_p99_ms": Given(10, "project target (README § Scoring service: 'not <= 10 ms')"),
    "item_cache_bytes_per_item": Given(1024, "README § Scoring service: the item cache is 'a Python dict per "
                                             "item (about 1 KB)'"),
    "gpu_equiv_cores": Given(1500, "ASSUMPTION (not a measurement, no GPU was lent): one A100 (bf16) does the "
                                   "work of 1,500 of the benchmark machine's CPU cores on transformer "
                                   "passes; chosen near the figure the paper implies (the check line in §2), "
                                   "so it is not independent of line C"),
    "gpu_peak_flops": Given(312e12, "A100 dense bf16 peak, vendor datasheet (the paper's GPU)"),
    "inference_mfu": Given(0.4, "ASSUMPTION: model FLOPs utilisation of batched encoder inference on a GPU"),
    "tokens_per_text": Given(64, "ASSUMPTION: average tokens of one embedded text (user/POI full texts and "
                                 "field texts) under a 7B model's tokenizer"),
    "token_ratio_7b_vs_ours": Given(1.0, "ASSUMPTION: a 7B tokenizer cuts our texts into as many tokens as ours"),
    "embed_window_hours": Given(4, "ASSUMPTION: the daily embedding run must finish within 4 h"),
    "poi_daily_change_share": Given(0.1, "ASSUMPTION: share of POIs whose texts (menu, intro, tags, stats) "
                                         "change on a day"),
    "user_texts_per_changed_user": Given(2, "from the spec: a user whose history changes gets a new full text "
                                            "(user_embedding) and a new USER_orders field text (scene vocabulary)"),
    "spark_cluster_overhead": Given(2.0, "ASSUMPTION: shuffle over a network, spills and stragglers on a "
                                         "cluster cost 2x the local[*] per-core rate"),
    "spark_window_hours": Given(2, "ASSUMPTION: the daily Spark run must finish within 2 h"),
    "distinct_pair_share": Given(0.5, "ASSUMPTION: distinct (user, POI) pairs ÷ impressions over 30 days"),
    "regions": Given(1e5, "ASSUMPTION: real-time scene-state keys (geo cells) at national scale"),
    "weather_interval_s": Given(600, "ASSUMPTION: one weather event per region every 10 min"),
    "slot_interval_s": Given(3600, "ASSUMPTION: one time-slot event per region per hour"),
    "context_interval_s": Given(86400, "ASSUMPTION: one day-type event per region per day"),
    "stream_catch_up_factor": Given(12, "ASSUMPTION: a 1-hour backlog (broker or store outage) replayed in 5 min"),
    "stream_utilisation": Given(0.5, "ASSUMPTION: a consumer runs at half its measured sustained rate"),
    "min_consumers": Given(2, "ASSUMPTION: two instances for failover"),
    "redis_key_bytes": Given(48, "spot check: Feast's Redis keys of one int64 join key were 48-51 B "
                                 "(redis 7.0.15, this machine)"),
    "redis_pair_key_bytes": Given(64, "ASSUMPTION: a two-key (user, POI) entity key"),
    "redis_hashtable_key_overhead": Given(223, "fitted to a MEMORY USAGE spot check (redis 7.0.15, jemalloc): "
                                               "hashes with a 519-B vector value (hashtable encoding), 4 and 12 "
                                               "fields: 1,040 and 1,560 B = payload + 223 B + 47 B/field"),
    "redis_hashtable_field_overhead": Given(47, "same spot check as the line above"),
    "redis_listpack_key_overhead": Given(100, "fitted to MEMORY USAGE of Feast-written region_scene_state keys "
                                              "(12 fields, 360 B) and a 9-field synthetic hash (328 B): payload + "
                                              "~100 B + ~3 B/field"),
    "redis_listpack_field_overhead": Given(3, "same spot check as the line above"),
    "redis_fragmentation": Given(1.3, "ASSUMPTION: allocator fragmentation and fork copy-on-write headroom"),
    "redis_replicas": Given(2, "ASSUMPTION: primary + one replica"),
    "redis_string_bytes": Given(12, "ASSUMPTION: average length of a short string value (weather, field name)"),
}

# ----- figures the README's benchmark sections record, used only where no benchmark JSON has them
README_SPARK = {  # README § Spark jobs: job -> (seconds at 1x = 383,557 impressions, time at 2x, time at 4x vs 1x)
    "cpt_corpus": (1.8, 0.90, 0.66), "contrastive_pairs": (8.5, 0.84, 0.98),
    "scene_vocab": (21.0, 1.11, 1.59), "ctr_samples": (19.9, 1.46, 2.10),
}
README_IMPRESSIONS_1X = 383_557
README_FIGURES: dict[str, tuple[float, str]] = {
    "encode_texts_per_s": (1306, "README § LLM stages 1-2: 'encode 1,306 texts/s' (CPU, 2 cores)"),
    "cpt_tokens_per_s": (14035, "README § LLM stages 1-2: 'CPT 14,035 training tokens/s' (CPU, 2 cores)"),
    "llm_parameters": (670_000, "README § Scoring service: 'the tiny world's 0.67M-parameter backbone'"),
    "serving_rps": (94.1, "docs/benchmarks/serving.json rows[store=redis,server=onnx,path=larr]: 94.1 req/s"),
    "serving_p50_ms": (10.5, "README § Scoring service table: Redis, ONNX Runtime, LARR, run 2, p50 10.5 ms"),
    "serving_p99_ms": (22.8, "README § Scoring service table: Redis, ONNX Runtime, LARR, run 2, p99 22.8 ms"),
    "serving_llm_rps": (4.8, "docs/benchmarks/serving.json rows[store=redis,path=llm,llm=run's CPT "
                             "backbone]: 4.8 req/s"),
    "ctr_samples_per_s": (21632, "README § CTR model, training cost table: LARR samples/s after, 21,632 "
                                 "(model loop, batch 2,400, 2 cores)"),
    "stream_events_per_s": (38086, "README § Streaming table: after, Redis, 'into the online store' 38,086 ev/s"),
    "stream_fresh_p99_ms": (15, "README § Streaming table: after, Redis, freshness p99 15 ms at 2,000 ev/s live"),
    "store_write_rows_per_s": (8316, "README § Feature store: 'online writes ... 8,316 rows/s (Redis)'"),
}
MEASURED_CORES = Given(2, "the benchmark machine: 2 cores, every benchmark used both (README; spark_jobs.json "
                          "records `cpus` when present)")


@dataclass
class Fig:
    """A measured figure (or None) and where it comes from."""

    value: float | None
    source: str


@dataclass
class Line:
    quantity: str
    formula: str
    result: str
    source: str


@dataclass
class Section:
    title: str
    intro: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, quantity: str, formula: str, result: str, source: str) -> None:
        self.lines.append(Line(quantity, formula, result, source))


def num(x: float | None) -> str:
    """3 significant digits; thousands separators below 10^6, ``1.23e9`` above."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e6:
        e = int(math.floor(math.log10(a)))
        m = float(f"{x / 10 ** e:.3g}")
        if abs(m) >= 10:
            m, e = m / 10, e + 1
        return f"{m:g}e{e}"
    if a >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def size(b: float) -> str:
    """Bytes as GB / TB (decimal)."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if b >= f:
            return f"{b / f:.3g} {unit}"
    return f"{b:.0f} B"


class Inputs:
    """The measurement files, loaded once; records which exist and when they were written."""

    def __init__(self, bench: list[Path], data: Path) -> None:
        self.bench, self.data = bench, data
        self.files: dict[str, dict[str, Any] | None] = {}
        self.paths: dict[str, Path] = {}  # name -> the file read (or, when none exists, the first place looked)
        self.seen: list[tuple[str, str]] = []  # (path, state)
        for name in ("spark_jobs", "llm_stages", "embedding", "ctr_training", "serving", "streaming",
                     "streaming_scale", "feature_store"):
            # the first folder holding the file wins: the committed record the README cites, else a local run
            found = [d / f"{name}.json" for d in bench if (d / f"{name}.json").exists()]
            self.paths[name] = found[0] if found else bench[0] / f"{name}.json"
            self.files[name] = self._load(self.paths[name], also=bench[1:] if not found else [])
        self.world = self._load(data / "manifest.json")
        self.vocab = self._load(data / "jobs" / "scene_vocab" / "_manifest.json")
        self.embed = self._load(data / "jobs" / "embed_features" / "_manifest.json")

    def _load(self, path: Path, also: list[Path] | None = None) -> dict[str, Any] | None:
        rel = _rel(path)
        if not path.exists():
            where = f" (nor in {', '.join(f'`{_rel(d)}/`' for d in also)})" if also else ""
            self.seen.append((rel, f"absent{where}"))
            return None
        if path.resolve().is_relative_to(ROOT / "docs"):  # a file from git: its mtime is the checkout's
            self.seen.append((rel, "read (committed record)"))
        else:
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
            self.seen.append((rel, f"read (written {stamp})"))
        return json.loads(path.read_text())

    def src(self, name: str) -> str:
        return f"`{_rel(self.paths[name])}`"

    def pick(self, name: str, section: str, where: Callable[[dict[str, Any]], bool], key: str | tuple[str, ...],
             what: str, choose: Callable[[list[float]], float] = max) -> Fig | None:
        """``key`` (the first of several names a benchmark has used for it that is present) of the rows of
        ``file[section]`` that satisfy ``where`` (``choose`` of several)."""
        d = self.files.get(name)
        for k in (key,) if isinstance(key, str) else key:
            rows = [r for r in (d or {}).get(section) or [] if where(r) and isinstance(r.get(k), int | float)]
            if rows:
                return Fig(choose([float(r[k]) for r in rows]), f"{self.src(name)} {section}[{what}].{k}")
        return None

    def readme(self, key: str, name: str) -> Fig:
        value, where = README_FIGURES[key]
        state = "absent" if self.files.get(name) is None else "lacks it"
        return Fig(value, f"{where} -- {self.src(name)} {state}")


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ----- the online store's schema, from the generated Feast definitions
@dataclass
class View:
    name: str
    entities: list[str]
    ttl_s: float
    fields: list[tuple[str, str]]


def parse_definitions(path: Path) -> list[View]:
    """FeatureViews of a generated ``definitions.py``: name, entities, TTL and (field, dtype)."""
    tree = ast.parse(path.read_text())
    views = []

    def dtype(node: ast.expr) -> str:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return f"{node.func.id}({dtype(node.args[0])})"
        return node.id if isinstance(node, ast.Name) else "?"

    for node in tree.body:
        call = node.value if isinstance(node, ast.Assign) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "FeatureView"):
            continue
        kw = {k.arg: k.value for k in call.keywords}
        ents = [e.id for e in kw["entities"].elts if isinstance(e, ast.Name)]  # type: ignore[attr-defined]
        ttl = kw["ttl"]
        ttl_s = sum(float(k.value.value) * {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}[k.arg]
                    for k in ttl.keywords if isinstance(k.value, ast.Constant))  # type: ignore[attr-defined]
        fields = []
        for f in kw["schema"].elts:  # type: ignore[attr-defined]
            fk = {k.arg: k.value for k in f.keywords}
            fields.append((fk["name"].value, dtype(fk["dtype"])))
        views.append(View(kw["name"].value, ents, ttl_s, fields))  # type: ignore[attr-defined]
    return views


def value_bytes(name: str, dtype: str, dim: int, pairs: float) -> float:
    """Bytes of Feast's serialised ValueProto for one field (protobuf sizes checked against feast's own protos:
    a 128-float vector 519 B, a 64-bit hash 11 B, a double 9 B, a ms timestamp 7 B)."""
    strlen = 16 if name == "encoder_version" else ASSUME["redis_string_bytes"].value
    if dtype == "Array(Float32)":
        return 7 + 4 * dim
    if dtype == "Array(Float64)":
        return 6 + 8 * pairs
    if dtype == "Array(Int64)":
        return 6 + (3 if name.endswith("_ids") else 2) * pairs
    if dtype == "Int64":
        if name.startswith("key_") or name.endswith("_key"):
            return 11
        return 7 if name.endswith("_ts") else 4
    return {"Float64": 9, "Float32": 5, "Bool": 2, "String": 2 + strlen}.get(dtype, 10)


# ----- the plan
def plan(inp: Inputs, views: list[View]) -> list[Section]:
    P = {k: g.value for k, g in PAPER.items()}
    A = {k: g.value for k, g in ASSUME.items()}
    imp_day = P["impressions_per_day"]
    sections = []

    # 1. Spark --------------------------------------------------------------------------------------------
    s = Section("1. Spark core-hours per daily run",
                "The four corpus/sample jobs, per impression, at the largest scale measured (its average rate "
                "includes the fixed per-stage overhead, so it is the conservative choice). By default each job "
                "rebuilds every day of the window, which is what the benchmark times.")
    sj = inp.files["spark_jobs"]
    # job -> (impressions, seconds) at the smallest and the largest scale, cores, source
    jobs: dict[str, tuple[float, float, float, float, float, str]] = {}
    if sj and sj.get("results"):
        cores = float(sj.get("cpus") or MEASURED_CORES.value)
        by: dict[str, list[dict[str, Any]]] = {}
        for r in sj["results"]:
            by.setdefault(r["job"], []).append(r)
        for j, rs in by.items():
            lo_r, hi_r = min(rs, key=lambda r: r["scale"]), max(rs, key=lambda r: r["scale"])
            jobs[j] = (lo_r["impressions"], lo_r["seconds"], hi_r["impressions"], hi_r["seconds"], cores,
                       f"{inp.src('spark_jobs')} results[job={j},scale={hi_r['scale']}].impressions/.seconds; "
                       f"cpus={num(cores)}")
    else:
        for j, (t1, _r2, r4) in README_SPARK.items():
            jobs[j] = (README_IMPRESSIONS_1X, t1, 4 * README_IMPRESSIONS_1X, t1 * r4, MEASURED_CORES.value,
                       f"README § Spark jobs table: {t1} s at 1x × {r4} at 4x, 4 × 383,557 impressions, 2 cores "
                       f"-- {inp.src('spark_jobs')} absent")
    per_imp, marginal = 0.0, 0.0
    for j, (i_lo, t_lo, imps, sec, cores, src) in jobs.items():
        c = cores * sec / imps
        per_imp += c
        marginal += cores * max(0.0, sec - t_lo) / (imps - i_lo) if imps > i_lo else c
        s.add(f"{j}: core-µs per impression", f"{num(cores)} cores × {num(sec)} s ÷ {num(imps)} impressions",
              f"{c * 1e6:.3g} µs", src)
    s.add("all four jobs: core-µs per impression", " + ".join(f"{cores * sec / imps * 1e6:.3g}"
                                                              for _, _, imps, sec, cores, _ in jobs.values()),
          f"{per_imp * 1e6:.3g} µs", "the lines above")
    s.add("for comparison: marginal cost between the smallest and largest scale",
          "Σ cores × (Δ seconds, floored at 0) ÷ Δ impressions", f"{marginal * 1e6:.3g} µs",
          "same rows; excludes fixed overhead -- what perfectly linear scaling would cost")
    day = imp_day * per_imp / 3600
    s.add("one day's partition (`--ds`), local rate", f"{num(imp_day)} impressions × {per_imp * 1e6:.3g} µs ÷ 3,600",
          f"{num(day)} core-h", "lower bound: the benchmark rebuilds every day; a `--ds` run still reads the "
                                "history (not measured)")
    full = P["training_samples"] * per_imp / 3600
    s.add("one day's partition on a cluster", f"{num(day)} core-h × {A['spark_cluster_overhead']:g}",
          f"{num(day * A['spark_cluster_overhead'])} core-h", "assumption: spark_cluster_overhead")
    s.add("rebuild of the 7-day training window, local rate",
          f"{num(P['training_samples'])} impressions × {per_imp * 1e6:.3g} µs ÷ 3,600", f"{num(full)} core-h",
          "what the benchmark times (every day of the window rebuilt); paper scale")
    ov = A["spark_cluster_overhead"]
    s.add("daily run on a cluster (provision for)", f"{num(full)} core-h × {ov:g} (cluster overhead)",
          f"**{num(full * ov)} core-h**", "assumption: spark_cluster_overhead")
    s.add(f"executor cores to finish in {A['spark_window_hours']:g} h",
          f"{num(full * ov)} core-h ÷ {A['spark_window_hours']:g} h", f"{math.ceil(full * ov / A['spark_window_hours'])}"
          " cores", "assumption: spark_window_hours")
    s.notes.append("The benchmark scales users (and so impressions, orders, pairs) on a fixed 800 POIs, 2 cores, "
                   "local[*]: the per-impression cost of `cpt_corpus` (per POI) and `contrastive_pairs` (per user "
                   "and order) is only a proxy at paper scale, and shuffles 10^3-10^4x larger than measured "
                   "spill to disk -- hence the ASSUMED cluster overhead. The embedding job is costed in §2.")
    sections.append(s)

    # 2. encoder ------------------------------------------------------------------------------------------
    s = Section("2. Encoder GPU-hours for each day's new distinct texts",
                "Only texts not yet embedded for the encoder version are encoded (design §5). The measured "
                "encoder is the small default LLM on a CPU; a 7B-class model on GPUs is extrapolated three "
                "ways, each with its own assumptions.")
    enc = inp.pick("llm_stages", "results", lambda r: r.get("stage") == "encode" and r.get("device") == "cpu",
                   "texts_per_second", "stage=encode,device=cpu") or inp.readme("encode_texts_per_s", "llm_stages")
    params = inp.pick("llm_stages", "processes", lambda r: bool(r.get("parameters")), "parameters",
                      "*") or inp.readme("llm_parameters", "llm_stages")
    cpt = inp.pick("llm_stages", "results", lambda r: r.get("stage") == "cpt" and r.get("device") == "cpu",
                   "tokens_per_second", "stage=cpt,device=cpu") or inp.readme("cpt_tokens_per_s", "llm_stages")
    cores = MEASURED_CORES.value
    w = inp.world or {}
    rows = w.get("rows", {})
    orders_per_imp = (rows["orders"] / rows["impressions"]) if rows.get("orders") else None
    vocab = (inp.vocab or {}).get("distinct_texts_per_field") or {}
    n_users_w = rows.get("users")
    n_pois_w = rows.get("pois")
    per_user_texts = (sum(v for k, v in vocab.items() if k.startswith("USER_")) / n_users_w
                      if vocab and n_users_w else None)
    per_poi_texts = (sum(v for k, v in vocab.items() if k.startswith("POI_")) / n_pois_w
                     if vocab and n_pois_w else None)
    scene_texts = sum(v for k, v in vocab.items() if k.startswith("SCENE_")) if vocab else None
    wsrc = f"`{_rel(inp.data / 'manifest.json')}`"
    vsrc = f"`{_rel(inp.data / 'jobs/scene_vocab/_manifest.json')}`"

    emb = ((inp.files["embedding"] or {}).get("results") or {})
    if isinstance((emb.get("inproc1") or {}).get("texts_per_second"), int | float):
        per_core = float(emb["inproc1"]["texts_per_second"])
        s.add("encode rate of the measured model, per core", "in-process, 1 torch thread",
              f"{num(per_core)} texts/s/core", f"{inp.src('embedding')} results.inproc1.texts_per_second")
    else:
        per_core = enc.value / cores
        s.add("encode rate of the measured model, per core", f"{num(enc.value)} texts/s ÷ {num(cores)} cores",
              f"{num(per_core)} texts/s/core", f"{enc.source}; cores: {MEASURED_CORES.basis}")
    ratio = P["llm_parameters"] / params.value
    s.add("7B ÷ measured model, parameters", f"{num(P['llm_parameters'])} ÷ {num(params.value)}", f"{num(ratio)}×",
          f"{params.source}; paper: llm_parameters")
    core_s = ratio * A["token_ratio_7b_vs_ours"] / per_core
    s.add("7B: CPU core-seconds per text (A)", f"{num(ratio)} × {A['token_ratio_7b_vs_ours']:g} (tokens) ÷ "
          f"{num(per_core)} texts/s", f"{num(core_s)} core-s", "assumption: token_ratio_7b_vs_ours (cost ∝ "
          "parameters × tokens)")
    gpu_a = core_s / A["gpu_equiv_cores"]
    s.add("7B: GPU-seconds per text (A: param-scaled CPU measurement)",
          f"{num(core_s)} core-s ÷ {num(A['gpu_equiv_cores'])} cores/GPU", f"{gpu_a * 1e3:.3g} ms",
          "assumption: gpu_equiv_cores")
    mfu = A["inference_mfu"]
    mfu_src = "assumption: inference_mfu"
    gs = inp.files["llm_stages"] and inp.files["llm_stages"].get("gpu_scale")
    if gs:
        m = [r["mfu"] for r in gs if r.get("mfu")]
        if m:
            mfu, mfu_src = max(m), f"{inp.src('llm_stages')} gpu_scale[*].mfu (training MFU, ~310M model)"
    flops = 2 * P["llm_parameters"] * A["tokens_per_text"]
    gpu_b = flops / (A["gpu_peak_flops"] * mfu)
    s.add("7B: GPU-seconds per text (B: FLOPs)", f"2 × {num(P['llm_parameters'])} × {A['tokens_per_text']:g} tokens "
          f"÷ ({num(A['gpu_peak_flops'])} FLOP/s × {mfu:.2g})", f"{gpu_b * 1e3:.3g} ms",
          f"assumptions: tokens_per_text, gpu_peak_flops; {mfu_src}")
    paper_tps = P["paper_cpt_tokens"] / (P["paper_cpt_gpu_hours"] * 3600)
    gpu_c = A["tokens_per_text"] / (3 * paper_tps)
    s.add("7B: GPU-seconds per text (C: the paper's own CPT throughput)",
          f"{A['tokens_per_text']:g} tokens ÷ (3 × {num(paper_tps)} training tokens/s/GPU; forward = 1/3 of a "
          "training step)", f"{gpu_c * 1e3:.3g} ms", "paper: paper_cpt_tokens ÷ paper_cpt_gpu_hours; assumption: "
                                                      "tokens_per_text")
    core_tps_7b = cpt.value / cores / ratio
    implied = paper_tps / core_tps_7b
    s.add("check: GPU ≈ how many cores, implied by the paper",
          f"{num(paper_tps)} tokens/s/A100 ÷ ({num(cpt.value)} tokens/s ÷ {num(cores)} cores ÷ {num(ratio)})",
          f"{num(implied)} cores", f"{cpt.source}; paper CPT figures -- compare gpu_equiv_cores = "
                                   f"{num(A['gpu_equiv_cores'])}")

    if orders_per_imp is None or per_poi_texts is None or per_user_texts is None or scene_texts is None:
        s.add("new distinct texts per day", "not measured: the small world's manifests "
              f"({wsrc}, {vsrc}) are absent", "n/a", "run `bash scripts/demo.sh`")
    else:
        orders = imp_day * orders_per_imp
        s.add("orders per day", f"{num(imp_day)} impressions × {rows['orders']:,} ÷ {rows['impressions']:,} "
              "orders per impression", num(orders), f"{wsrc} rows.orders / rows.impressions (simulated world)")
        u_texts = orders * A["user_texts_per_changed_user"]
        s.add("new user texts per day (upper bound)", f"{num(orders)} users with a new order × "
              f"{A['user_texts_per_changed_user']:g} texts", num(u_texts), "every order changes its user's history "
              "texts (upper bound); spec: user_texts_per_changed_user")
        p_texts = P["pois"] * A["poi_daily_change_share"] * (1 + per_poi_texts)
        s.add("new POI texts per day", f"{num(P['pois'])} POIs × {A['poi_daily_change_share']:g} × (1 full text + "
              f"{per_poi_texts:.3g} field texts)", num(p_texts),
              f"{vsrc} distinct_texts_per_field POI_* ÷ rows.pois; assumption: poi_daily_change_share")
        daily = u_texts + p_texts
        s.add("new distinct texts per day", f"{num(u_texts)} + {num(p_texts)} (+ ~0 scene values: {scene_texts:.0f} "
              "SCENE_* texts on small, a closed set)", num(daily), f"{vsrc}")
        lo, hi = sorted((gpu_a, gpu_b, gpu_c))[0], sorted((gpu_a, gpu_b, gpu_c))[2]
        gh = daily * gpu_a / 3600
        s.add("**encoder GPU-hours per day** (A)", f"{num(daily)} texts × {gpu_a * 1e3:.3g} ms ÷ 3,600",
              f"**{num(gh)} GPU-h**", f"lines above; B and C give {num(daily * gpu_b / 3600)} and "
              f"{num(daily * gpu_c / 3600)} GPU-h")
        s.add(f"GPUs to finish in {A['embed_window_hours']:g} h", f"{num(daily)} × {hi * 1e3:.3g} ms (worst of A-C) ÷ "
              f"3,600 ÷ {A['embed_window_hours']:g} h", f"{math.ceil(daily * hi / 3600 / A['embed_window_hours'])} GPUs",
              "assumption: embed_window_hours")
        s.add("same texts on CPU cores (why GPUs)", f"{num(daily)} texts × {num(core_s)} core-s ÷ 3,600",
              f"{num(daily * core_s / 3600)} core-h", "line A's CPU figure")
        full = P["users"] * (1 + per_user_texts) + P["pois"] * (1 + per_poi_texts) + scene_texts
        s.add("full re-embed (a new encoder version)", f"{num(P['users'])} × (1 + {per_user_texts:.3g}) + "
              f"{num(P['pois'])} × (1 + {per_poi_texts:.3g}) + {scene_texts:.0f} texts", num(full),
              f"{vsrc} distinct_texts_per_field (USER_* ÷ users, POI_* ÷ POIs, SCENE_*), over the small "
              "world's 8 days; closed sets such as USER_home or POI_cuisine are counted as if per entity "
              "(a slight overcount)")
        s.add("full re-embed GPU-hours", f"{num(full)} × {lo * 1e3:.3g}-{hi * 1e3:.3g} ms ÷ 3,600",
              f"{num(full * lo / 3600)}-{num(full * hi / 3600)} GPU-h", "range of A-C")
    ef = inp.embed
    if isinstance((emb.get("spark") or {}).get("ratio_to_inproc_1_thread"), int | float):
        s.add("Spark batch job vs bare encoder, per core (pipeline efficiency)",
              f"{num(emb['spark']['per_worker_or_core'])} ÷ {num(per_core)} texts/s",
              f"{emb['spark']['ratio_to_inproc_1_thread']:.2f}",
              f"{inp.src('embedding')} results.spark.ratio_to_inproc_1_thread (embedding stage only)")
    elif ef and ef.get("texts_per_second"):
        s.add("Spark batch job vs bare encoder (pipeline efficiency)",
              f"{num(ef['texts_per_second'])} ÷ {num(enc.value)} texts/s",
              f"{ef['texts_per_second'] / enc.value:.2f}",
              f"`{_rel(inp.data / 'jobs/embed_features/_manifest.json')}` texts_per_second (whole job, "
              f"{ef.get('embedded_now', '?')} texts); {enc.source}")
    s.notes.append("Parameter count × tokens is a first-order cost model: the measured model is ~0.67M "
                   "parameters (about a third of it the token-embedding table) whose 128-wide matmuls a CPU "
                   "runs far below peak, so line A can err either way; line B assumes the GPU is compute-bound, line C inherits the "
                   "paper's training efficiency (slower than inference). No GPU was lent: "
                   "`benchmarks/llm_stages.py --gpu-scale` measures MFU and the GPU/CPU encode ratio when one is.")
    sections.append(s)

    # 3. Redis ---------------------------------------------------------------------------------------------
    s = Section("3. Redis memory: vectors, statistics, scene state",
                "Feast's Redis store keeps one hash per entity key; each feature is a field (4-byte murmur name, "
                "serialised ValueProto) plus one `_ts:<view>` field per view, and only the newest row of each "
                "entity. No `key_ttl_seconds` is set (`feature_repo/feature_store.redis.yaml`), so Redis never "
                "expires a key; the view TTLs only hide old rows from reads. Per-key bytes are computed from "
                "`feature_repo/definitions.py` (parsed) and the spot-checked Redis overheads.")
    dim = 128
    pairs_30d = imp_day * 30 * A["distinct_pair_share"]
    pairs_per_user = pairs_30d / P["users"]
    scene_keys = (P["users"] * per_user_texts + P["pois"] * per_poi_texts + scene_texts) if per_user_texts is not None \
        and per_poi_texts is not None and scene_texts is not None else None
    counts = {"user": P["users"], "poi": P["pois"], "user+poi": pairs_30d, "scene_value": scene_keys,
              "region": A["regions"]}
    count_src = {"user": "paper: users", "poi": "paper: pois",
                 "user+poi": f"{num(imp_day)} impressions/day × 30 d × {A['distinct_pair_share']:g} (assumption: "
                             "distinct_pair_share)",
                 "scene_value": f"users × {per_user_texts:.3g} + POIs × {per_poi_texts:.3g} + {scene_texts:.0f} "
                                f"({vsrc})" if scene_keys is not None else f"{vsrc} absent",
                 "region": "assumption: regions"}
    s.add("(user, POI) pairs within 30 days", count_src["user+poi"], num(pairs_30d), "-> "
          f"{pairs_per_user:.3g} pairs per user in `user_poi_history`'s arrays")
    groups: dict[str, list[View]] = {}
    for v in views:
        groups.setdefault("+".join(v.entities), []).append(v)
    total, total_no_pairs, vec_bytes = 0.0, 0.0, 0.0
    for g, vs in groups.items():
        n_fields = sum(len(v.fields) + 1 for v in vs)
        payload = sum(4 + value_bytes(f, t, dim, pairs_per_user) for v in vs for f, t in v.fields)
        payload += sum(4 + len(v.name) + 12 for v in vs)  # _ts:<view> -> Timestamp proto
        big = any(value_bytes(f, t, dim, pairs_per_user) > 64 for v in vs for f, t in v.fields) or n_fields > 128
        key = A["redis_pair_key_bytes"] if "+" in g else A["redis_key_bytes"]
        kind = "hashtable" if big else "listpack"
        ko = A[f"redis_{kind}_key_overhead"]
        fo = A[f"redis_{kind}_field_overhead"]
        per_key = key + payload + ko + fo * n_fields
        n = counts.get(g)
        vnames = ", ".join(v.name for v in vs)
        if n is None:
            s.add(f"`{g}` keys ({vnames})", "not measured: key count", "n/a", count_src.get(g, ""))
            continue
        tot = n * per_key
        total += tot
        if g != "user+poi":
            total_no_pairs += tot
        vec_bytes += n * 4 * dim * sum(1 for v in vs for _, t in v.fields if t == "Array(Float32)")
        s.add(f"`{g}` keys: {vnames}",
              f"{num(n)} keys × ({num(key)} key + {num(payload)} payload in {n_fields} fields + {num(ko)} + "
              f"{num(fo)} × {n_fields} {kind} overhead = {num(per_key)} B)", size(tot),
              f"count: {count_src.get(g, 'n/a')}; schema: `feature_repo/definitions.py`; overheads: assumptions "
              f"redis_{kind}_*")
    s.add("of which raw float32 vectors", f"keys with a vector × 4 B × {dim} dims", size(vec_bytes),
          "design §5: 128-d float32")
    s.add("data, all views", "sum of the lines above", size(total), "")
    fr, rep = A["redis_fragmentation"], A["redis_replicas"]
    s.add("**provisioned, all views**", f"{size(total)} × {fr:g} × {rep:g} replicas", f"**{size(total * fr * rep)}**",
          "assumptions: redis_fragmentation, redis_replicas")
    s.add("**provisioned, without the per-pair view online**", f"{size(total_no_pairs)} × {fr:g} × {rep:g}",
          f"**{size(total_no_pairs * fr * rep)}**", "the scorer reads `user_poi_history`, not `user_poi_stats` "
                                                     "(README § Scoring service)")
    if orders_per_imp is not None:
        growth = imp_day * orders_per_imp * 1 + P["pois"] * A["poi_daily_change_share"] * (per_poi_texts or 0)
        sv = [v for v in views if v.entities == ["scene_value"]]
        per_sv = (A["redis_key_bytes"] + A["redis_hashtable_key_overhead"]
                  + sum(4 + value_bytes(f, t, dim, 0) + A["redis_hashtable_field_overhead"]
                        for v in sv for f, t in v.fields)
                  + sum(4 + len(v.name) + 12 + A["redis_hashtable_field_overhead"] for v in sv))
        s.add("scene-value keys added per day (never expired)",
              f"({num(imp_day * orders_per_imp)} USER_orders + {num(P['pois'] * A['poi_daily_change_share'] * (per_poi_texts or 0))}"
              f" POI field texts) × {num(per_sv)} B", f"{size(growth * per_sv)}/day, {size(365 * growth * per_sv)}/year",
              "§2's daily texts; no Redis key TTL -- a `key_ttl_seconds` or a sweep of superseded keys bounds it")
    wr = inp.pick("feature_store", "stores", lambda r: r.get("online_store") == "redis", "write_rows_per_second",
                  "online_store=redis") or inp.readme("store_write_rows_per_s", "feature_store")
    active = imp_day / A["impressions_per_request"] / A["requests_per_active_user_day"]
    user_views = len(groups.get("user", [])) - 1  # stats-like views of the day; the embedding view counted below
    daily_rows = active * user_views + imp_day * A["distinct_pair_share"] + P["pois"] * len(groups.get("poi", [])) \
        + (imp_day * orders_per_imp if orders_per_imp else 0)
    s.add("online rows written per day (publish)",
          f"{num(active)} active users × {user_views} views + {num(imp_day)} × {A['distinct_pair_share']:g} pair rows + "
          f"{num(P['pois'])} POIs × {len(groups.get('poi', []))} views + changed user vectors",
          num(daily_rows), "active users = impressions ÷ impressions_per_request ÷ requests_per_active_user_day")
    s.add("writer-hours per day", f"{num(daily_rows)} rows ÷ {num(wr.value)} rows/s ÷ 3,600",
          f"{num(daily_rows / wr.value / 3600)} writer-h", f"{wr.source} (one Python writer; measured on vector rows)")
    s.notes.append("The per-pair view `user_poi_stats` is materialised by `larr features publish` (all views) and "
                   "is in the `ctr_model` feature service, but at paper scale its billions of small keys dominate "
                   "memory and the daily write load; the scorer does not read it. Overheads were fitted to a "
                   "handful of keys on one Redis build; `MEMORY USAGE` on real keys should replace them.")
    sections.append(s)

    # 4. streaming ------------------------------------------------------------------------------------------
    s = Section("4. Streaming consumer instances for a peak event rate",
                "Events are keyed by region (docs/streaming-events.md): weather, time slot, day type; one online "
                "row per region.")
    rate = A["regions"] * (1 / A["weather_interval_s"] + 1 / A["slot_interval_s"] + 1 / A["context_interval_s"])
    s.add("steady event rate", f"{num(A['regions'])} regions × (1/{num(A['weather_interval_s'])} + "
          f"1/{num(A['slot_interval_s'])} + 1/{num(A['context_interval_s'])}) per s", f"{num(rate)} ev/s",
          "assumptions: regions, *_interval_s")
    peak = rate * A["stream_catch_up_factor"]
    s.add("peak (catch-up after an outage)", f"{num(rate)} × {A['stream_catch_up_factor']:g}", f"{num(peak)} ev/s",
          "assumption: stream_catch_up_factor")
    def after_redis(r: dict[str, Any]) -> bool:  # a before/after run: the current revision's rows
        return r.get("online_store") == "redis" and r.get("version", "after") == "after"

    cons = inp.pick("streaming", "results", after_redis, ("events_per_second", "sustained_events_per_second"),
                    "online_store=redis,version=after") or inp.readme("stream_events_per_s", "streaming")
    need = peak / (cons.value * A["stream_utilisation"])
    s.add("**consumer instances**", f"max({A['min_consumers']:g}, ⌈{num(peak)} ÷ ({num(cons.value)} ev/s × "
          f"{A['stream_utilisation']:g})⌉)", f"**{max(int(A['min_consumers']), math.ceil(need))}** (Kafka partitions "
                                              "≥ that)", f"{cons.source}; assumptions: stream_utilisation, "
                                                         "min_consumers")
    req_peak = imp_day / A["impressions_per_request"] / 86400 * A["request_peak_factor"]
    s.add("what if one event per scoring request (per-user context)", f"⌈{num(req_peak)} ÷ ({num(cons.value)} × "
          f"{A['stream_utilisation']:g})⌉", f"{math.ceil(req_peak / (cons.value * A['stream_utilisation']))} "
                                            "instance(s)", "§5's peak request rate; not the current design")
    fresh = inp.pick("streaming", "results", after_redis, "freshness_p99_ms",
                     "online_store=redis,version=after") or inp.readme("stream_fresh_p99_ms", "streaming")
    s.add("event-to-online freshness p99 (measured)", "--", f"{num(fresh.value)} ms", fresh.source)
    scaled = "streaming_scale" if (inp.files["streaming_scale"] or {}).get("scaling") else "streaming"
    for r in (inp.files[scaled] or {}).get("scaling") or []:
        if r.get("processes") and r.get("events_per_second"):
            s.add(f"measured: {r['processes']} consumer processes on {r.get('partitions', '?')} partitions",
                  f"{num(r['events_per_second'])} ev/s ÷ {r['processes']}",
                  f"{num(r['events_per_second'] / r['processes'])} ev/s per process",
                  f"{inp.src(scaled)} scaling[processes={r['processes']}].events_per_second (on "
                  f"{num((inp.files[scaled] or {}).get('cpus') or MEASURED_CORES.value)} cores)")
    s.notes.append("One consumer is one Python process (about one core). Several processes were measured only on "
                   "one 2-core machine, where 2 and 4 of them share the cores; partitions bound the parallelism "
                   "(events of a region stay in one partition).")
    sections.append(s)

    # 5. serving ---------------------------------------------------------------------------------------------
    s = Section("5. Scoring replicas for a peak request rate at the latency target",
                "A worker is one process with one torch thread (`serving/app.py`: `torch.set_num_threads(1)`), so "
                "one worker ≈ one core; one Feast read with one entity row per request (README § Scoring service).")
    reqs = imp_day / A["impressions_per_request"]
    s.add("requests per day", f"{num(imp_day)} impressions ÷ {A['impressions_per_request']:g} per request", num(reqs),
          "assumption: impressions_per_request")
    s.add("peak requests/s", f"{num(reqs)} ÷ 86,400 × {A['request_peak_factor']:g}", f"{num(req_peak)} req/s",
          "assumption: request_peak_factor")
    def row(r: dict[str, Any]) -> bool:  # the service as shipped: the default runtime (rows before it had none)
        return r.get("store") == "redis" and r.get("path") == "larr" and r.get("server", "onnx") == "onnx"

    rps = inp.pick("serving", "rows", row, "requests_per_s", "store=redis,server=onnx,path=larr") \
        or inp.readme("serving_rps", "serving")
    p99 = inp.pick("serving", "rows", row, "p99_ms", "store=redis,server=onnx,path=larr") \
        or inp.readme("serving_p99_ms", "serving")
    target = A["latency_target_p99_ms"]
    met = p99.value <= target
    s.add("latency target", f"measured p99 {num(p99.value)} ms vs target {num(target)} ms",
          "met" if met else "**missed**: replicas below are at the measured latency, not the target",
          p99.source)
    workers = math.ceil(req_peak / (rps.value * A["serving_utilisation"]))
    s.add("**scoring workers (= cores)**", f"⌈{num(req_peak)} ÷ ({num(rps.value)} req/s × "
          f"{A['serving_utilisation']:g})⌉", f"**{workers}**", f"{rps.source} (one client, 100 candidates); "
                                                               "assumption: serving_utilisation")
    cache = P["pois"] * A["item_cache_bytes_per_item"]
    s.add("item cache per worker", f"{num(P['pois'])} items × {num(A['item_cache_bytes_per_item'])} B", size(cache),
          "README § Scoring service ('suits up to some 10^5 items per worker, not 10^6'); "
          f"× {workers} workers = {size(cache * workers)}")
    s.add("Redis reads at peak", f"{num(req_peak)} req/s × 2 keys (user hash, region hash)",
          f"{num(2 * req_peak)} key reads/s", "README § Scoring service (one entity row per request)")
    all_stages = (inp.files["serving"] or {}).get("stages") or {}
    stage_key = "redis/onnx" if "redis/onnx" in all_stages else "redis"
    stages = all_stages.get(stage_key)
    if stages:
        parts = " + ".join(f"{k.removesuffix('_p50_ms')} {v:.2g}" for k, v in stages.items())
        s.add("where a request's time goes (p50, in-process)", parts + " ms", f"{sum(stages.values()):.3g} ms of "
              "the request", f"{inp.src('serving')} stages.{stage_key}; the rest is HTTP and JSON")
    llm = inp.pick("serving", "rows", lambda r: r.get("store") == "redis" and r.get("path") == "llm"
                   and r.get("llm", "run's CPT backbone") == "run's CPT backbone",  # the measured tiny LLM
                   "requests_per_s", "store=redis,path=llm") or inp.readme("serving_llm_rps", "serving")
    s.add("LLM-in-the-loop, measured tiny LLM: workers",
          f"⌈{num(req_peak)} ÷ ({num(llm.value)} × {A['serving_utilisation']:g})⌉",
          f"{math.ceil(req_peak / (llm.value * A['serving_utilisation']))}", llm.source)
    def p5(r: dict[str, Any]) -> bool:
        return str(r.get("what", "")).startswith("score") and "P5" in str(r.get("what")) \
            and r.get("device", "cpu") == "cpu"

    toks = inp.pick("ctr_training", "scoring", p5, "tokens", "what=score 100 candidates: P5-style") \
        or inp.pick("ctr_training", "results", p5, "tokens", "what=score 100 candidates: P5-style")
    if toks:
        gsec = 2 * P["llm_parameters"] * toks.value / (A["gpu_peak_flops"] * A["inference_mfu"])
        s.add("LLM-in-the-loop with a 7B LLM: GPUs at peak",
              f"{num(req_peak)} req/s × 2 × {num(P['llm_parameters'])} × {num(toks.value)} tokens ÷ "
              f"({num(A['gpu_peak_flops'])} × {A['inference_mfu']:g})", f"{num(req_peak * gsec)} GPUs",
              f"{toks.source}; assumptions: gpu_peak_flops, inference_mfu")
    else:
        s.add("LLM-in-the-loop with a 7B LLM", "not measured: tokens per 100-candidate request", "n/a",
              f"{inp.src('ctr_training')} lacks the P5-style row")
    s.notes.append("Measured with one client on loopback on 2 shared cores (README: load average ~4 during the "
                   "run); throughput under concurrency, and whether p99 holds at the assumed utilisation, were "
                   "not measured.")
    sections.append(s)

    # 6. CTR training -----------------------------------------------------------------------------------------
    s = Section("6. CTR training on the paper's 3.5B samples (one epoch)",
                "The real stage (`larr ctr train`, streaming input and all), fastest CPU configuration measured.")
    st = inp.pick("ctr_training", "processes", lambda r: r.get("device") == "cpu", "samples_per_s",
                  "device=cpu, fastest")
    cores_ctr = float(((inp.files["ctr_training"] or {}).get("cpus")) or cores)
    tr_loop = (((inp.files["ctr_training"] or {}).get("training") or {}).get("cpu") or {}).get("after") or {}
    if st is None and isinstance((tr_loop.get("samples_per_s") or {}).get("larr"), int | float):
        st = Fig(float(tr_loop["samples_per_s"]["larr"]),  # the same run's model loop, before any older figure
                 f"{inp.src('ctr_training')} training.cpu.after.samples_per_s.larr (model loop, not the stage: the "
                 "run has no processes table)")
    if st is None:
        st = inp.readme("ctr_samples_per_s", "ctr_training")
        st.source += " (model loop, not the stage)"
    per = st.value / cores_ctr
    s.add("samples/s per core", f"{num(st.value)} ÷ {num(cores_ctr)} cores", num(per),
          f"{st.source}; cores: the machine's ({MEASURED_CORES.basis})")
    s.add("**one epoch, CPU core-hours**", f"{num(P['training_samples'])} ÷ {num(per)} ÷ 3,600",
          f"**{num(P['training_samples'] / per / 3600)} core-h**", "paper: training_samples")
    s.add("one day of new samples (incremental)", f"{num(imp_day)} ÷ {num(per)} ÷ 3,600",
          f"{num(imp_day / per / 3600)} core-h", "paper: impressions_per_day")
    if isinstance((tr_loop.get("samples_per_s") or {}).get("larr"), int | float):
        loop: Fig | None = Fig(float(tr_loop["samples_per_s"]["larr"]),
                               f"{inp.src('ctr_training')} training.cpu.after.samples_per_s.larr")
    else:
        loop = inp.pick("ctr_training", "results",
                        lambda r: r.get("what") == "train larr" and r.get("device") == "cpu",
                        "samples_per_s", "what=train larr,device=cpu")
    if loop:
        odd = " -- slower than the whole stage in the same file: figures taken on a shared machine are noisy" \
            if loop.value < st.value else ""
        s.add("model loop alone (no input pipeline), core-hours per epoch",
              f"{num(P['training_samples'])} ÷ ({num(loop.value)} ÷ {num(cores_ctr)}) ÷ 3,600",
              f"{num(P['training_samples'] / (loop.value / cores_ctr) / 3600)} core-h", loop.source + odd)
    gpus = [r for r in (inp.files["ctr_training"] or {}).get("processes") or []
            if r.get("device") == "cuda" and r.get("samples_per_s")]
    if gpus:
        g = max(gpus, key=lambda r: r["samples_per_s"] / (r.get("processes") or 1))
        per_gpu = g["samples_per_s"] / (g.get("processes") or 1)
        s.add("one epoch, GPU-hours", f"{num(P['training_samples'])} ÷ ({num(g['samples_per_s'])} samples/s ÷ "
              f"{g.get('processes') or 1} GPUs) ÷ 3,600", f"{num(P['training_samples'] / per_gpu / 3600)} GPU-h",
              f"{inp.src('ctr_training')} processes[device=cuda].samples_per_s, .processes")
    else:
        s.add("one epoch on GPUs (paper: 8 A100)", "not measured: no GPU was lent", "n/a",
              f"{inp.src('ctr_training')} has no device=cuda row")
    sections.append(s)
    return sections


def render(inp: Inputs, sections: list[Section]) -> str:
    out = ["# Capacity plan on paper", "",
           "<!-- Generated by `.venv/bin/python scripts/capacity.py`; do not edit by hand. -->", "",
           "Generated by `.venv/bin/python scripts/capacity.py` from the benchmark JSON (the committed records in "
           "`docs/benchmarks/`, else a local run in `runs/bench/`) and "
           "the assumptions stated in the script; when a benchmark is re-run and the README cites the new run, copy "
           "its JSON into `docs/benchmarks/` and re-run this script (`--bench runs/bench docs/benchmarks` reads a "
           "local run first). Every line shows its arithmetic and the measurement (file + field) or "
           "assumption it starts from. Results in **bold** are the headline figures.", "",
           "Read it as orders of magnitude. Every measurement comes from a 2-core CPU machine (not always the same "
           "one, and at times shared with other jobs); the measured LLM is the ~0.67M-parameter default, not a 7B model; no GPU was lent, "
           "so every GPU figure rests on labelled assumptions.", "",
           "## Inputs", "", "| file | state |", "|---|---|"]
    out += [f"| `{p}` | {st} |" for p, st in inp.seen]
    out += ["", "`runs/` is not in git; `docs/benchmarks/` holds the runs the README cites. A file found in "
            "neither, or a field it lacks, falls back to the figure its README section records (the line says so).",
            "",
            "## Scale and assumptions", "", "| name | value | basis |", "|---|---|---|"]
    out += [f"| {k} | {num(g.value)} | {g.basis} |" for k, g in PAPER.items()]
    out += [f"| {k} | {num(g.value)} | {g.basis} |" for k, g in ASSUME.items()]
    out += [f"| measured_cores | {num(MEASURED_CORES.value)} | {MEASURED_CORES.basis} |"]
    for sec in sections:
        out += ["", f"## {sec.title}", "", sec.intro, "", "| quantity | arithmetic | result | starts from |",
                "|---|---|---|---|"]
        out += [f"| {ln.quantity} | {ln.formula} | {ln.result} | {ln.source} |" for ln in sec.lines]
        out += [*(["", *sec.notes] if sec.notes else [])]
    out += ["", "## Not measured (each would replace an assumption above)", "",
            "- Any GPU figure: encoder texts/s and MFU on a GPU (`benchmarks/llm_stages.py --gpu-scale`), CTR "
            "training on GPUs (`benchmarks/ctr_training.py` on a CUDA machine).",
            "- A 7B-class encoder at all: the cost is scaled from the ~0.67M-parameter default by parameters × "
            "tokens; tokens per text under a 7B tokenizer.",
            "- Spark beyond the largest scale measured, on a cluster, and a one-day `--ds` run.",
            "- Redis `MEMORY USAGE` of real Feast-written vector keys at scale (overheads fitted to a spot check).",
            "- Serving under concurrent load (one client only), p99 at the assumed utilisation, the item cache's "
            "refresh time at 10^6 items.",
            "- Several streaming consumers on one topic; the daily materialisation rate of small statistics rows.",
            "- Production ratios: impressions per request, requests per active user, peak factors, region count, "
            "text change rates (the simulator's or assumed).", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", type=Path, nargs="+", default=[ROOT / "docs" / "benchmarks", ROOT / "runs" / "bench"],
                    help="folders searched in order for each benchmark's JSON (default: the records the README cites, "
                         "committed in docs/benchmarks, then a local run in runs/bench)")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "small", help="the world the benchmarks used")
    ap.add_argument("--definitions", type=Path, default=ROOT / "feature_repo" / "definitions.py")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "capacity.md")
    args = ap.parse_args()
    inp = Inputs(args.bench, args.data)
    inp.seen.append((_rel(args.definitions), "parsed (views, fields, types of the online store)"))
    text = render(inp, plan(inp, parse_definitions(args.definitions)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {_rel(args.out)}")


if __name__ == "__main__":
    main()
