"""The generated Feast definitions name only commands the CLI has (they once named `larr spark embed` and
`larr features export`, neither of which exists)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cli.main import build_parser
from larr.feast_repo import REPO, definitions_source
from larr.spec import BUILTIN_SPECS, load_spec

# a command as the file quotes one: in backticks or opening a parenthesis ("# ----- LLM embeddings (larr embed)")
COMMAND = re.compile(r"(?<=[`(])larr ([a-z][a-z_-]*)(?: ([a-z][a-z_-]*))?")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def unknown_commands(text: str) -> list[str]:
    """Every quoted ``larr COMMAND [ACTION]`` in ``text`` whose command, or whose first positional choice (job,
    action, stage), the CLI's parser does not know."""
    commands = _subparsers(build_parser())
    bad = []
    for m in COMMAND.finditer(text):
        name, word = m.group(1), m.group(2)
        if name not in commands:
            bad.append(m.group(0))
            continue
        choices = next((a.choices for a in commands[name]._actions if not a.option_strings and a.choices), None)
        if choices is not None and word is not None and word not in choices:
            bad.append(m.group(0))
    return bad


def test_the_checker_catches_the_old_names() -> None:
    assert unknown_commands("``larr spark embed`` and ``larr features export`` write it") == \
        ["larr spark embed", "larr features export"]
    assert unknown_commands("``larr embed``, ``larr features publish``, ``larr spark ctr_samples``") == []


def test_shipped_definitions_name_real_commands() -> None:
    text = (REPO / "definitions.py").read_text()
    assert re.search(r"\blarr embed\b", text) and "larr features publish" in text
    assert unknown_commands(text) == []


@pytest.mark.parametrize("name", BUILTIN_SPECS)
def test_every_rendering_names_real_commands(name: str, tmp_path: Path) -> None:
    assert unknown_commands(definitions_source(load_spec(name))) == []
