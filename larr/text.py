"""The one text renderer and the registry of text fields and their special tokens.

Paper section 3.1 wraps every keyword of a description in a pair of special
tokens (``<POI_name>...</POI_name>``).  Every stage that turns a feature value
into text -- the CPT corpus, the contrastive pairs, the scene vocabulary, the
embedding job, the streaming consumer and serving -- calls :func:`render` from
here, so the text the LLM was trained on is byte-identical to the text it is
asked to embed.  The stable key of a feature value (DESIGN section 5) is a hash
of the field name and this rendered text: :func:`feature_key`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextField:
    """A keyword of a description and the special tokens that wrap it."""

    name: str
    entity: str  # "poi", "user" or "scene"
    doc: str
    true_text: str = "yes"
    false_text: str = "no"

    @property
    def open_token(self) -> str:
        return f"<{self.name}>"

    @property
    def close_token(self) -> str:
        return f"</{self.name}>"


_FIELD_LIST: tuple[TextField, ...] = (
    # POI description (paper 3.1): prompt = name + location, target = the rest.
    TextField("POI_name", "poi", "shop name"),
    TextField("POI_loc", "poi", "region and district"),
    TextField("POI_intro", "poi", "free-text introduction"),
    TextField("POI_cuisine", "poi", "cuisine label"),
    TextField("POI_dishes", "poi", "main dishes with short descriptions"),
    TextField("POI_tags", "poi", "tags"),
    TextField("POI_price", "poi", "price level in words"),
    TextField("POI_hours", "poi", "opening hours"),
    TextField("POI_stats", "poi", "statistics: order volume and rating bands"),
    # User description (paper 3.2): profile text vs behaviour text.
    TextField("USER_profile", "user", "gender, age band, occupation"),
    TextField("USER_home", "user", "home region and district"),
    TextField("USER_orders", "user", "recent orders, newest first"),
    TextField("USER_slots", "user", "usual ordering time slots"),
    TextField("USER_price", "user", "price statistics of past orders"),
    TextField("USER_env", "user", "environments of past orders (weather, temperature bands)"),
    # Real-time scene features (paper 3.3): each value embedded separately.
    TextField("SCENE_region", "scene", "current region"),
    TextField("SCENE_district", "scene", "current district"),
    TextField("SCENE_slot", "scene", "meal time slot"),
    TextField("SCENE_day", "scene", "weekday, weekend or holiday"),
    TextField("SCENE_weather", "scene", "weather condition"),
    TextField("SCENE_temp", "scene", "temperature band"),
    TextField("SCENE_area", "scene", "whether the user is outside their home area",
              true_text="out of home area, travelling", false_text="in home area"),
    # Free-text queries (recall case study) use their own token pair.
    TextField("QUERY", "query", "a free-text scene description"),
)

FIELDS: dict[str, TextField] = {f.name: f for f in _FIELD_LIST}
_TOKEN_RE = re.compile(r"<(/?)([A-Za-z]+_?[A-Za-z]*)>")
_PAIR_RE = re.compile(r"<([A-Za-z]+(?:_[A-Za-z]+)?)>(.*?)</\1>", re.S)


def special_tokens() -> list[str]:
    """All open and close tokens, in registry order (added to the tokenizer as special tokens)."""
    out: list[str] = []
    for f in _FIELD_LIST:
        out += [f.open_token, f.close_token]
    return out


def fields_of(entity: str) -> list[str]:
    """Names of the fields that describe one entity kind."""
    return [f.name for f in _FIELD_LIST if f.entity == entity]


def _field(name: str) -> TextField:
    try:
        return FIELDS[name]
    except KeyError:
        raise KeyError(f"unknown text field {name!r}; known fields: {', '.join(FIELDS)}") from None


def _clean(text: str) -> str:
    # Angle brackets would forge or break special tokens; whitespace is normalised so
    # equal values render to equal bytes (and hence equal keys).
    return " ".join(text.replace("<", "(").replace(">", ")").split())


def _format(field: TextField, value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return field.true_text if value else field.false_text
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        name = _clean(str(value.get("name", "")))
        desc = _clean(str(value.get("description", "")))
        return f"{name} ({desc})" if desc else name
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "; ".join(_format(field, v) for v in value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _format(field, value.tolist())
    return _clean(str(value))


def render(field: str, value: Any) -> str:
    """Render one field value as text wrapped in its special tokens.

    Lists are joined with "; ", dish mappings as "name (description)", booleans
    with the field's words, floats with one decimal.
    """
    spec = _field(field)
    return f"{spec.open_token}{_format(spec, value)}{spec.close_token}"


def render_many(items: Iterable[tuple[str, Any]]) -> str:
    """Render several fields into one description, separated by a space."""
    return " ".join(render(name, value) for name, value in items)


def parse(text: str) -> list[tuple[str, str]]:
    """Split a rendered description back into ``(field, inner text)`` pairs."""
    return [(m.group(1), m.group(2)) for m in _PAIR_RE.finditer(text)]


def is_balanced(text: str) -> bool:
    """True when every special token is closed, in order, and no token is unknown."""
    stack: list[str] = []
    for m in _TOKEN_RE.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if name not in FIELDS:
            return False
        if not closing:
            if stack:  # fields do not nest
                return False
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def feature_key(field: str, rendered: str) -> int:
    """Stable non-negative int64 key of a rendered feature value: hash(field name, text)."""
    _field(field)
    digest = hashlib.blake2b(f"{field}\x1f{rendered}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def value_key(field: str, value: Any) -> int:
    """Key of a raw value: render it, then hash it."""
    return feature_key(field, render(field, value))


def text_hash(text: str) -> int:
    """Stable non-negative int64 hash of a whole rendered text (the embedding cache key, with the encoder version)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"larr-text").digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF
