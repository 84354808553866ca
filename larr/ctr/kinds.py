"""Names of CTR model kinds: ``BACKBONE`` or ``BACKBONE+MODULE`` (``deepfm+larr``, ``dcnv2+noal``).

Kept free of torch so that the CLI's ``--help`` and the champion check read them without loading a model.
``larr`` and ``noal`` name the paper's PLE versions (``ple+larr``, ``ple+noal``); the network of each backbone
is in ``larr/ctr/models.py``.
"""

from __future__ import annotations

BACKBONE_NAMES = ("ple", "wdl", "deepfm", "dcnv2")
MODULES = ("larr", "noal")  # larr: scene vector + alignment loss; noal: the scene vector alone
ALIASES = {"larr": "ple+larr", "noal": "ple+noal"}  # the paper's names for its PLE versions
KINDS = (*BACKBONE_NAMES, "larr", "noal", *(f"{b}+{m}" for b in BACKBONE_NAMES if b != "ple" for m in MODULES))
KIND_HELP = ("BACKBONE[+MODULE]: backbone ple, wdl, deepfm or dcnv2, module larr (scene encoder + alignment) or "
             "noal (scene encoder, no alignment); larr = ple+larr, noal = ple+noal")


def parse_kind(kind: str) -> tuple[str, str | None]:
    """``(backbone, module or None)`` of a model kind; a clear error for an unknown one."""
    backbone, plus, module = ALIASES.get(kind, kind).partition("+")
    if backbone not in BACKBONE_NAMES or (plus and module not in MODULES):
        raise ValueError(f"unknown CTR model kind {kind!r}: use BACKBONE or BACKBONE+MODULE with BACKBONE one of "
                         f"{', '.join(BACKBONE_NAMES)} and MODULE one of {', '.join(MODULES)} (larr = ple+larr, "
                         "noal = ple+noal)")
    return backbone, module or None


def canonical_kind(kind: str) -> str:
    """The kind's one name: ``ple+larr`` is ``larr``, the paper's."""
    backbone, module = parse_kind(kind)
    name = f"{backbone}+{module}" if module else backbone
    return {v: k for k, v in ALIASES.items()}.get(name, name)


def uses_scene(kind: str) -> bool:
    """Whether a model of ``kind`` reads the scene-value table."""
    return parse_kind(kind)[1] is not None
