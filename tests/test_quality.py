"""Data-quality suites (larr/quality) with real Great Expectations: each suite passes on the clean tiny world
and fails on a targeted corruption with the right expectation and column; the raw suite and `larr validate`
agree on clean and corrupted data; `larr quality check` exit codes, summary and Data Docs."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from larr import feature_store as fsx
from larr.config import load_config
from larr.contract import tables_from_spec
from larr.quality import Inputs, QualityError, check, require
from larr.quality.gx import SuiteResult
from larr.spec import load_spec
from larr.validate import validate_folder

CFG = load_config("tiny")
SPEC = load_spec(CFG.spec)
LOG = SPEC.log.table
CLICK, CONVERSION = SPEC.labels.click, SPEC.labels.conversion


# ----------------------------------------------------------------------------------------- helpers
def failed(result: SuiteResult) -> set[tuple[str, str, str]]:
    """(batch, expectation, column) of every failed expectation."""
    return {(r.batch, r.expectation, r.column) for r in result.failures}


def edit(file: Path, fn: Callable[[pd.DataFrame], pd.DataFrame], keep_schema: bool = True) -> None:
    """Rewrite one parquet file through ``fn`` (types kept, so only the values change)."""
    table = pq.read_table(file)
    df = fn(table.to_pandas())
    out = pa.Table.from_pandas(df, schema=table.schema if keep_schema else None, preserve_index=False)
    pq.write_table(out, file)


def log_file(world: Path, day: int = -1) -> Path:
    return sorted(sorted((world / LOG).glob("date=*"))[day].glob("*.parquet"))[0]


def window_end(world: Path) -> date:
    return date.fromisoformat(json.loads((world / "manifest.json").read_text())["window"]["end"])


# ----------------------------------------------------------------------------------------- raw vs validate
def test_raw_suite_and_validate_pass_on_the_clean_world(tiny_world: Path, tmp_path: Path) -> None:
    report = validate_folder(tiny_world, spec=SPEC)
    result = check("raw", tiny_world, CFG, inputs=Inputs(run_date=window_end(tiny_world)), out=tmp_path / "q")
    assert report.ok, [v.message() for v in report.violations]
    assert result.success, result.summary()
    assert set(result.batches) == {"schema", *SPEC.tables}
    assert result.docs_index.exists() and result.result_json.exists()
    saved = json.loads(result.result_json.read_text())
    assert saved["success"] and saved["checkpoints"][LOG]["success"]


def _fk_unknown(world: Path) -> None:
    key = SPEC.user_key
    edit(log_file(world), lambda df: df.assign(**{key: np.where(np.arange(len(df)) < 3, 10**9, df[key])}))


def _belongs_to(world: Path) -> None:
    # move a few log rows to a district of another region: the district exists, its region does not match
    t = SPEC.tables[LOG]
    b = t.belongs_to[0]
    ref_table, ref_col = t.columns[b.column].references.split(".")
    parents = pd.read_parquet(world / f"{ref_table}.parquet")
    pcol = b.parent_column or b.parent

    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for i in range(3):
            other = parents.loc[parents[pcol] != df.at[i, b.parent], ref_col].iloc[0]
            df.at[i, b.column] = other
        return df
    edit(log_file(world), fn)


def _conversion_without_click(world: Path) -> None:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        rows = df.index[df[CONVERSION] == 1][:2]
        df.loc[rows, CLICK] = 0
        return df
    edit(log_file(world), fn)


def _outside_allowed(world: Path) -> None:
    col = next(c for c, s in SPEC.tables[LOG].columns.items() if s.allowed and s.type == "string")
    edit(log_file(world), lambda df: df.assign(**{col: np.where(np.arange(len(df)) < 2, "tornado", df[col])}))


def _out_of_range(world: Path) -> None:
    col = next(c for c, s in SPEC.tables[LOG].columns.items() if s.min is not None and s.type == "float")
    lo = SPEC.tables[LOG].columns[col].min
    edit(log_file(world), lambda df: df.assign(**{col: np.where(np.arange(len(df)) < 2, lo - 1, df[col])}))


def _empty_referenced_table(world: Path) -> None:
    edit(world / f"{_root_table()}.parquet", lambda df: df.iloc[0:0])


def _missing_table(world: Path) -> None:
    (world / f"{SPEC.user.table}.parquet").unlink()


def _duplicate_key(world: Path) -> None:
    edit(world / f"{SPEC.item.table}.parquet", lambda df: pd.concat([df, df.iloc[:1]], ignore_index=True))


def _null(world: Path) -> None:
    t = SPEC.tables[SPEC.user.table]
    col = next(c for c, s in t.columns.items() if not s.nullable and s.type == "string")
    edit(world / f"{SPEC.user.table}.parquet",
         lambda df: df.assign(**{col: df[col].where(np.arange(len(df)) >= 2)}))


def _wrong_type(world: Path) -> None:
    t = SPEC.tables[SPEC.item.table]
    col = next(c for c, s in t.columns.items() if s.type == "int" and c != SPEC.item_key)
    edit(world / f"{SPEC.item.table}.parquet", lambda df: df.assign(**{col: df[col].astype(str)}),
         keep_schema=False)


def _empty_date_folder(world: Path) -> None:
    (world / LOG / "date=2030-01-01").mkdir()


def _root_table() -> str:
    """A table that others reference and that references nothing (food: regions)."""
    refs = {c.references.split(".")[0] for t in SPEC.tables.values() for c in t.columns.values() if c.references}
    return next(n for n in refs if not any(c.references for c in SPEC.tables[n].columns.values()))


def _referrer() -> tuple[str, str]:
    """(table, column) of the first foreign key into :func:`_root_table`."""
    root = _root_table()
    return next((n, c) for n, t in SPEC.tables.items() for c, s in t.columns.items()
                if s.references and s.references.split(".")[0] == root)


def _fk_column() -> str:
    return SPEC.user_key


def _allowed_column() -> str:
    return next(c for c, s in SPEC.tables[LOG].columns.items() if s.allowed and s.type == "string")


def _range_column() -> str:
    return next(c for c, s in SPEC.tables[LOG].columns.items() if s.min is not None and s.type == "float")


def _null_column() -> str:
    return next(c for c, s in SPEC.tables[SPEC.user.table].columns.items() if not s.nullable and s.type == "string")


def _int_item_column() -> str:
    cols = SPEC.tables[SPEC.item.table].columns
    return next(c for c, s in cols.items() if s.type == "int" and c != SPEC.item_key)


# corruption -> (validate: table, column, rule), (GE: batch, expectation, column)
CORRUPTIONS = {
    "unknown_key": (_fk_unknown, lambda: (LOG, _fk_column(), "foreign_key"),
                    lambda: (LOG, "expect_column_values_to_be_in_set", f"{_fk_column()}.foreign_key")),
    "broken_belongs_to": (_belongs_to,
                          lambda: (LOG, SPEC.tables[LOG].belongs_to[0].column, "belongs_to"),
                          lambda: (LOG, "expect_column_values_to_be_in_set",
                                   f"{SPEC.tables[LOG].belongs_to[0].column}.belongs_to")),
    "conversion_without_click": (_conversion_without_click, lambda: (LOG, CONVERSION, "conversion_implies_click"),
                                 lambda: (LOG, "expect_column_values_to_be_in_set",
                                          f"{CONVERSION}.conversion_implies_click")),
    "value_outside_allowed_set": (_outside_allowed, lambda: (LOG, _allowed_column(), "allowed_values"),
                                  lambda: (LOG, "expect_column_values_to_be_in_set", _allowed_column())),
    "value_out_of_range": (_out_of_range, lambda: (LOG, _range_column(), "in_range"),
                           lambda: (LOG, "expect_column_values_to_be_between", _range_column())),
    "empty_table": (_empty_referenced_table, lambda: (*_referrer(), "foreign_key"),
                    lambda: (_referrer()[0], "expect_column_values_to_be_in_set", f"{_referrer()[1]}.foreign_key")),
    "missing_table": (_missing_table, lambda: (SPEC.user.table, "*", "table_present"),
                      lambda: ("schema", "expect_column_values_to_be_in_set", "present")),
    "duplicate_key": (_duplicate_key, lambda: (SPEC.item.table, SPEC.item_key, "unique_key"),
                      lambda: (SPEC.item.table, "expect_column_values_to_be_unique", SPEC.item_key)),
    "null": (_null, lambda: (SPEC.user.table, _null_column(), "not_null"),
             lambda: (SPEC.user.table, "expect_column_values_to_not_be_null", _null_column())),
    "empty_date_folder": (_empty_date_folder, lambda: (LOG, "*", "partition_not_empty"),
                          lambda: ("schema", "expect_column_values_to_be_in_set", "present")),
    "wrong_type": (_wrong_type, lambda: (SPEC.item.table, _int_item_column(), "column_type"),
                   lambda: ("schema", "expect_column_values_to_be_in_set", "type_ok")),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_raw_suite_and_validate_fail_on_the_same_corruption(name: str, world_copy: Path, tmp_path: Path) -> None:
    corrupt, by_validate, by_ge = CORRUPTIONS[name]
    corrupt(world_copy)
    report = validate_folder(world_copy, spec=SPEC)
    result = check("raw", world_copy, CFG, out=tmp_path / "q")
    assert not report.ok, f"{name}: validate passed"
    assert not result.success, f"{name}: the raw suite passed"
    assert by_validate() in {(v.table, v.column, v.rule) for v in report.violations}, report.violations
    assert by_ge() in failed(result), result.summary()


def test_an_empty_table_nothing_points_at_passes_both(world_copy: Path, tmp_path: Path) -> None:
    """The contract asks a table to exist, not to have rows; the suite follows it."""
    referenced = {c.references.split(".")[0] for t in SPEC.tables.values() for c in t.columns.values()
                  if c.references} | {n for t in tables_from_spec(SPEC) for r in t.rules for n in r.needs}
    name = next(n for n, t in SPEC.tables.items() if n not in referenced and not t.partitioned)
    edit(world_copy / f"{name}.parquet", lambda df: df.iloc[0:0])
    assert validate_folder(world_copy, spec=SPEC).ok
    result = check("raw", world_copy, CFG, out=tmp_path / "q")
    assert result.success and result.batches[name] == 0, result.summary()


def test_a_sampled_table_keeps_every_offending_row(world_copy: Path, tmp_path: Path) -> None:
    _conversion_without_click(world_copy)
    small = CFG.model_copy(update={"quality": CFG.quality.model_copy(update={"max_rows": 1000})})
    result = check("raw", world_copy, small, out=tmp_path / "q")
    assert result.batches[LOG] < validate_folder(world_copy, spec=SPEC).rows[LOG]
    assert any("uniform sample" in n for n in result.notes)
    assert failed(result) == {(LOG, "expect_column_values_to_be_in_set", f"{CONVERSION}.conversion_implies_click")}
    assert result.failures[0].observed.startswith("2 of ")


def test_raw_suite_checks_the_newest_partition_against_the_run_date(world_copy: Path, tmp_path: Path) -> None:
    end = window_end(world_copy)
    ok = check("raw", world_copy, CFG, inputs=Inputs(run_date=end), out=tmp_path / "q")
    late = check("raw", world_copy, CFG, inputs=Inputs(run_date=end + timedelta(days=2)), out=tmp_path / "q")
    lagged = check("raw", world_copy, CFG.model_copy(update={"quality": CFG.quality.model_copy(
        update={"partition_lag_days": 2})}), inputs=Inputs(run_date=end + timedelta(days=2)), out=tmp_path / "q")
    assert ok.success and lagged.success
    assert failed(late) == {(LOG, "expect_column_max_to_be_between", "_partition_date")}
    row = next(r for r in late.failures)
    assert row.observed == end.isoformat() and (end + timedelta(days=2)).isoformat() in row.bound
    # the newest day went missing: the contract has no run date, so `larr validate` cannot see it
    for name, t in SPEC.tables.items():
        if t.partitioned:
            shutil.rmtree(world_copy / name / f"date={end.isoformat()}")
    assert validate_folder(world_copy, spec=SPEC).ok
    assert not check("raw", world_copy, CFG, inputs=Inputs(run_date=end), out=tmp_path / "q").success


# ----------------------------------------------------------------------------------------- corpus
@pytest.fixture
def jobs_copy(tiny_jobs: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "jobs"
    for name in ("cpt_corpus", "contrastive_pairs", "ctr_samples"):
        shutil.copytree(tiny_jobs / name, dst / name)
    return dst


def _newest_file(folder: Path) -> Path:
    return sorted(sorted(p for p in folder.glob("*=*") if p.is_dir())[-1].glob("*.parquet"))[0]


def test_corpus_suite_passes_on_the_jobs_outputs(tiny_jobs: Path, tmp_path: Path) -> None:
    result = check("corpus", tiny_jobs, CFG, out=tmp_path / "q")
    assert result.success, result.summary()
    assert set(result.batches) == {"cpt_corpus", "contrastive_pairs"}


def test_corpus_suite_fails_on_each_corruption(jobs_copy: Path, tmp_path: Path) -> None:
    kinds = list(SPEC.pairs)
    pairs = jobs_copy / "contrastive_pairs"
    for f in sorted(pairs.glob("ds=*/*.parquet")):  # one pair kind is gone
        edit(f, lambda df: df[df["kind"] != kinds[-1]])
    corpus = _newest_file(jobs_copy / "cpt_corpus")

    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[0, "text"] = re.sub(r"</[A-Za-z_]+>", "", df.loc[0, "text"], count=1)  # a field token left open
        df.loc[1, "text"] = " ".join([df.loc[1, "text"]] * 8)  # a document far longer than the context window
        return df
    edit(corpus, fn)
    result = check("corpus", jobs_copy, CFG, out=tmp_path / "q")
    assert failed(result) == {
        ("contrastive_pairs", "expect_column_distinct_values_to_contain_set", "kind"),
        ("cpt_corpus", "expect_column_values_to_be_in_set", "text.balanced"),
        ("cpt_corpus", "expect_column_values_to_be_between", "text.tokens"),
    }, result.summary()
    kind_row = next(r for r in result.failures if r.column == "kind")
    assert kinds[-1] in kind_row.observed


# ----------------------------------------------------------------------------------------- samples
def test_samples_suite_passes_on_the_jobs_outputs(tiny_jobs: Path, tmp_path: Path) -> None:
    result = check("samples", tiny_jobs, CFG, out=tmp_path / "q")
    assert result.success, result.summary()


def test_samples_suite_catches_a_test_day_in_training(jobs_copy: Path, tmp_path: Path) -> None:
    test_day = _newest_file(jobs_copy / "ctr_samples")
    edit(test_day, lambda df: df.assign(split=np.where(np.arange(len(df)) < len(df) // 2, "train", df["split"])))
    result = check("samples", jobs_copy, CFG, out=tmp_path / "q")
    assert failed(result) == {("days", "expect_column_pair_values_to_be_equal", "split = split.expected")}, \
        result.summary()
    assert "split=train" in result.failures[0].observed


def test_samples_suite_catches_oov_ids_and_dead_labels(jobs_copy: Path, tmp_path: Path) -> None:
    key = SPEC.user_key
    for f in sorted(_newest_file(jobs_copy / "ctr_samples").parent.glob("*.parquet")):  # foreign ids
        edit(f, lambda df: df.assign(**{key: df[key] + 10**9}))
    first_day = sorted(sorted((jobs_copy / "ctr_samples").glob("date=*"))[0].glob("*.parquet"))
    for f in first_day:  # the click label lost on one training day
        edit(f, lambda df: df.assign(**{CLICK: 0, CONVERSION: 0} if CONVERSION else {CLICK: 0}))
    result = check("samples", jobs_copy, CFG, out=tmp_path / "q")
    assert failed(result) == {
        ("oov", "expect_column_max_to_be_between", f"{key}.oov_share"),
        ("days", "expect_column_values_to_be_between", f"{CLICK}.rate"),
    }, result.summary()
    assert next(r for r in result.failures if r.column == f"{key}.oov_share").observed == "1"


# ----------------------------------------------------------------------------------------- embeddings
@pytest.fixture(scope="module")
def embedded(spark, tiny_world: Path, tiny_jobs: Path, tiny_llm: dict, tmp_path_factory: pytest.TempPathFactory
             ) -> dict:
    """The embedding job run once on the tiny world with the tiny encoder (jobs copied: it writes its cache)."""
    from spark_jobs import embed_features

    root = tmp_path_factory.mktemp("quality_embed")
    jobs = root / "jobs"
    shutil.copytree(tiny_jobs, jobs)
    features = root / "features"
    embed_features.run(spark, CFG, tiny_world, jobs, validate=False, encoder=tiny_llm["out"] / "encoder",
                       features=features)
    return {"jobs": jobs, "features": features}


def test_embeddings_suite_passes_on_the_embedding_job(embedded: dict, tmp_path: Path) -> None:
    result = check("embeddings", embedded["features"], CFG, inputs=Inputs(vocab=embedded["jobs"]),
                   out=tmp_path / "q")
    assert result.success, result.summary()
    assert set(result.batches) == {"scene_value_embeddings", f"{SPEC.item_name}_embeddings",
                                   f"{SPEC.user_name}_embeddings", "scene_vocab"}


def test_embeddings_suite_fails_on_each_corruption(embedded: dict, tmp_path: Path) -> None:
    features = tmp_path / "features"
    shutil.copytree(embedded["features"], features)
    scene = features / "scene_value_embeddings.parquet"

    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.iloc[: int(len(df) * 0.9)].copy()  # a tenth of the vocabulary loses its vector
        v = [np.asarray(x, dtype=np.float32) for x in df["embedding"]]
        v[0] = v[0] * 2  # not normalised
        v[1] = v[1].copy()
        v[1][3] = np.nan  # not finite
        v[2] = v[2][:-1]  # one dimension short
        df["embedding"] = [list(map(float, x)) for x in v]
        return df
    scene_df = fn(pd.read_parquet(scene))
    scene_df.to_parquet(scene, index=False)
    result = check("embeddings", features, CFG, inputs=Inputs(vocab=embedded["jobs"] / "scene_vocab"),
                   out=tmp_path / "q")
    assert failed(result) == {
        ("scene_value_embeddings", "expect_column_values_to_be_between", "embedding.norm"),
        ("scene_value_embeddings", "expect_column_values_to_be_in_set", "embedding.finite"),
        ("scene_value_embeddings", "expect_column_values_to_be_between", "embedding.dim"),
        ("scene_vocab", "expect_column_values_to_be_in_set", "key.has_vector"),
    }, result.summary()
    norm = next(r for r in result.failures if r.column == "embedding.norm")
    assert f"scene_key={scene_df['scene_key'].iloc[0]}" in norm.observed


# ----------------------------------------------------------------------------------------- online
@pytest.fixture(scope="module")
def online_repo(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite Feast repo whose real-time view holds the tiny world's replayed scene state."""
    features = tmp_path_factory.mktemp("quality_features")
    fsx.export_region_scene(tiny_world, features, SPEC)
    repo = fsx.prepare_repo(tmp_path_factory.mktemp("quality_repo"), features, "sqlite", spec=SPEC)
    fsx.apply(repo)
    w = json.loads((tiny_world / "manifest.json").read_text())["window"]
    fsx.materialize(repo, datetime.fromisoformat(w["start"]) - timedelta(days=1),
                    datetime.fromisoformat(w["end"]) + timedelta(days=1), views=[SPEC.realtime.view])
    return repo


def _state_file(repo: Path) -> Path:
    return Path((repo / ".larr-features").read_text().strip()) / f"{SPEC.realtime.view}.parquet"


def test_online_suite_passes_on_the_online_store_and_the_offline_rows(online_repo: Path, tiny_world: Path,
                                                                      tmp_path: Path) -> None:
    online = check("online", online_repo, CFG, inputs=Inputs(raw=tiny_world), out=tmp_path / "q")
    offline = check("online", _state_file(online_repo), CFG, out=tmp_path / "q2")
    assert online.success, online.summary()
    assert offline.success, offline.summary()
    assert "online store" in " ".join(online.notes) and online.batches["state"] == offline.batches["state"]
    late = check("online", online_repo, CFG, inputs=Inputs(as_of=datetime.now()), out=tmp_path / "q3")
    assert not late.success  # a replay of 2024 is not fresh today


def test_online_suite_names_a_stale_key(online_repo: Path, tiny_world: Path, tmp_path: Path) -> None:
    rt = SPEC.realtime
    rows = pd.read_parquet(_state_file(online_repo))
    stale = rows[rt.key].iloc[0]
    newest = rows["event_timestamp"].max()
    cut = rows[(rows[rt.key] != stale) | (rows["event_timestamp"] <= newest - pd.Timedelta(hours=6))]
    file = tmp_path / f"{rt.view}.parquet"
    cut.to_parquet(file, index=False)
    result = check("online", file, CFG, out=tmp_path / "q")
    assert failed(result), result.summary()
    assert all(r.expectation == "expect_column_values_to_be_between" and r.column.endswith("_ts.lag_minutes")
               for r in result.failures), result.summary()
    assert all(f"{rt.key}={stale}" in r.observed for r in result.failures)
    # through Feast: the stale state written into the online store is caught the same way
    store = fsx.store(online_repo)
    old = cut[cut[rt.key] == stale].sort_values("event_timestamp").tail(1)
    store.write_to_online_store(rt.view, old.reset_index(drop=True))
    try:
        result = check("online", online_repo, CFG, inputs=Inputs(raw=tiny_world), out=tmp_path / "q2")
    finally:  # the module's repo back to its clean state
        fresh = rows[rows[rt.key] == stale].sort_values("event_timestamp").tail(1)
        store.write_to_online_store(rt.view, fresh.reset_index(drop=True))
    assert not result.success and all(f"{rt.key}={stale}" in r.observed for r in result.failures)


# ----------------------------------------------------------------------------------------- CLI and gate
def test_cli_exit_codes_summary_and_data_docs(world_copy: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    out = tmp_path / "q"
    base = ["quality", "check", "raw", str(world_copy), "--profile", "tiny", "--out", str(out)]
    assert main([*base, "--run-date", window_end(world_copy).isoformat()]) == 0
    text = capsys.readouterr().out
    assert "quality suite raw" in text and "PASSED" in text
    docs = Path(text.strip().splitlines()[-1].split("data docs: ", 1)[1])
    assert docs.name == "index.html" and docs.exists() and docs.is_relative_to(out.resolve())
    assert (out / "result.json").exists() and (out / "gx").is_dir()

    _conversion_without_click(world_copy)
    assert main(base) == 1
    text = capsys.readouterr().out
    assert "FAILED" in text and "expect_column_values_to_be_in_set" in text
    assert f"{CONVERSION}.conversion_implies_click" in text and "data docs: " in text

    assert main(["quality", "check", "raw", str(tmp_path / "nope"), "--profile", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_require_raises_with_the_summary(world_copy: Path, tmp_path: Path) -> None:
    _conversion_without_click(world_copy)
    with pytest.raises(QualityError) as exc:
        require("raw", world_copy, CFG, out=tmp_path / "q")
    assert f"{CONVERSION}.conversion_implies_click" in str(exc.value) and "data docs:" in str(exc.value)
