"""The front door every entry point shares: the config arguments and the user-error boundary.

Why one module: the ``larr`` subcommands, the ``python -m training.*`` stages and the ``spark-submit``-able
jobs each used to declare ``--profile/--config/--set/--seed`` and catch errors their own way, and the ones
that forgot turned a user's typo (malformed YAML, a missing path, a bad date) into a traceback.  Here:

* :func:`add_config_args` / :func:`config_parent` -- the one set of config arguments (profile < ``--config``
  < ``--set`` < ``--seed``, the order :func:`larr.config.load_config` applies), so a launcher can pass them
  on unchanged and every entry point resolves the same config from the same words;
* argument types (:func:`iso_date`, :func:`existing_dir`, :func:`override`) that let argparse name the
  flag whose value is wrong, with its usual exit code 2;
* :class:`UserError` and :func:`run_main` -- the error boundary: a mistake the user can fix ends in one
  line ``error: <what> (<where>): <how to fix>`` on stderr and exit code :data:`USAGE`; input whose
  *contents* break a rule (a data contract, an incomplete model folder) exits :data:`FAILED` with the
  message; anything else is a bug and keeps its traceback.

The core must not import ``cli``, ``training``, ``serving`` or the simulators: this module depends on
``larr.config`` and ``larr.spec`` only.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from larr.config import PROFILES, ConfigError, LarrConfig, load_config
from larr.spec import SpecError

USAGE = 2  # how the command was called is wrong: arguments, config, a missing or unreadable input, bad YAML
FAILED = 1  # the call was fine but the input's contents break a rule (data contract, incomplete artefact)

# Errors that say "the invocation is wrong"; every one has a message that names the thing to fix.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, SpecError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
    PermissionError, ValidationError, yaml.YAMLError)


class UserError(ValueError):
    """A mistake the user can fix, said as *what* went wrong, *where* (a flag, a file, a column) and the *fix*.

    A ``ValueError`` so that code which already turns ``ValueError`` into a message keeps working."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.line())

    def line(self) -> str:
        """``what (where): fix``, the parts that are given."""
        text = self.what
        if self.where:
            text += f" ({self.where})"
        if self.fix:
            text += f": {self.fix}"
        return text


# ------------------------------------------------------------------------------------------ argument types
def iso_date(text: str) -> date:
    """argparse type of a day: refuses ``2024-13-01`` naming the format (argparse names the flag)."""
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD ({err})") from None


def existing_dir(text: str) -> str:
    """argparse type of an input folder: a typo is reported as such, not as a missing file deep inside it."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def require_dir(path: str | Path, flag: str, fix: str) -> Path:
    """An input folder that has a default (argparse would check the default before naming a missing required
    argument, so those are checked here, after parsing): the folder, or a :class:`UserError` naming the flag."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"no such folder: {p}" if not p.exists() else f"{p} is a file, not a folder", flag, fix)
    return p


def override(text: str) -> str:
    """argparse type of ``--set``: ``KEY=VALUE`` with a non-empty key (the value is checked by the config)."""
    key, eq, _ = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. --set world.n_users=500 "
                                         "(`larr config` prints every key)")
    return text


# ------------------------------------------------------------------------------------------ config arguments
def add_config_args(p: argparse.ArgumentParser, set_help: str | None = None) -> None:
    """The config arguments of every entry point, in their own help section."""
    g = p.add_argument_group("config", "resolved as profile < --config FILE < --set KEY=VALUE < --seed; "
                                       "`larr config` prints the result")
    g.add_argument("--profile", choices=PROFILES, default="small",
                   help="named profile: tiny (tests, seconds), small (the demo), large (Spark scale); "
                        "tiny_realistic, small_realistic: the same sizes, realistic world variant")
    g.add_argument("--config", metavar="YAML", help="YAML file whose keys override the profile")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", type=override,
                   help=set_help or "override one key, e.g. --set world.n_users=500 (repeatable)")
    g.add_argument("--seed", type=int, help="random seed (overrides the profile's)")


def config_parent(set_help: str | None = None) -> argparse.ArgumentParser:
    """A parent parser (``parents=[config_parent()]``) holding only the config arguments."""
    p = argparse.ArgumentParser(add_help=False)
    add_config_args(p, set_help)
    return p


def has_config_args(args: argparse.Namespace) -> bool:
    return all(hasattr(args, k) for k in ("profile", "config", "overrides", "seed"))


def config_from_args(args: argparse.Namespace) -> LarrConfig:
    """The resolved config of parsed config arguments (raises :class:`ConfigError` naming the key)."""
    return load_config(args.profile, args.config, args.overrides, args.seed)


def config_argv(args: argparse.Namespace) -> list[str]:
    """The config arguments as words again, for re-executing a stage under a launcher."""
    out = ["--profile", args.profile]
    if args.config:
        out += ["--config", args.config]
    for o in args.overrides:
        out += ["--set", o]
    if args.seed is not None:
        out += ["--seed", str(args.seed)]
    return out


# ------------------------------------------------------------------------------------------ error boundary
def _one_line(text: str) -> str:
    """A multi-line message (``invalid X:`` then one indented line per item) as one line."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    head, rest = lines[0], "; ".join(lines[1:])
    return f"{head} {rest}" if head.endswith(":") else "; ".join(lines)


def describe(err: BaseException) -> str:
    """The one-line message of a user error."""
    if isinstance(err, UserError):
        return _one_line(err.line())
    if isinstance(err, ValidationError):
        items = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors())
        return f"invalid {err.title}: {items}"
    if isinstance(err, yaml.YAMLError):
        mark = getattr(err, "problem_mark", None)
        where = f" ({mark.name} line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"malformed YAML{where}: {getattr(err, 'problem', None) or _one_line(str(err))}: fix its syntax"
    if isinstance(err, OSError) and err.filename is not None and len(err.args) > 1:  # raised by the OS
        reason = {FileNotFoundError: "no such file or folder", IsADirectoryError: "a folder, not a file",
                  NotADirectoryError: "not a folder", PermissionError: "permission denied",
                  FileExistsError: "already exists"}.get(type(err), err.strerror or type(err).__name__)
        return f"{reason} ({err.filename}): check the path"
    return _one_line(str(err)) or type(err).__name__


def exit_code(err: BaseException) -> int | None:
    """:data:`USAGE`, :data:`FAILED`, or None for a bug (let it raise with its traceback)."""
    if isinstance(err, (UserError, *USER_ERRORS)):
        return USAGE
    if isinstance(err, ValueError):  # ContractError, RegistryError, ArtifactError, ...: bad input contents
        return FAILED
    return None


def report(err: BaseException, stream: Any = None) -> int | None:
    """Print a user error's line and return its exit code; None (nothing printed) for a bug."""
    code = exit_code(err)
    if code is None:
        return None
    text = describe(err) if code == USAGE else str(err)
    print(f"error: {text}", file=stream or sys.stderr)
    return code


def run_main(fn: Callable[[], int | None]) -> int:
    """Run an entry point's body inside the boundary: its exit code, or a user error's line and code."""
    try:
        return int(fn() or 0)
    except Exception as err:  # noqa: BLE001 - re-raised unless it is a user error
        code = report(err)
        if code is None:
            raise
        return code


def entry_point(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Decorator of ``main(argv)``: the same function inside the boundary (argparse's exit 2 is kept)."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        return run_main(lambda: main(argv))

    return wrapper
