"""Which code a benchmark measured: the short commit of this checkout, marked when tracked files differ from it
(a record taken on an edited tree must not pass for that commit's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def revision(dirty_mark: str = "-dirty") -> str:
    """``git rev-parse --short HEAD`` of the checkout, with ``dirty_mark`` appended when a tracked file changed."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return rev + (dirty_mark if dirty else "")
