"""The contract validator accepts clean data and rejects each kind of corruption with the right message."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from larr.contract import contract_markdown
from larr.spec import load_spec
from larr.validate import ContractError, require_valid, validate_folder

ROOT = Path(__file__).resolve().parents[1]


def test_clean_world_passes(tiny_world: Path) -> None:
    report = validate_folder(tiny_world)
    assert report.ok, [v.message() for v in report.violations]
    assert report.rows["impressions"] > 1000


def _first_impressions(root: Path) -> Path:
    return sorted((root / "impressions").glob("date=*/*.parquet"))[1]


def _edit(path: Path, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = pd.read_parquet(path)
    pq.write_table(pa.Table.from_pandas(fn(df), preserve_index=False), path)


def _set(col: str, value, n: int = 5, rows: slice | None = None):
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if df[col].dtype.kind in "iub" and not isinstance(value, int | bool):
            df[col] = df[col].astype(object)
        df.loc[df.index[rows or slice(0, n)], col] = value
        return df
    return fn


def _impr(fn):
    return lambda root: _edit(_first_impressions(root), fn)


def _table(name: str, fn):
    return lambda root: _edit(root / f"{name}.parquet", fn)


def _order_without_click(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[df.index[:7], "order"] = 1
    df.loc[df.index[:7], "click"] = 0
    return df


def _duplicate_rows(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.head(4)], ignore_index=True)


def _shift_ts(days: int):
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[df.index[:3], "ts"] = df["ts"].iloc[:3] + pd.Timedelta(days=days)
        return df
    return fn


def _wrong_slot(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    rows = df.index[:5]
    df.loc[rows, "time_slot"] = df.loc[rows, "time_slot"].map(lambda s: "lunch" if s != "lunch" else "dinner")
    return df


def _no_dishes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["dishes"] = [[] if i == 0 else [{"name": "", "description": "x"}] if i == 1 else d
                    for i, d in enumerate(df["dishes"])]
    return df


def _remove_table(root: Path) -> None:
    (root / "users.parquet").unlink()


def _orphan_order(root: Path) -> None:
    f = sorted((root / "orders").glob("date=*/*.parquet"))[0]
    _edit(f, _set("request_id", 1, n=2))


def _poi_created_later(root: Path) -> None:
    imp = pd.read_parquet(_first_impressions(root))
    pid = int(imp["poi_id"].iloc[0])
    _edit(root / "pois.parquet", lambda df: df.assign(
        created_date=df["created_date"].where(df["poi_id"] != pid, pd.Timestamp("2030-01-01").date())))


CORRUPTIONS = {
    # name: (corrupt(root), table, column, rule, offending rows or None for "at least one")
    "null id": (_impr(_set("user_id", None, n=3)), "impressions", "user_id", "not_null", 3),
    "order without click": (_impr(_order_without_click), "impressions", "order", "conversion_implies_click", None),
    "unknown user": (_impr(_set("user_id", 987654321, n=4)), "impressions", "user_id", "foreign_key", 4),
    "unknown weather": (_impr(_set("weather", "tornado", n=2)), "impressions", "weather", "allowed_values", 2),
    "coordinate out of range": (_table("pois", _set("lat", 123.0, n=1)), "pois", "lat", "in_range", 1),
    "negative distance": (_impr(_set("distance_km", -1.0, n=6)), "impressions", "distance_km", "in_range", 6),
    "duplicate key": (_impr(_duplicate_rows), "impressions", "request_id", "unique_key", 4),
    "timestamp outside window": (_impr(_shift_ts(30)), "impressions", "ts", "inside_data_window", 3),
    "row in the wrong partition": (_impr(_shift_ts(1)), "impressions", "ts", "on_partition_date", None),
    "missing column": (_impr(lambda df: df.drop(columns=["weather"])), "impressions", "weather", "column_present", 1),
    "wrong type": (_impr(lambda df: df.assign(click=df["click"].astype(str))), "impressions", "click",
                   "column_type", 1),
    "missing table": (_remove_table, "users", "*", "table_present", 1),
    "district not in region": (_table("users", _set("home_district_id", 0, n=2, rows=slice(-2, None))), "users",
                               "home_district_id", "belongs_to", None),
    "poi before creation": (_poi_created_later, "impressions", "poi_id", "item_exists_at_time", None),
    "orphan order": (_orphan_order, "orders", "request_id", "history_has_impression", 2),
    "time slot not of ts": (_impr(_wrong_slot), "impressions", "time_slot", "matches_derived", 5),
    "poi without dishes": (_table("pois", _no_dishes), "pois", "dishes", "not_empty", 2),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_rejected_with_a_clear_message(world_copy: Path, name: str) -> None:
    corrupt, table, column, rule, count = CORRUPTIONS[name]
    corrupt(world_copy)
    report = validate_folder(world_copy)
    hits = [v for v in report.violations if (v.table, v.column, v.rule) == (table, column, rule)]
    assert hits, f"{name}: expected {table}.{column} [{rule}], got {[v.message() for v in report.violations]}"
    v = hits[0]
    if count is not None:
        assert v.rows == count
    else:
        assert v.rows >= 1
    msg = v.message()
    assert msg.startswith(f"{table}.{column} [{rule}]: {v.rows:,} of")
    assert "Fix:" in msg
    if v.total_rows and rule not in ("column_present", "column_type", "table_present"):
        assert v.examples, "row-level violations carry examples"


def test_cli_exit_codes_and_message(world_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    assert main(["validate", str(world_copy)]) == 0
    _impr(_order_without_click)(world_copy)
    assert main(["validate", str(world_copy)]) == 1
    err = capsys.readouterr().err
    assert "impressions.order [conversion_implies_click]: 7 of" in err
    assert "Examples: request_id=" in err


def test_require_valid_raises_naming_the_rule(world_copy: Path) -> None:
    _table("pois", _set("price_level", 9, n=2))(world_copy)
    with pytest.raises(ContractError, match=r"pois\.price_level \[in_range\]: 2 of"):
        require_valid(world_copy)


def test_window_can_come_from_arguments(world_copy: Path) -> None:
    (world_copy / "manifest.json").unlink()
    assert validate_folder(world_copy).ok  # window derived from the partitions
    from datetime import date
    report = validate_folder(world_copy, start=date(2024, 7, 2))
    assert any(v.rule == "inside_data_window" for v in report.violations)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        validate_folder(tmp_path / "nope")


def test_contract_document_is_generated_from_the_spec() -> None:
    doc = (ROOT / "docs" / "data-contract.md").read_text()
    assert doc == contract_markdown(load_spec()), \
        "docs/data-contract.md is stale: run `larr contract --out docs/data-contract.md`"


def test_copy_helper_does_not_touch_the_session_world(tiny_world: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c"
    shutil.copytree(tiny_world, dst)
    _remove_table(dst)
    assert (tiny_world / "users.parquet").exists()


# ----------------------------------------------------------------------------- partitions and unreadable files
def _rules(report) -> list[tuple[str, str, str]]:
    return [(v.table, v.column, v.rule) for v in report.violations]


def test_key_is_unique_across_the_part_files_of_a_partition(world_copy: Path) -> None:
    """Spark writes several part files per partition: a key repeated in two of them is a duplicate."""
    f = _first_impressions(world_copy)
    df = pd.read_parquet(f)
    half = len(df) // 2
    f.unlink()
    for name, part in (("part-00000.parquet", df.iloc[:half]), ("part-00001.parquet", df.iloc[half - 4:])):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), f.parent / name)
    report = validate_folder(world_copy)
    assert _rules(report) == [("impressions", "request_id", "unique_key")], [v.message() for v in report.violations]
    assert report.violations[0].rows == 4


def test_a_partition_not_named_by_an_iso_date_is_a_violation(world_copy: Path) -> None:
    part = _first_impressions(world_copy).parent
    rows = len(pd.read_parquet(part))
    part.rename(part.with_name("date=July-2"))
    report = validate_folder(world_copy)
    assert _rules(report) == [("impressions", "*", "partition_date")], [v.message() for v in report.violations]
    v = report.violations[0]
    assert (v.rows, v.unit) == (1, "folders")
    msg = v.message()
    assert f"partition=date=July-2, files=1, rows={rows}" in msg
    assert "named date=YYYY-MM-DD" in msg and "move the files of impressions/date=July-2" in msg


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble_pages(path: Path) -> None:
    """Overwrite the column pages but keep the footer: the schema reads, the data does not."""
    data = bytearray(path.read_bytes())
    data[8: len(data) // 2] = b"\xff" * (len(data) // 2 - 8)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _garble_pages])
def test_an_unreadable_log_file_is_reported_once_without_a_cascade(world_copy: Path, damage) -> None:
    f = _first_impressions(world_copy)
    damage(f)
    report = validate_folder(world_copy)  # no traceback
    assert _rules(report) == [("impressions", "*", "readable")], [v.message() for v in report.violations]
    v = report.violations[0]
    n_files = len(list((world_copy / "impressions").rglob("*.parquet")))
    assert (v.rows, v.total_rows, v.unit) == (1, n_files, "files")
    msg = v.message()
    assert f"1 of {n_files} files violate" in msg
    assert f"file={f.relative_to(world_copy)}, error=unreadable parquet: " in msg
    # the orders of the unreadable day are not reported as orphans: the check is skipped, and the message says so
    assert "skipped: orders.request_id [history_has_impression]" in msg


def test_an_unreadable_item_table_skips_the_checks_that_need_its_keys(world_copy: Path) -> None:
    _truncate(world_copy / "pois.parquet")
    report = validate_folder(world_copy)
    assert _rules(report) == [("pois", "*", "readable")], [v.message() for v in report.violations]
    msg = report.violations[0].message()
    for check in ("impressions.poi_id [foreign_key]", "impressions.poi_id [item_exists_at_time]",
                  "orders.poi_id [foreign_key]"):
        assert check in msg
    # validating only the log still names the cause of its skipped checks
    only = validate_folder(world_copy, tables=["impressions"])
    assert _rules(only) == [("pois", "*", "readable")]


def test_unknown_table_name_is_refused(tiny_world: Path) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        validate_folder(tiny_world, tables=["nope"])


# ----------------------------------------------------------------------------- what Spark reads, the validator reads
def test_a_non_parquet_file_beside_the_parts_is_unreadable(world_copy: Path) -> None:
    """spark.read.parquet reads every visible file of a table, whatever its name: so does the validator."""
    part = _first_impressions(world_copy).parent
    pd.read_parquet(part).head(20).to_csv(part / "extra-rows.csv", index=False)
    (part / "_SUCCESS").write_text("")  # hidden names are not data
    (part / ".part-0.crc").write_bytes(b"crc")
    report = validate_folder(world_copy)
    assert _rules(report) == [("impressions", "*", "readable")], [v.message() for v in report.violations]
    assert f"file={(part / 'extra-rows.csv').relative_to(world_copy)}, error=unreadable parquet: " in \
        report.violations[0].message()


def test_files_outside_a_date_folder_are_misplaced(world_copy: Path) -> None:
    f = _first_impressions(world_copy)
    nested = f.parent / "hour=12"
    nested.mkdir()
    shutil.copy(f, nested / "part-9.parquet")
    shutil.copy(f, world_copy / "impressions" / "part-top.parquet")
    report = validate_folder(world_copy)
    hits = [v for v in report.violations if v.rule == "partition_date"]
    assert len(hits) == 1 and hits[0].rows == 2, [v.message() for v in report.violations]
    msg = hits[0].message()
    assert "partition=(table folder), files=1" in msg and f"partition={f.parent.name}/hour=12, files=1" in msg


def test_an_empty_date_folder_is_a_violation(world_copy: Path) -> None:
    """The jobs take every date= folder as a day of the window: an empty one is a day whose data is missing."""
    empty = world_copy / "impressions" / "date=2024-07-30"
    empty.mkdir()
    (empty / "_SUCCESS").write_text("")
    report = validate_folder(world_copy)
    assert _rules(report) == [("impressions", "*", "partition_not_empty")], [v.message() for v in report.violations]
    v = report.violations[0]
    assert (v.rows, v.unit) == (1, "folders")
    assert "partition=date=2024-07-30" in v.message() and "impressions/date=2024-07-30" in v.fix


def test_a_table_written_by_spark_as_a_folder_of_parts_is_read(world_copy: Path) -> None:
    """pois.parquet may be Spark's output folder of part files; its key is unique across the parts."""
    src = world_copy / "pois.parquet"
    df = pd.read_parquet(src)
    src.unlink()
    src.mkdir()
    half = len(df) // 2
    pq.write_table(pa.Table.from_pandas(df.iloc[:half], preserve_index=False), src / "part-00000.snappy.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[half:], preserve_index=False), src / "part-00001.snappy.parquet")
    (src / "_SUCCESS").write_text("")
    assert validate_folder(world_copy).ok
    pq.write_table(pa.Table.from_pandas(df.iloc[:3], preserve_index=False), src / "part-00002.snappy.parquet")
    report = validate_folder(world_copy)
    assert _rules(report) == [("pois", "poi_id", "unique_key")], [v.message() for v in report.violations]
    assert report.violations[0].rows == 3


def test_key_uniqueness_across_parts_ignores_physical_types_and_chunks(world_copy: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A second part written with int32 POI ids repeats keys of the first: the hashes agree; the same
    holds when every file is read in many small record batches."""
    f = _first_impressions(world_copy)
    df = pd.read_parquet(f)
    f.unlink()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f.parent / "part-00000.parquet")
    again = df.head(6).copy()
    second = pa.Table.from_pandas(again, preserve_index=False)
    i = second.schema.get_field_index("poi_id")
    second = second.set_column(i, "poi_id", second.column("poi_id").cast(pa.int32()))
    pq.write_table(second, f.parent / "part-00001.parquet")
    monkeypatch.setattr("larr.validate.CHUNK_ROWS", 500)
    report = validate_folder(world_copy)
    assert _rules(report) == [("impressions", "request_id", "unique_key")], [v.message() for v in report.violations]
    assert report.violations[0].rows == 6


def test_key_hashes_tell_null_from_zero_and_equal_nulls_apart() -> None:
    from larr.contract import tables_from_spec
    from larr.validate import KeySeen, key_hashes

    table = next(t for t in tables_from_spec(load_spec()) if t.name == "impressions")
    a = pd.DataFrame({"request_id": [1, 1, 2, None], "poi_id": [0, None, 3, 4]})
    h = key_hashes(a, table)
    assert h[0] != h[1] and len(set(h.tolist())) == 4
    b = pd.DataFrame({"request_id": pd.array([1, 2, 5], dtype="int64"), "poi_id": pd.array([0, 3, 4], dtype="int32")})
    assert key_hashes(b, table)[:2].tolist() == [h[0], h[2]]  # float (nulls) and int parts agree
    seen = KeySeen(table)
    assert seen.repeated(a).tolist() == [False, False, False, False]
    assert seen.repeated(b).tolist() == [True, True, False]
    assert seen.repeated(pd.concat([a, a])).tolist() == [True] * 8


def test_a_column_missing_in_one_part_names_that_part(world_copy: Path) -> None:
    f = _first_impressions(world_copy)
    df = pd.read_parquet(f)
    f.unlink()
    pq.write_table(pa.Table.from_pandas(df.iloc[:100], preserve_index=False), f.parent / "part-00000.parquet")
    bad = f.parent / "part-00001.parquet"
    pq.write_table(pa.Table.from_pandas(df.iloc[100:].drop(columns=["weather"]), preserve_index=False), bad)
    report = validate_folder(world_copy)
    hits = [v for v in report.violations if v.rule == "column_present"]
    assert [(v.column, v.rows, v.unit) for v in hits] == [("weather", 1, "files")], report.violations
    assert f"file={bad.relative_to(world_copy)}" in hits[0].message()


@pytest.mark.parametrize("text", ["{not json", '{"window": {"start": "July 2"}}', '["a list"]'])
def test_a_malformed_manifest_names_the_file_and_the_fix(world_copy: Path, text: str) -> None:
    (world_copy / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match=r"manifest\.json: unreadable data window .*pass --start/--end"):
        validate_folder(world_copy)
