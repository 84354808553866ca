"""The feature spec: validation with line-numbered errors, the split, and that the shipped specs load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from larr.spec import BUILTIN_SPECS, SpecError, load_spec, parse_spec, spec_path, window_of

FOOD = spec_path("food_delivery").read_text()


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("name", BUILTIN_SPECS)
def test_builtin_specs_load(name: str) -> None:
    s = load_spec(name)
    assert s.name == name and len(s.scene) == 10 and set(s.scene) <= set(s.vocab)


def test_unknown_column_names_the_line_field_and_columns() -> None:
    text = _edit(FOOD, 'template: "{district_name}, {region_name}"', 'template: "{distrct_name}, {region_name}"')
    with pytest.raises(SpecError) as err:
        parse_spec(text, "food.yaml")
    msg = str(err.value)
    assert f"food.yaml:{_line_of(text, 'distrct_name')}: fields.POI_loc" in msg
    assert "unknown column 'distrct_name'" in msg and "district_name" in msg  # the columns it could have meant


def test_field_used_by_nothing_is_an_error() -> None:
    text = _edit(FOOD, "  POI_name: {entity: item, column: name, doc: shop name}",
                 "  POI_name: {entity: item, column: name, doc: shop name}\n"
                 "  POI_colour: {entity: item, column: cuisine}")
    with pytest.raises(SpecError, match=r"food.yaml:\d+: fields.POI_colour: field POI_colour is used by nothing"):
        parse_spec(text, "food.yaml")


def test_pair_side_with_no_fields_is_an_error() -> None:
    text = _edit(FOOD, "poi_poi: {same: item, anchor: [poi_business], positive: [poi_basic]}",
                 "poi_poi: {same: item, anchor: [poi_business], positive: []}")
    with pytest.raises(SpecError, match="pairs.poi_poi.positive: pair kind poi_poi: the positive side has no fields"):
        parse_spec(text, "food.yaml")


def test_missing_click_label_is_an_error() -> None:
    text = _edit(FOOD, "labels: {click: click, conversion: order}", "labels: {conversion: order}")
    with pytest.raises(SpecError, match=r"food.yaml:\d+: labels.click: Field required"):
        parse_spec(text, "food.yaml")


def test_label_that_is_not_a_log_column_is_an_error() -> None:
    text = _edit(FOOD, "labels: {click: click, conversion: order}", "labels: {click: clicked, conversion: order}")
    with pytest.raises(SpecError, match="label column 'clicked' is not a column of the log table impressions"):
        parse_spec(text, "food.yaml")


def test_unknown_key_and_bad_yaml_name_the_line() -> None:
    text = _edit(FOOD, "split: {valid_days: 1, test_days: 1}", "split: {valid_day: 1, test_days: 1}")
    with pytest.raises(SpecError, match=rf"food.yaml:{_line_of(text, 'valid_day:')}: split.valid_day: unknown key"):
        parse_spec(text, "food.yaml")
    with pytest.raises(SpecError, match=r"food.yaml:\d+: not valid YAML"):
        parse_spec(FOOD + "\n  bad: [unclosed\n", "food.yaml")


def test_conversion_is_optional_and_closed_sets_are_optional() -> None:
    data = yaml.safe_load(FOOD)
    data["labels"] = {"click": "click"}
    data["history"] = {"from_label": "click", "log_columns": ["time_slot", "weather", "temp_band"],
                       "item_columns": {"poi_name": "name", "cuisine": "cuisine"}}
    for f in ("USER_price",):  # summarises order amounts: no conversions table, no amounts
        del data["fields"][f]
    data["groups"]["user_behaviour"].remove("USER_price")
    data["fields"]["USER_orders"]["history"]["template"] = "{poi_name} ({cuisine})"
    del data["tables"]["users"]["columns"]["age_band"]["allowed"]
    s = parse_spec(yaml.safe_dump(data), "one_task.yaml")
    assert not s.has_conversion and s.labels_out == ("click",)
    assert s.tables["users"].columns["age_band"].allowed is None


def test_split_trailing_days_and_explicit_dates() -> None:
    s = load_spec()
    days = [f"2024-07-0{i}" for i in range(1, 9)]
    w = window_of(s, days)
    assert (w["train"], w["valid"], w["test"], w["cutoff"]) == (days[:6], days[6], days[7], days[6])
    two = parse_spec(_edit(FOOD, "split: {valid_days: 1, test_days: 1}", "split: {valid_days: 2, test_days: 2}"))
    w = window_of(two, days)
    assert w["test_days"] == days[6:] and w["valid_days"] == days[4:6] and w["train"] == days[:4]
    explicit = parse_spec(_edit(FOOD, "split: {valid_days: 1, test_days: 1}",
                                "split: {valid: ['2024-07-05'], test: ['2024-07-06']}"))
    w = window_of(explicit, days)
    assert w["train"] == days[:4] and w["test_days"] == ["2024-07-06"]
    with pytest.raises(ValueError, match="have no partition"):
        window_of(explicit, days[:4])
    with pytest.raises(ValueError, match="needs at least 3"):
        window_of(s, days[:2])


def test_no_code_outside_the_spec_names_a_food_field() -> None:
    """One home: the field list lives in the spec; the core, the jobs and training name no field."""
    root = Path(__file__).resolve().parents[1]
    names = set(load_spec("food_delivery").fields) | set(load_spec("app_usage").fields)
    pattern = re.compile(r"[\"']({})[\"']".format("|".join(sorted(names))))
    offenders = []
    for folder in ("larr", "spark_jobs", "training", "serving"):
        for f in (root / folder).rglob("*.py"):
            if "world" in f.parts:
                continue
            offenders += [f"{f.relative_to(root)}: {m.group(1)}" for m in pattern.finditer(f.read_text())]
    assert not offenders, offenders
