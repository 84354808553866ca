"""The scoring request and response, derived from the feature spec (so OpenAPI documents the spec's fields).

A request is the user, 1..500 candidates and the request context: the log columns the model reads that are
neither the user, nor the candidate, nor an online feature -- the time (required), the place (food: region,
district, coordinates), and optionally the values the real-time scene state normally provides (weather,
temperature, day type, time slot), used when the state is missing or stale.  Columns the spec sends per
candidate (``serving.per_candidate``; food: ``distance_km``) ride on each candidate.  Types are the spec's
column types, so a malformed payload is a 422 that names the field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from larr.spec import Spec

MAX_CANDIDATES = 500
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # what an online-store key can hold


def _in_timestamp_range(v: datetime) -> datetime:
    """A time pandas can hold (1678..2261): any other would fail later, after validation, as a 500."""
    if not 1678 <= v.year <= 2261 or (v.utcoffset() is not None and not 1678 <= (v - v.utcoffset()).year <= 2261):
        raise ValueError("a time between the years 1678 and 2261")
    return v


Timestamp = Annotated[datetime, AfterValidator(_in_timestamp_range)]
PY_TYPES: dict[str, Any] = {"int": Int64, "float": float, "string": str, "bool": bool, "timestamp": Timestamp,
                            "date": date}


def log_type(spec: Spec, column: str) -> str:
    """Spec type of a raw log column (``string`` for anything unusual)."""
    col = spec.tables[spec.log.table].columns.get(column)
    return col.type if col is not None else "string"


def needed_log_columns(spec: Spec) -> list[str]:
    """Raw log columns the model's inputs are computed from (derived columns expanded to their inputs), in
    log order: the CTR columns, the scene fields' inputs and the time.  Labels and keys are not included."""
    log_t = spec.tables[spec.log.table]
    want: set[str] = {spec.log.time}

    def add(col: str, seen: frozenset[str] = frozenset()) -> None:
        if col in seen:
            return
        if col in log_t.derived:
            for c in log_t.derived[col].inputs():
                add(c, seen | {col})
        elif col in log_t.lookups:
            want.add(log_t.lookups[col].via)
        elif col in log_t.columns:
            want.add(col)

    for c in (*spec.ctr.categorical, *spec.ctr.numeric):
        add(c)
    for f in spec.scene:
        fs = spec.fields[f]
        if fs.entity == "scene":
            for c in ([fs.column] if fs.column is not None else fs.inputs()):
                add(c)
    skip = {spec.user_key, spec.item_key, *spec.labels_out, *spec.ctr.item_columns}
    return [c for c in log_t.columns if c in want and c not in skip]


def context_columns(spec: Spec) -> list[str]:
    """Log columns a request sends once (everything needed but the per-candidate columns)."""
    per = set(spec.serving.per_candidate)
    return [c for c in needed_log_columns(spec) if c not in per]


def request_models(spec: Spec) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(ScoreRequest, Candidate)`` pydantic models of ``spec``."""
    key_type = PY_TYPES.get(log_type(spec, spec.item_key), Int64)
    user_type = PY_TYPES.get(log_type(spec, spec.user_key), Int64)
    strict = ConfigDict(extra="forbid", allow_inf_nan=False)
    ctx_fields: dict[str, Any] = {}
    for c in context_columns(spec):
        doc = spec.tables[spec.log.table].columns[c].doc or c
        if c == spec.log.time:
            ctx_fields[c] = (Timestamp, Field(..., description=f"{doc} (local time, as in the log)"))
        else:
            ctx_fields[c] = (PY_TYPES.get(log_type(spec, c), str) | None, Field(None, description=doc))
    context = create_model("RequestContext", __config__=strict, **ctx_fields)
    cand_fields: dict[str, Any] = {"id": (key_type, Field(..., description=f"the candidate's {spec.item_key}"))}
    for c in spec.serving.per_candidate:
        doc = spec.tables[spec.log.table].columns[c].doc if c in spec.tables[spec.log.table].columns else c
        cand_fields[c] = (PY_TYPES.get(log_type(spec, c), float) | None, Field(None, description=doc))
    candidate = create_model("Candidate", __config__=strict, **cand_fields)
    request = create_model(
        "ScoreRequest", __config__=strict,
        user_id=(user_type, Field(..., description=f"the user's {spec.user_key}")),
        candidates=(list[candidate], Field(..., min_length=1, max_length=MAX_CANDIDATES,  # type: ignore[valid-type]
                                           description=f"1..{MAX_CANDIDATES} candidate {spec.item_name}s")),
        context=(context, Field(..., description="the request context")),
        sort_by=(str, Field("p_ctr", pattern="^(p_ctr|p_ctcvr)$", description="ranking score")),
    )
    return request, candidate


class Scored(BaseModel):
    id: Any
    p_ctr: float
    p_ctcvr: float | None = Field(None, description="null when the spec has no conversion label")
    fallbacks: list[str] = Field(default_factory=list, description="inputs of this candidate that fell back")


class ScoreResponse(BaseModel):
    model_version: str
    path: str = Field(description="larr (no LLM on the request path) or llm (the P5-style baseline)")
    scores: list[Scored]
    fallbacks: list[str] = Field(default_factory=list, description="request-level inputs that fell back")
