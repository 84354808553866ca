"""The `larr` console script: every subcommand explains itself and the main flow works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import build_parser, main

SUBCOMMANDS = ["generate", "validate", "contract", "config"]


def test_top_level_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_generate_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w"
    assert main(["generate", "--profile", "tiny", "--seed", "3", "--out", str(out), "-q",
                 "--set", "world.n_users=120"]) == 0
    printed = capsys.readouterr().out
    assert "impressions/s" in printed and "oracle AUC" in printed
    assert "n_users: 120" in (out / "config.yaml").read_text()
    assert main(["validate", str(out), "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_bad_config_exits_2_with_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["generate", "--profile", "tiny", "--out", str(tmp_path), "--set", "world.n_pois=0"]) == 2
    assert "world.n_pois" in capsys.readouterr().err


def test_config_prints_resolved_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--profile", "tiny", "--set", "seed=5"]) == 0
    assert "seed: 5" in capsys.readouterr().out


@pytest.mark.parametrize("name, actions", [("features", ["publish", "get", "render-repo"]),
                                           ("stream", ["consume", "simulate", "health"]),
                                           ("registry", ["offer", "champion", "show"])])
def test_actions_are_subcommands_with_their_own_required_paths(name: str, actions: list[str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Each action declares what it needs, so `larr features publish` without --raw is argparse's error."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(a in out for a in actions)


def test_python_m_cli_user_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {n_users: 5\n")
    r = subprocess.run([sys.executable, "-m", "cli", "config", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: config file is not valid YAML") and r.stderr.count("\n") == 1
