"""Start a training stage under the launcher the config names (``launch.cpt``, ``launch.contrastive``,
``launch.ctr``), so the Airflow DAGs and a person at a shell run a stage the same way.

An empty prefix means in-process (the CLI calls the stage's ``run``).  Otherwise the stage's own entry point
(``python -m training.cpt`` ...) is re-executed under the prefix -- ``torchrun --nproc_per_node 2``,
``deepspeed --num_gpus 8``, a multi-node torchrun/deepspeed line, ``python`` -- with its output streamed and
its exit code returned.  The prefix may start with wrappers (``srun``, ``env X=1``); the last launcher word
in it decides how the module is named (torchrun and deepspeed: ``--module M``; python: ``-m M``)."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("larr.train")
MODULE_FLAG = {"torchrun": "--module", "deepspeed": "--module", "torch.distributed.run": "--module",
               "accelerate": "-m"}


def _launcher(word: str) -> str | None:
    name = Path(word).name
    if name in MODULE_FLAG:
        return name
    if name.startswith("python"):
        return "python"
    return None


def _resolve(program: str) -> str:
    """A program found on PATH, else beside this interpreter (the venv's ``bin``: ``.venv/bin/larr`` finds
    ``.venv/bin/torchrun`` without an activated venv)."""
    if "/" in program or shutil.which(program):
        return program
    beside = Path(sys.executable).parent / program
    return str(beside) if beside.exists() else program


def command(prefix: str, module: str, args: list[str]) -> list[str]:
    """The full command line that runs ``module`` with ``args`` under ``prefix``."""
    words = shlex.split(prefix)
    kinds = [(i, _launcher(w)) for i, w in enumerate(words)]
    found = [(i, k) for i, k in kinds if k]
    if not found:
        raise ValueError(f"launch prefix {prefix!r} names no launcher: use torchrun, deepspeed or python "
                         "(optionally after wrappers such as srun or env), or leave it empty for in-process")
    if "torch.distributed.run" in words:
        flag = "--module"
    else:
        last = found[-1][1]
        flag = "-m" if last == "python" else MODULE_FLAG[last]  # type: ignore[index]
    first = found[0][0]
    words[first] = _resolve(words[first]) if words[first] != "python" else sys.executable
    return [*words, flag, module, *args]


def launch(prefix: str, module: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``module`` under ``prefix`` from the repository root, output streamed; returns its exit code.
    ``env``: variables to set on top of this process's (e.g. ``CUDA_VISIBLE_DEVICES=""`` for a CPU run)."""
    cmd = command(prefix, module, args)
    log.info("launching: %s", shlex.join(cmd))
    root = Path(__file__).resolve().parents[1]
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [full.get("PYTHONPATH")])])
    return subprocess.run(cmd, env=full, check=False).returncode


def config_args(profile: str, config: str | None, overrides: list[str], seed: int | None) -> list[str]:
    """The CLI's config arguments, passed on unchanged so the launched stage resolves the same config."""
    out = ["--profile", profile]
    if config:
        out += ["--config", config]
    for o in overrides:
        out += ["--set", o]
    if seed is not None:
        out += ["--seed", str(seed)]
    return out
