"""The Feast repo derived from the feature spec: ``definitions_source(spec)`` is the text of a plain,
declarative Feast ``definitions.py`` (Entity, FileSource, FeatureView, PushSource, FeatureService, Field).

The shipped ``feature_repo/definitions.py`` is ``definitions_source(load_spec())``, rendered by
``larr features render-repo`` (a test keeps them equal); :func:`larr.feature_store.prepare_repo` writes the
rendering of the run's spec into every repo it prepares.  Names for the shipped food_delivery spec:

* entities ``user`` (user_id), ``poi`` (poi_id), ``scene_value`` (scene_key) and ``region`` (region_id,
  the spec's ``realtime`` entity);
* views ``user_stats``, ``poi_stats``, ``user_embedding``, ``poi_embedding``, ``scene_value_embedding`` and
  ``region_scene_state`` (push source ``region_scene_push``, only with ``realtime``);
* services ``ctr_model`` (statistics, scene values, real-time state) and ``recall`` (item and user vectors).

Other specs get the same layout under their entity names (``{user}_stats``, ``{item}_embedding`` ...).
"""

from __future__ import annotations

import json
import keyword
import textwrap
from pathlib import Path

from larr.spec import Spec, load_spec

REPO = Path(__file__).resolve().parents[1] / "feature_repo"
RENDER_COMMAND = "larr features render-repo"
# the commands the rendered file names as the writers of its parquet (tests/test_feast_repo_commands.py checks
# every `larr ...` the rendering names against the CLI's parser)
EMBED_COMMAND = "larr embed"
PUBLISH_COMMAND = "larr features publish"
# Feast value types of entity join keys and feature types of item columns, by spec column type.
KEY_TYPES = {"int": "INT64", "string": "STRING"}
FIELD_TYPES = {"int": "Int64", "float": "Float64", "string": "String", "bool": "Bool"}
# The real-time scene state the streaming consumer pushes; its schema is the spec's (larr.realtime.state.state_schema).
REALTIME_VIEW = "region_scene_state"
STATS_TTL_DAYS = 30  # TTL of the statistics and serving views: an older row is not served
REALTIME_PUSH = "region_scene_push"
SCENE_ENTITY, SCENE_KEY, SCENE_VIEW = "scene_value", "scene_key", "scene_value_embedding"
# Names the generated module binds itself; entity names must not shadow them.
_RESERVED = {"os", "timedelta", "Path", "EMBEDDING_DIM", "DATA", "Entity", "FeatureService", "FeatureView",
             "Field", "FileSource", "PushSource", "ValueType", "Array", "Bool", "Float32", "Float64", "Int64",
             "String", "annotations"}


def stat_columns(spec: Spec) -> dict[str, tuple[str, list[str], list[str]]]:
    """``{view: (join key, count columns (Int64), rate columns (Float64))}`` of the statistics views, as the
    ``ctr_samples`` job writes them (conversion columns only when the spec has a conversion label)."""
    conv = spec.has_conversion
    u_counts = ["u_imps", "u_clicks", *(["u_orders"] if conv else [])]
    p_counts = ["p_imps", "p_clicks", *(["p_orders"] if conv else [])]
    return {f"{spec.user_name}_stats": (spec.user_key, u_counts, ["u_ctr"]),
            f"{spec.item_name}_stats": (spec.item_key, p_counts, ["p_ctr", *(["p_cvr"] if conv else [])])}


def stat_views(spec: Spec) -> dict[str, tuple[str, list[str]]]:
    """``{view: (join key, columns)}`` of the statistics views (what ``export_stats`` writes)."""
    return {name: (key, counts + rates) for name, (key, counts, rates) in stat_columns(spec).items()}


def pair_stats(spec: Spec) -> tuple[str, list[str], list[str]]:
    """``(view, count columns, rate columns)`` of the user x item statistics view (``up_*`` of ctr_samples)."""
    counts = ["up_imps", "up_clicks", *(["up_orders"] if spec.has_conversion else [])]
    return f"{spec.user_name}_{spec.item_name}_stats", counts, ["up_ctr"]


def pair_history(spec: Spec) -> tuple[str, str, dict[str, str], list[tuple[str, str]]]:
    """``(view, items column, {pair column: its array column}, [(column, Feast type)])`` of the user-keyed
    copy of the user x item statistics: one row per user and day whose arrays hold, position by position,
    the items and their ``up_*`` values (``up_ctr`` -> ``up_ctr_by_poi``: a feature service needs names
    unique across its views).  The scorer reads it with the user's other rows in one single-entity lookup
    instead of one lookup per candidate pair (``{user}_{item}_stats`` stays for point-in-time joins)."""
    _, counts, rates = pair_stats(spec)
    item_type = "String" if _key_type(spec, spec.item.table, spec.item_key) == "STRING" else "Int64"
    items = f"{spec.item_name}_ids"
    arrays = {c: f"{c}_by_{spec.item_name}" for c in counts + rates}
    schema = [(items, f"Array({item_type})"), *((arrays[c], "Array(Int64)") for c in counts),
              *((arrays[c], "Array(Float64)") for c in rates)]
    return f"{spec.user_name}_{spec.item_name}_history", items, arrays, schema


def scene_key_column(field: str) -> str:
    """Column of a field's scene-value key in the serving views (``key_<FIELD>``)."""
    return f"key_{field}"


def _item_field_types(spec: Spec, columns: list[str], where: str, what: str) -> list[tuple[str, str]]:
    """``[(column, Feast type)]`` of item-table columns a view stores; a clear error for an unstorable type."""
    out = []
    for c in columns:
        t = _column_type(spec, spec.item.table, c)
        if t not in FIELD_TYPES:
            raise ValueError(f"spec {spec.name}: {where}: column {c} is {t}; {what} must be one of "
                             f"{', '.join(FIELD_TYPES)}")
        out.append((c, FIELD_TYPES[t]))
    return out


def context_views(spec: Spec) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """``{view: (entity role, [(column, Feast type)])}`` of what the scorer reads per request besides the
    statistics: the user's scene-field keys of the day (``{user}_context``: profile texts, history texts
    rendered from rows strictly before the day) and the item's CTR columns, creation day (days since
    1970-01-01) and scene-field keys (``{item}_profile``).  Rows come from ``ctr_samples`` per entity and
    day (``larr.feature_store.export_stats``), so serving reads exactly what training read."""
    item_types = _item_field_types(spec, spec.ctr.item_columns, "ctr.item_columns", "a served item column")
    user_keys = [(scene_key_column(f), "Int64") for f in spec.scene if spec.fields[f].entity == "user"]
    item_keys = [(scene_key_column(f), "Int64") for f in spec.scene if spec.fields[f].entity == "item"]
    created = [("created_day", "Int64")] if spec.item.created else []
    return {f"{spec.user_name}_context": ("user", user_keys),
            f"{spec.item_name}_profile": ("item", item_types + created + item_keys)}


def embedding_views(spec: Spec) -> dict[str, str]:
    """``{"user": view, "item": view}``: the embedding views of the two entities."""
    return {"user": f"{spec.user_name}_embedding", "item": f"{spec.item_name}_embedding"}


def _q(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def _text(text: str, fmt: bool = False, width: int = 90) -> str:
    """A (possibly f-) string literal, split into implicitly concatenated pieces of at most ``width``
    characters on continuation lines of a keyword argument."""
    pieces = textwrap.wrap(text, width, drop_whitespace=False, break_long_words=False, break_on_hyphens=False)
    return "\n    ".join(("f" if fmt and "{" in p else "") + _q(p) for p in pieces or [""])


def _column_type(spec: Spec, table: str, column: str) -> str:
    col = spec.tables[table].columns.get(column)
    if col is None:
        raise ValueError(f"spec {spec.name}: table {table} has no column {column!r}")
    return col.type


def _key_type(spec: Spec, table: str, column: str) -> str:
    t = _column_type(spec, table, column)
    if t not in KEY_TYPES:
        raise ValueError(f"spec {spec.name}: key {table}.{column} is {t}; a Feast join key must be one of "
                         f"{', '.join(KEY_TYPES)}")
    return KEY_TYPES[t]


def _realtime_key_type(spec: Spec) -> str:
    """Type of the realtime key: its column in the log, else in any table that has it, else int."""
    rt = spec.realtime
    assert rt is not None
    tables = [spec.log.table] + [t for t in spec.tables if t != spec.log.table]
    for t in tables:
        if rt.key in spec.tables[t].columns:
            return _key_type(spec, t, rt.key)
    return KEY_TYPES["int"]


def _entity_names(spec: Spec) -> list[str]:
    names = [spec.user_name, spec.item_name, SCENE_ENTITY] + ([spec.realtime.entity] if spec.realtime else [])
    for n in names:
        if not n.isidentifier() or keyword.iskeyword(n) or n in _RESERVED:
            taken = ", ".join(sorted(_RESERVED))
            raise ValueError(f"spec {spec.name}: entity name {n!r} cannot name a Feast object in "
                             f"definitions.py (use a Python identifier, not one of {taken})")
    if len(set(names)) != len(names):
        raise ValueError(f"spec {spec.name}: entity names must differ (got {', '.join(names)})")
    return names


def _view(lines: list[str], name: str, entity: str, ttl: str, source: str, schema: list[tuple[str, str]],
          description: str) -> None:
    lines += [f"{name} = FeatureView(",
              f"    name={_q(name)},",
              f"    entities=[{entity}],",
              f"    ttl=timedelta({ttl}),",
              f"    source={source},",
              "    schema=["]
    lines += [f"        Field(name={_q(col)}, dtype={dtype})," for col, dtype in schema]
    lines += ["    ],", f"    description={description},", ")", ""]


def _file_source(lines: list[str], stem: str) -> str:
    var = f"{stem}_source"
    lines += [f"{var} = FileSource(",
              f"    name={_q(var)},",
              f"    path=str(DATA / {_q(stem + '.parquet')}),",
              '    timestamp_field="event_timestamp",',
              ")"]
    return var


def definitions_source(spec: Spec) -> str:
    """The text of the Feast ``definitions.py`` of ``spec`` (deterministic: same spec, same text)."""
    user, item = spec.user_name, spec.item_name
    item_cols = _item_field_types(spec, spec.embed.item_columns, "embed.item_columns",
                                  "a column stored beside the item vector")
    stats = stat_columns(spec)
    emb = embedding_views(spec)
    rt = spec.realtime
    pair_view, pair_counts, pair_rates = pair_stats(spec)
    ctx = context_views(spec)
    hist_view, _, _, hist_schema = pair_history(spec)
    served = [pair_view, hist_view, *ctx]
    bound = [*_entity_names(spec), *stats, *(f"{s}_source" for s in stats), *served,
             *(f"{s}_source" for s in served), f"{user}_embeddings_source",
             f"{item}_embeddings_source", "scene_value_embeddings_source", *emb.values(), SCENE_VIEW,
             *([REALTIME_VIEW, f"{REALTIME_VIEW}_source", REALTIME_PUSH] if rt else []), "ctr_model", "recall"]
    clash = sorted({n for n in bound if bound.count(n) > 1})
    if clash:
        raise ValueError(f"spec {spec.name}: the entity names give two Feast objects the same name ({clash})")

    types = {"Array", "Float32", "Float64", "Int64", "String"} | {t for _, t in item_cols}
    types |= {t for _, schema in ctx.values() for _, t in schema}
    types |= {t for _, t in realtime_schema(spec)} if rt else set()
    feast_names = ["Entity", "FeatureService", "FeatureView", "Field", "FileSource", "ValueType"]
    if rt:
        feast_names.append("PushSource")

    entity_list = f"{user} ({spec.user_key}), {item} ({spec.item_key}), {SCENE_ENTITY} ({SCENE_KEY})"
    if rt:
        entity_list += f", {rt.entity} ({rt.key}, real-time scene state)"
    doc = textwrap.fill(f"Entities: {entity_list}.  The offline parquet lives under ``LARR_FEATURE_DATA`` "
                        f"(default ``data/features`` at the repository root): ``{EMBED_COMMAND}`` writes the "
                        f"embedding tables, ``{PUBLISH_COMMAND}`` the statistics"
                        + (" and the real-time scene history" if rt else "") + ".", width=110,
                        break_on_hyphens=False)
    lines = [
        f"# Generated from the feature spec {spec.name!r} by `{RENDER_COMMAND}` (larr/feast_repo.py).",
        "# Do not edit by hand: change the spec and render again (a test keeps the shipped file in sync).",
        f'"""Feast definitions of the larr feature platform for the feature spec ``{spec.name}``.',
        "",
        *doc.splitlines(),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import os",
        "from datetime import timedelta",
        "from pathlib import Path",
        "",
        f"from feast import {', '.join(sorted(feast_names))}",
        f"from feast.types import {', '.join(sorted(types))}",
        "",
        'EMBEDDING_DIM = int(os.environ.get("LARR_EMBEDDING_DIM", "128"))',
        'DATA = Path(os.environ.get("LARR_FEATURE_DATA", '
        'Path(__file__).resolve().parents[1] / "data" / "features"))',
        "",
        "# ----- entities",
    ]

    def entity(name: str, key: str, value_type: str, description: str) -> None:
        lines.extend([f"{name} = Entity(",
                      f"    name={_q(name)},",
                      f"    join_keys=[{_q(key)}],",
                      f"    value_type=ValueType.{value_type},",
                      f"    description={_q(description)},",
                      ")"])

    for name, ent in ((user, spec.user), (item, spec.item)):
        entity(name, ent.key, _key_type(spec, ent.table, ent.key), spec.tables[ent.table].doc or f"a {name}")
    entity(SCENE_ENTITY, SCENE_KEY, "INT64",
           "hash(field, rendered text) of one feature value (larr.text.feature_key)")
    if rt:
        entity(rt.entity, rt.key, _realtime_key_type(spec),
               f"a {rt.entity}: the key of the real-time scene state")

    lines += ["", "# ----- offline sources (parquet under DATA)"]
    stat_sources = {name: _file_source(lines, name) for name in (*stats, *served)}
    user_src = _file_source(lines, f"{user}_embeddings")
    item_src = _file_source(lines, f"{item}_embeddings")
    scene_src = _file_source(lines, "scene_value_embeddings")
    rt_src = _file_source(lines, REALTIME_VIEW) if rt else None
    lines.append("")

    lines.append("# ----- statistics: one row per entity and day, from days strictly before that day")
    for (name, (_key, counts, rates)), ent in zip(stats.items(), (user, item), strict=True):
        _view(lines, name, ent, f"days={STATS_TTL_DAYS}", stat_sources[name],
              [(c, "Int64") for c in counts] + [(c, "Float64") for c in rates],
              _text(f"{ent} statistics from days strictly before the row's event day (ctr_samples)"))

    _view(lines, pair_view, f"{user}, {item}", f"days={STATS_TTL_DAYS}", stat_sources[pair_view],
          [(c, "Int64") for c in pair_counts] + [(c, "Float64") for c in pair_rates],
          _text(f"{user} x {item} statistics from days strictly before the row's event day (ctr_samples)"))
    _view(lines, hist_view, user, f"days={STATS_TTL_DAYS}", stat_sources[hist_view], hist_schema,
          _text(f"the same {user} x {item} statistics keyed by {user} alone: arrays aligned by position with "
                f"the {item} ids, so a scorer reads every pair of a {user} in one lookup"))

    lines.append("# ----- per-request inputs of the scorer: the row of the day, as ctr_samples joined it")
    what = {"user": f"keys of the {user}'s scene fields for the day (history from days strictly before it)",
            "item": f"the {item}'s CTR columns, creation day (days since 1970-01-01) and scene-field keys"}
    for name, (role, schema) in ctx.items():
        _view(lines, name, user if role == "user" else item, f"days={STATS_TTL_DAYS}", stat_sources[name], schema,
              _text(what[role]))

    lines.append(f"# ----- LLM embeddings ({EMBED_COMMAND})")
    vec = [("embedding", "Array(Float32)"), ("encoder_version", "String")]
    _view(lines, emb["user"], user, "days=365", user_src, vec,
          _text(f"LLM embedding ({{EMBEDDING_DIM}}-d) of the {user}'s text ({', '.join(spec.embed.user)})",
                True))
    shown = f", with what recall displays ({', '.join(c for c, _ in item_cols)})" if item_cols else ""
    item_doc = (f"LLM embedding ({{EMBEDDING_DIM}}-d) of the {item}'s text ({', '.join(spec.embed.item)})"
                f"{shown}")
    _view(lines, emb["item"], item, "days=365", item_src, vec + item_cols, _text(item_doc, True))
    _view(lines, SCENE_VIEW, SCENE_ENTITY, "days=3650", scene_src,
          [("embedding", "Array(Float32)"), ("field", "String"), ("encoder_version", "String")],
          _text("LLM embedding ({EMBEDDING_DIM}-d) of every distinct feature text (the scene vocabulary)",
                True))

    ctr_features = [*stats, *served, SCENE_VIEW]
    if rt:
        _realtime_view(lines, spec, rt_src)
        ctr_features.append(REALTIME_VIEW)

    lines += ["# ----- services",
              "ctr_model = FeatureService(",
              '    name="ctr_model",',
              f"    features=[{', '.join(ctr_features)}],",
              ")",
              "recall = FeatureService(",
              '    name="recall",',
              f"    features=[{emb['item']}, {emb['user']}],",
              ")",
              ""]
    return "\n".join(lines)


def realtime_schema(spec: Spec) -> list[tuple[str, str]]:
    """``[(column, Feast type)]`` of the real-time view: exactly the row the streaming consumer pushes
    (:func:`larr.realtime.state.state_schema`, derived from the spec's ``realtime`` events)."""
    from larr.realtime.state import state_schema

    return state_schema(spec)


def _realtime_view(lines: list[str], spec: Spec, source: str | None) -> None:
    """The push source and the real-time view: one row per ``realtime.entity``, the consumer's columns."""
    from larr.realtime.state import scene_schema

    rt = spec.realtime
    assert rt is not None
    groups = ", ".join(scene_schema(spec).groups)
    lines += ["# ----- real-time scene state (schema fixed: what larr/realtime/state.py pushes)",
              f"{REALTIME_PUSH} = PushSource(name={_q(REALTIME_PUSH)}, batch_source={source})"]
    _view(lines, REALTIME_VIEW, rt.entity, "hours=6", REALTIME_PUSH, realtime_schema(spec),
          _text(f"real-time scene state per {rt.entity}, pushed by the Kafka consumer (streaming/); each "
                f"group ({groups}) carries its own event time in ms (*_ts) so older events never win"))


def write_definitions(spec: Spec | None = None, path: Path | None = None) -> Path:
    """Render ``spec`` (default: the shipped food_delivery) into ``path`` (default:
    feature_repo/definitions.py)."""
    path = Path(path or REPO / "definitions.py")
    path.write_text(definitions_source(spec or load_spec()))
    return path


if __name__ == "__main__":
    print(write_definitions())
