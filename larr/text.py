"""The one text renderer and the registry of text fields and their special tokens.

Paper section 3.1 wraps every keyword of a description in a pair of special
tokens (``<POI_name>...</POI_name>``).  Every stage that turns a feature value
into text -- the CPT corpus, the contrastive pairs, the scene vocabulary, the
embedding job, the streaming consumer and serving -- calls :func:`render` from
here, so the text the LLM was trained on is byte-identical to the text it is
asked to embed.  The stable key of a feature value (DESIGN section 5) is a hash
of the field name and this rendered text: :func:`feature_key`.  The fields and
their tokens come from the feature spec (:mod:`larr.spec`): :func:`registry`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from larr.spec import DEFAULT_SPEC, QUERY_FIELD, Spec, load_spec


@dataclass(frozen=True)
class TextField:
    """A keyword of a description and the special tokens that wrap it."""

    name: str
    entity: str  # "user", the item entity's name (e.g. "poi"), "scene" or "query"
    doc: str
    true_text: str = "yes"
    false_text: str = "no"

    @property
    def open_token(self) -> str:
        return f"<{self.name}>"

    @property
    def close_token(self) -> str:
        return f"</{self.name}>"


class TextRegistry:
    """The text fields of one feature spec and their special tokens (built by :func:`registry`)."""

    def __init__(self, fields: Iterable[TextField]):
        self._list = (*tuple(fields), TextField(QUERY_FIELD, "query", "a free-text scene description"))
        self.fields: dict[str, TextField] = {f.name: f for f in self._list}

    def special_tokens(self) -> list[str]:
        """All open and close tokens, in spec order (added to the tokenizer as special tokens)."""
        out: list[str] = []
        for f in self._list:
            out += [f.open_token, f.close_token]
        return out

    def fields_of(self, entity: str) -> list[str]:
        """Names of the fields that describe one entity kind."""
        return [f.name for f in self._list if f.entity == entity]

    def field(self, name: str) -> TextField:
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"unknown text field {name!r}; known fields: {', '.join(self.fields)}") from None

    def render(self, field: str, value: Any) -> str:
        """Render one field value as text wrapped in its special tokens.

        Lists are joined with "; ", dish-like mappings as "name (description)", booleans with the field's
        words, floats with one decimal.
        """
        spec = self.field(field)
        return f"{spec.open_token}{_format(spec, value)}{spec.close_token}"

    def render_many(self, items: Iterable[tuple[str, Any]]) -> str:
        """Render several fields into one description, separated by a space."""
        return " ".join(self.render(name, value) for name, value in items)

    def is_balanced(self, text: str) -> bool:
        """True when every special token is closed, in order, and no token is unknown."""
        stack: list[str] = []
        for m in _TOKEN_RE.finditer(text):
            closing, name = m.group(1) == "/", m.group(2)
            if name not in self.fields:
                return False
            if not closing:
                if stack:  # fields do not nest
                    return False
                stack.append(name)
            elif not stack or stack.pop() != name:
                return False
        return not stack

    def feature_key(self, field: str, rendered: str) -> int:
        """Stable non-negative int64 key of a rendered feature value: hash(field name, text)."""
        self.field(field)
        return _key(field, rendered)

    def value_key(self, field: str, value: Any) -> int:
        """Key of a raw value: render it, then hash it."""
        return _key(field, self.render(field, value))


_REGISTRIES: dict[int, tuple[Spec, TextRegistry]] = {}


def registry(spec: Spec | None = None) -> TextRegistry:
    """The registry of ``spec`` (default: the shipped ``food_delivery`` spec).  A field's entity is named as
    in the spec (``user``, the item's name such as ``poi``, ``scene``)."""
    spec = spec if spec is not None else load_spec(DEFAULT_SPEC)
    hit = _REGISTRIES.get(id(spec))
    if hit is None or hit[0] is not spec:
        names = {"user": spec.user_name, "item": spec.item_name, "scene": "scene"}
        reg = TextRegistry(TextField(n, names[f.entity], f.doc, f.true_text, f.false_text)
                           for n, f in spec.fields.items())
        hit = _REGISTRIES[id(spec)] = (spec, reg)
    return hit[1]


_TOKEN_RE = re.compile(r"<(/?)([A-Za-z]+_?[A-Za-z]*)>")
_PAIR_RE = re.compile(r"<([A-Za-z]+(?:_[A-Za-z]+)?)>(.*?)</\1>", re.S)


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
    """:meth:`TextRegistry.render` of the default spec (the registry of a spec: :func:`registry`)."""
    return registry().render(field, value)


def render_many(items: Iterable[tuple[str, Any]]) -> str:
    return registry().render_many(items)


def special_tokens() -> list[str]:
    return registry().special_tokens()


def fields_of(entity: str) -> list[str]:
    return registry().fields_of(entity)


def is_balanced(text: str) -> bool:
    return registry().is_balanced(text)


def feature_key(field: str, rendered: str) -> int:
    return registry().feature_key(field, rendered)


def value_key(field: str, value: Any) -> int:
    return registry().value_key(field, value)


def parse(text: str) -> list[tuple[str, str]]:
    """Split a rendered description back into ``(field, inner text)`` pairs."""
    return [(m.group(1), m.group(2)) for m in _PAIR_RE.finditer(text)]


def _key(field: str, rendered: str) -> int:
    digest = hashlib.blake2b(f"{field}\x1f{rendered}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def text_hash(text: str) -> int:
    """Stable non-negative int64 hash of a whole rendered text (the embedding cache key, with the encoder version)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"larr-text").digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF
