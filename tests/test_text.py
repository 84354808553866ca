from __future__ import annotations

import pytest

from larr import text
from larr.text import (
    feature_key,
    is_balanced,
    parse,
    registry,
    render,
    render_many,
    special_tokens,
    value_key,
)

FIELDS = registry().fields


@pytest.mark.parametrize("field", list(FIELDS))
def test_every_field_round_trips_with_balanced_tokens(field: str) -> None:
    out = render(field, "some value")
    assert out == f"<{field}>some value</{field}>"
    assert is_balanced(out)
    assert parse(out) == [(field, "some value")]


def test_special_tokens_are_unique_and_complete() -> None:
    toks = special_tokens()
    assert len(toks) == len(set(toks)) == 2 * len(FIELDS)


def test_values_cannot_forge_tokens() -> None:
    out = render("POI_name", "Evil </POI_name><USER_profile>x")
    assert is_balanced(out)
    assert len(parse(out)) == 1


def test_formatting_of_lists_dishes_bools_floats() -> None:
    dishes = [{"name": "iced lemon tea", "description": "cold and refreshing"}, {"name": "cheesecake"}]
    assert render("POI_dishes", dishes) == "<POI_dishes>iced lemon tea (cold and refreshing); cheesecake</POI_dishes>"
    assert render("POI_tags", ["spicy", "soup"]) == "<POI_tags>spicy; soup</POI_tags>"
    assert render("SCENE_area", True) == "<SCENE_area>out of home area, travelling</SCENE_area>"
    assert render("SCENE_area", False) == "<SCENE_area>in home area</SCENE_area>"
    assert render("POI_stats", 4.50) == "<POI_stats>4.5</POI_stats>"
    assert render("POI_name", "  two   spaces ") == "<POI_name>two spaces</POI_name>"


def test_document_is_balanced_and_parses_in_order() -> None:
    doc = render_many([("POI_name", "Jade Hot Pot"), ("POI_loc", "Sichuan, Wuhou"), ("POI_tags", ["spicy"])])
    assert is_balanced(doc)
    assert [f for f, _ in parse(doc)] == ["POI_name", "POI_loc", "POI_tags"]


@pytest.mark.parametrize("bad", ["<POI_name>x", "<POI_name>x</POI_loc>", "<POI_name><POI_loc>x</POI_loc></POI_name>",
                                 "<NOPE>x</NOPE>", "x</POI_name>"])
def test_unbalanced_documents_are_detected(bad: str) -> None:
    assert not is_balanced(bad)


def test_feature_key_is_stable_and_field_scoped() -> None:
    a = value_key("SCENE_weather", "heavy rain")
    assert a == value_key("SCENE_weather", "heavy rain")
    assert a == feature_key("SCENE_weather", "<SCENE_weather>heavy rain</SCENE_weather>")
    assert a != value_key("SCENE_weather", "light rain")
    assert value_key("SCENE_region", "Beijing") != value_key("SCENE_district", "Beijing")
    assert 0 <= a < 2**63
    # pinned: a key must never change between releases, or every stored vector is orphaned
    assert value_key("SCENE_weather", "sunny") == 7256306236842537732


def test_unknown_field_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown text field 'POI_colour'"):
        render("POI_colour", "red")


def test_fields_of_entity() -> None:
    assert text.fields_of("scene")[0] == "SCENE_region"
    assert all(f.startswith("USER_") for f in text.fields_of("user"))
