"""Errors a user can fix are one line and exit code 2, never a traceback, at every entry point.

The ``larr`` subcommands are enumerated from the real parser (a new subcommand or action is covered without
touching this file); the ``python -m`` stages and the spark-submit jobs are found by their ``__main__`` guard.
Each one gets ``--help`` and a bad invocation; then the cases of issue 15, one by one.  Everything runs
in-process (``main(argv)``, catching ``SystemExit``) except the spark-submit scripts' ``--help``, which must
work as a file run from anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.main import build_parser
from cli.main import main as larr_main

ROOT = Path(__file__).resolve().parents[1]
BAD_KEY = "no_such_key=1"


# ----------------------------------------------------------------------------------------------- helpers
def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                         argparse.ArgumentParser]]:
    """Every runnable command of ``parser``: (words, its parser), descending into nested subcommands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


LEAVES = {" ".join(words): parser for words, parser in _leaves(build_parser())}


def _entry_modules(package: str) -> list[str]:
    """Modules of ``package`` that run as a program (``if __name__ == "__main__"``)."""
    guard = re.compile(r"^if __name__ == [\"']__main__[\"']:", re.M)
    return sorted(f"{package}.{f.stem}" for f in (ROOT / package).glob("*.py") if guard.search(f.read_text()))


TRAINING = _entry_modules("training")
SPARK_JOBS = _entry_modules("spark_jobs")


def _parser_of(module_name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    if hasattr(module, "build_parser"):
        return module.build_parser()
    from spark_jobs.common import job_parser  # the four plain jobs share the common job arguments

    return job_parser(module.NAME, module.run)


def _required_argv(parser: argparse.ArgumentParser, folder: Path) -> list[str]:
    """Words that satisfy every required argument of ``parser`` (an existing folder for each path, the first
    choice of a choice, 1 for a number) and every input folder with a default (``--data data/small`` need
    not exist here), so that what is refused next is what the test adds."""
    argv: list[str] = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not a.required and getattr(a.type, "__name__", "") != "existing_dir":
            continue
        value = str(next(iter(a.choices))) if a.choices else "1" if a.type in (int, float) else str(folder)
        argv += [a.option_strings[0], value] if a.option_strings else [value]
    return argv


def _has_set(parser: argparse.ArgumentParser) -> bool:
    return any("--set" in a.option_strings for a in parser._actions)


def _exit(fn, argv: list[str]) -> int:
    """The exit code of ``fn(argv)``, whether it returns one or raises SystemExit."""
    try:
        return int(fn(argv) or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def _assert_one_line_user_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def _assert_usage_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err and err.startswith("usage: "), err
    last = err.strip().splitlines()[-1]
    assert ": error: " in last, err
    for needle in needles:
        assert needle in last, (needle, err)


# ----------------------------------------------------------------------------------------------- larr
def test_every_command_is_walked() -> None:
    """The walk reaches nested actions (so required paths are per action) and every top-level command."""
    top = {name.split()[0] for name in LEAVES}
    assert {"generate", "validate", "spark", "features", "stream", "registry", "quality", "serve"} <= top
    assert {"features publish", "stream consume", "stream simulate", "registry offer", "quality check"} <= set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_larr_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(larr_main, [*name.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: larr ") and len(out) > 100


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_larr_bad_invocation(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Missing required arguments are named by argparse; with them given, an unknown config key is one line."""
    parser, words = LEAVES[name], name.split()
    required = _required_argv(parser, tmp_path)
    if any(a.required for a in parser._actions):
        assert _exit(larr_main, words) == 2
        _assert_usage_error(capsys.readouterr().err, "required")
    if _has_set(parser):
        assert _exit(larr_main, [*words, *required, "--set", BAD_KEY]) == 2
        _assert_one_line_user_error(capsys.readouterr().err, "no_such_key: unknown key", "--set")
    if not any(a.required for a in parser._actions) and not _has_set(parser):
        assert _exit(larr_main, [*words, "--no-such-flag"]) == 2
        _assert_usage_error(capsys.readouterr().err, "--no-such-flag")


# ----------------------------------------------------------------------------------------------- python -m
def test_entry_modules_are_found() -> None:
    assert {"training.ctr", "training.cpt", "training.contrastive", "training.base_lm"} <= set(TRAINING)
    assert {"spark_jobs.cpt_corpus", "spark_jobs.ctr_samples", "spark_jobs.embed_features"} <= set(SPARK_JOBS)


@pytest.mark.parametrize("module_name", TRAINING + SPARK_JOBS)
def test_module_help(module_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(module_name).main
    assert _exit(main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--profile" in out and "--set" in out and "--seed" in out


@pytest.mark.parametrize("module_name", TRAINING + SPARK_JOBS)
def test_module_bad_invocation(module_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shared config arguments and boundary: an unknown key is one line, exit 2, before any work starts."""
    main = importlib.import_module(module_name).main
    parser = _parser_of(module_name)
    required = _required_argv(parser, tmp_path)
    if any(a.required for a in parser._actions):
        assert _exit(main, ["--set", BAD_KEY]) == 2
        _assert_usage_error(capsys.readouterr().err, "required")
    assert _exit(main, [*required, "--set", BAD_KEY]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "no_such_key: unknown key")


@pytest.mark.parametrize("module_name", SPARK_JOBS)
def test_spark_submit_script_help(module_name: str, tmp_path: Path) -> None:
    """spark-submit runs the file as a script, from anywhere."""
    script = ROOT / Path(*module_name.split(".")).with_suffix(".py")
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: ") and "--raw" in r.stdout, r.stderr


# ----------------------------------------------------------------------------------------------- issue 15
@pytest.fixture
def bad_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("world:\n  n_users: [1, 2\n")
    return path


def test_malformed_config_yaml(bad_yaml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert larr_main(["config", "--config", str(bad_yaml)]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "not valid YAML", str(bad_yaml), "line 3")


def test_config_folder_and_bad_override_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert larr_main(["config", "--config", str(tmp_path)]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "is a folder", "--config")
    assert larr_main(["config", "--set", "world.n_users=["]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "world.n_users", "not valid YAML")


def test_set_without_equals_names_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(larr_main, ["config", "--set", "seed"]) == 2
    _assert_usage_error(capsys.readouterr().err, "argument --set", "KEY=VALUE")


def test_a_command_that_reads_no_key_still_refuses_an_unknown_one(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert larr_main(["registry", "show", "--registry", str(tmp_path), "--set", "world.n_user=5"]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "did you mean world.n_users?")


def test_features_publish_names_its_required_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(larr_main, ["features", "publish", "--repo", str(tmp_path)]) == 2
    _assert_usage_error(capsys.readouterr().err, "--raw", "--jobs", "--features")


def test_stream_consume_and_simulate_name_their_required_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(larr_main, ["stream", "consume"]) == 2
    _assert_usage_error(capsys.readouterr().err, "--repo")
    assert _exit(larr_main, ["stream", "simulate", "--count", "1"]) == 2
    _assert_usage_error(capsys.readouterr().err, "--raw")


def test_validate_bad_start_names_the_flag_and_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(larr_main, ["validate", str(tmp_path), "--start", "2024-13-01"]) == 2
    _assert_usage_error(capsys.readouterr().err, "--start", "YYYY-MM-DD", "2024-13-01")


def test_missing_input_folder_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training import ctr

    assert _exit(ctr.main, ["--data", str(tmp_path / "nope"), "--profile", "tiny"]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "no such folder", "(--data)")
    assert _exit(larr_main, ["spark", "all", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    _assert_usage_error(capsys.readouterr().err, "argument --raw", "no such folder")


def test_training_ctr_bad_config_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training import ctr

    assert _exit(ctr.main, ["--data", str(tmp_path), "--profile", "tiny", "--set", "ctr.epoch=1"]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "ctr.epoch: unknown key", "did you mean ctr.epochs?")


def test_training_deepspeed_without_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training import cpt

    assert _exit(cpt.main, ["--jobs", str(tmp_path), "--out", str(tmp_path), "--profile", "tiny",
                            "--deepspeed"]) == 2
    _assert_one_line_user_error(capsys.readouterr().err, "--deepspeed needs a config file")


def test_spark_job_bad_ds_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spark_jobs import cpt_corpus

    assert _exit(cpt_corpus.main, ["--raw", str(tmp_path), "--out", str(tmp_path), "--ds", "2024-02-30"]) == 2
    _assert_usage_error(capsys.readouterr().err, "--ds", "YYYY-MM-DD")


def _samples(root: Path, days: list[str], rows: int = 24) -> Path:
    """A minimal ctr_samples folder with every column the default spec's CTR model and evaluation read."""
    from larr.ctr.columns import ctr_columns
    from larr.spec import load_spec

    spec = load_spec()
    cols = ctr_columns(spec)
    rng = np.random.default_rng(0)
    folder = root / "jobs" / "ctr_samples"
    for d, day in enumerate(days):
        df = pd.DataFrame({c: rng.integers(0, 5, rows) for c in cols.categorical})
        for c in cols.numeric:
            df[c] = rng.random(rows)
        df[spec.labels.click] = np.tile([0, 1], rows // 2).astype("int8")
        df[spec.labels.conversion] = (df[spec.labels.click] * np.tile([0, 0, 1, 1], rows // 4)).astype("int8")
        df[spec.log.request] = np.arange(rows) // 4 + d * 1000
        for c in spec.slices.values():
            df[c] = rng.random(rows) < 0.3
        df["scene_keys"] = [list(rng.integers(1, 50, len(spec.scene))) for _ in range(rows)]
        (folder / f"date={day}").mkdir(parents=True)
        df.to_parquet(folder / f"date={day}" / "part-0.parquet")
    return root


def test_training_ctr_samples_missing_a_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sample file without a column training reads: named with the file and the fix, not a KeyError."""
    data = _samples(tmp_path, ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-04"])
    part = data / "jobs" / "ctr_samples" / "date=2024-07-02" / "part-0.parquet"
    pd.read_parquet(part).drop(columns=["click"]).to_parquet(part)
    from training import ctr

    code = _exit(ctr.main, ["--kind", "ple", "--data", str(data), "--profile", "tiny", "--out", str(tmp_path / "o"),
                            "-q", "--set", "ctr.epochs=1"])
    assert code == 2
    _assert_one_line_user_error(capsys.readouterr().err, "lack column(s) click", str(part),
                                "larr spark ctr_samples")
