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
    "order without click": (_impr(_order_without_click), "impressions", "order", "order_implies_click", None),
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
                               "home_district_id", "district_in_region", None),
    "poi before creation": (_poi_created_later, "impressions", "poi_id", "poi_exists_at_time", None),
    "orphan order": (_orphan_order, "orders", "request_id", "order_has_impression", 2),
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
    from larr.cli import main

    assert main(["validate", str(world_copy)]) == 0
    _impr(_order_without_click)(world_copy)
    assert main(["validate", str(world_copy)]) == 1
    err = capsys.readouterr().err
    assert "impressions.order [order_implies_click]: 7 of" in err
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


def test_contract_document_is_generated_from_code() -> None:
    doc = (ROOT / "docs" / "data-contract.md").read_text()
    assert doc == contract_markdown(), "docs/data-contract.md is stale: run `larr contract --out docs/data-contract.md`"


def test_copy_helper_does_not_touch_the_session_world(tiny_world: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c"
    shutil.copytree(tiny_world, dst)
    _remove_table(dst)
    assert (tiny_world / "users.parquet").exists()
